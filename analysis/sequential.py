"""Sequential stopping: look at the data K times and stop at the first PROMOTE or ROLLBACK.

Group-sequential design with Bonferroni alpha splitting: the variant phase is cut into K
equal stages; after stage k the comparison is run on everything collected so far with every
interval at level ``1 - (1 - c) / K`` instead of ``c``. A wrong decision at any look then has
probability at most K times the per-look error, i.e. the fixed design's error at level ``c``,
whatever the correlation between looks (Bonferroni's inequality). That is conservative:
Pocock or O'Brien-Fleming boundaries spend the same alpha with narrower intervals, but need
the looks' correlation structure, which the bootstrap rows do not give in closed form.

No load runs while a look is analysed, so the analysis cannot disturb the measured timings.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .records import RequestRecord
from .thresholds import Thresholds
from .verdict import Comparison, Verdict, compare

MAX_LOOKS = 10


@dataclass(frozen=True)
class Look:
    """One interim analysis."""

    look: int
    n_stable: int
    n_canary: int
    confidence: float
    verdict: Verdict
    reasons: tuple[str, ...]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "look": self.look,
            "n_stable": self.n_stable,
            "n_canary": self.n_canary,
            "confidence": self.confidence,
            "verdict": self.verdict.value,
            "reasons": list(self.reasons),
        }


def look_confidence(confidence: float, looks: int) -> float:
    """The per-look two-sided level that keeps the overall error at ``1 - confidence``."""
    if not 1 <= looks <= MAX_LOOKS:
        raise ValueError(f"looks must be 1..{MAX_LOOKS}, got {looks}")
    return 1 - (1 - confidence) / looks


def stage_sizes(requests: int, looks: int) -> list[int]:
    """Requests per stage: ``requests`` split into ``looks`` stages as evenly as possible (larger first)."""
    if looks < 1 or requests < looks:
        raise ValueError(f"need 1 <= looks <= requests, got {looks} looks for {requests} requests")
    base, extra = divmod(requests, looks)
    return [base + (1 if i < extra else 0) for i in range(looks)]


def evaluate(
    stable: Sequence[RequestRecord],
    canary: Sequence[RequestRecord],
    thresholds: Thresholds,
    *,
    look: int,
    looks: int,
    resamples: int,
    seed: int,
) -> tuple[Comparison, Look, bool]:
    """The comparison at one look, its summary, and whether to stop (decided, or the last look)."""
    level = look_confidence(thresholds.confidence, looks)
    comparison = compare(stable, canary, thresholds, resamples=resamples, seed=seed, confidence=level)
    summary = Look(look, len(stable), len(canary), level, comparison.verdict, comparison.reasons)
    return comparison, summary, look == looks or comparison.verdict is not Verdict.HOLD


def simulate_prefixes(
    stable: Sequence[RequestRecord],
    canary: Sequence[RequestRecord],
    thresholds: Thresholds,
    looks: int,
    *,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[Comparison, list[Look]]:
    """Run the sequential design on prefixes of already collected records (for the bench and tests)."""
    n = min(len(stable), len(canary))
    sizes = stage_sizes(n, looks)
    done = 0
    history: list[Look] = []
    for k, size in enumerate(sizes, start=1):
        done += size
        comparison, summary, stop = evaluate(
            stable[:done], canary[:done], thresholds, look=k, looks=looks, resamples=resamples, seed=seed
        )
        history.append(summary)
        if stop:
            return comparison, history
    raise AssertionError("unreachable: the last look always stops")  # pragma: no cover
