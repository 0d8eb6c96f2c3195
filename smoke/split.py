"""Traffic-split check: does the canary share seen through the traffic Service match the expected one?

Sampling: kube-proxy balances per TCP connection, so every sample is a
``GET /info`` on a brand-new connection (an httpx client without keep-alive, ``Connection: close``), and the
answering variant is told by the ``model_id`` it reports.

Decision: two one-sided Wald SPRTs on the Bernoulli canary indicator, run side by side
(Sobel & Wald 1949):

* H0: p = p0 (the expected share) against H1+: p = p0 + delta and H1-: p = p0 - delta
  (a side whose alternative falls outside [0, 1] is dropped);
* each side uses Wald's boundaries with type I error alpha/2 and type II error beta:
  reject above ``log((1 - beta) / (alpha / 2))``, accept below ``log(beta / (1 - alpha / 2))``;
* the split is **off** as soon as either side rejects, and **consistent** once every side has
  accepted (a side that accepted stops). So P(fail | split right) <= alpha (approximately, as
  Wald's bounds are) and P(pass | |p - p0| >= delta) <= beta;
* at the sample cap (``--samples``) an undecided test falls back to the exact equal-tailed
  binomial test at level alpha, i.e. it passes iff the Clopper-Pearson (1 - alpha) interval
  contains p0.

Defaults (:mod:`smoke.power`): alpha = 0.05, beta = 0.10, delta = 0.10 (ten percentage points). At p0 = 0
or 1 a single sample from the wrong side makes the log-likelihood ratio infinite, so it fails at once.
The cap must be at least :func:`smoke.power.min_samples` (the stack's settings refuse a smaller
``smoke.samples``): below it the test at the cap cannot tell the expected share from one delta off.
The reported interval is the Clopper-Pearson interval over the samples taken; after optional
stopping it is descriptive, not an exact confidence statement.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum

import httpx
from scipy import stats

from . import power
from .identity import Served
from .net import EndpointError, RetryPolicy
from .tgi import TgiClient

STABLE = "stable"
CANARY = "canary"


class Verdict(StrEnum):
    """Outcome of the split test."""

    CONSISTENT = "consistent"
    OFF = "off"


@dataclass(frozen=True)
class SplitDesign:
    """Hypotheses and error rates of the split test; shares are fractions in [0, 1]."""

    expected: float
    alpha: float = power.DEFAULT_ALPHA
    beta: float = power.DEFAULT_BETA
    delta: float = power.DEFAULT_DELTA
    max_samples: int = 1000

    def __post_init__(self) -> None:
        if not 0.0 <= self.expected <= 1.0:
            raise ValueError(f"expected share must be in [0, 1], got {self.expected}")
        if not 0.0 < self.alpha < 1.0 or not 0.0 < self.beta < 1.0:
            raise ValueError(f"alpha and beta must be in (0, 1), got {self.alpha}, {self.beta}")
        if not 0.0 < self.delta <= 0.5:
            raise ValueError(f"delta must be in (0, 0.5], got {self.delta}")
        if self.max_samples < 1:
            raise ValueError(f"max_samples must be >= 1, got {self.max_samples}")

    def alternatives(self) -> tuple[float, ...]:
        """The alternative shares p0 - delta and p0 + delta that lie in [0, 1]."""
        return power.alternatives(self.expected, self.delta)


def _log_ratio(numerator: float, denominator: float) -> float:
    if numerator == denominator:
        return 0.0
    if denominator == 0.0:
        return math.inf
    if numerator == 0.0:
        return -math.inf
    return math.log(numerator / denominator)


class OneSidedSprt:
    """Wald's SPRT of p = p0 against p = p1 for Bernoulli samples."""

    def __init__(self, p0: float, p1: float, alpha: float, beta: float) -> None:
        self.p1 = p1
        self.step_hit = _log_ratio(p1, p0)
        self.step_miss = _log_ratio(1.0 - p1, 1.0 - p0)
        self.upper = math.log((1.0 - beta) / alpha)
        self.lower = math.log(beta / (1.0 - alpha))
        self.llr = 0.0
        self.decision: Verdict | None = None

    def update(self, hit: bool) -> Verdict | None:
        """Add one sample; return the decision once reached (and keep it)."""
        if self.decision is None:
            self.llr += self.step_hit if hit else self.step_miss
            if self.llr >= self.upper:
                self.decision = Verdict.OFF
            elif self.llr <= self.lower:
                self.decision = Verdict.CONSISTENT
        return self.decision


class SequentialSplitTest:
    """Two one-sided SPRTs combined: off when either rejects, consistent when all accepted."""

    def __init__(self, design: SplitDesign) -> None:
        self.design = design
        self.sides = [OneSidedSprt(design.expected, p1, design.alpha / 2, design.beta) for p1 in design.alternatives()]
        self.samples = 0
        self.hits = 0
        self.verdict: Verdict | None = None
        self.decided_by = ""

    def update(self, hit: bool) -> Verdict | None:
        """Add one sample (``hit`` = the canary answered); return the verdict once reached."""
        if self.verdict is not None:
            return self.verdict
        self.samples += 1
        self.hits += int(hit)
        decisions = [side.update(hit) for side in self.sides]
        if Verdict.OFF in decisions:
            self.verdict, self.decided_by = Verdict.OFF, "sprt"
        elif all(d is Verdict.CONSISTENT for d in decisions):
            self.verdict, self.decided_by = Verdict.CONSISTENT, "sprt"
        elif self.samples >= self.design.max_samples:
            self.verdict, self.decided_by = self._at_cap(), "binomial-at-cap"
        return self.verdict

    def _at_cap(self) -> Verdict:
        low, high = clopper_pearson(self.hits, self.samples, 1.0 - self.design.alpha)
        return Verdict.CONSISTENT if low <= self.design.expected <= high else Verdict.OFF


def clopper_pearson(hits: int, samples: int, confidence: float) -> tuple[float, float]:
    """Exact (Clopper-Pearson) interval for a binomial proportion, via scipy.stats.binomtest."""
    if samples == 0:
        return 0.0, 1.0
    ci = stats.binomtest(hits, samples).proportion_ci(confidence_level=confidence, method="exact")
    return float(ci.low), float(ci.high)


def fixed_sample_size(design: SplitDesign, limit: int = 20000) -> int:
    """Smallest n for which the exact equal-tailed binomial test of p = p0 at level alpha has
    power >= 1 - beta at every alternative p0 +/- delta; the fixed-sample peer of the SPRT
    (:func:`smoke.power.fixed_sample_size`).
    """
    return power.fixed_sample_size(design.expected, design.alpha, design.delta, 1.0 - design.beta, limit)


@dataclass
class SplitResult:
    """What the split check saw and decided."""

    expected: float
    alpha: float
    beta: float
    delta: float
    max_samples: int
    samples: int = 0
    canary: int = 0
    verdict: str | None = None
    decided_by: str = ""
    ci_low: float = 0.0
    ci_high: float = 1.0
    confidence: float = 0.95
    model_ids: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    @property
    def observed(self) -> float | None:
        """Observed canary share, or None before any sample."""
        return self.canary / self.samples if self.samples else None

    @property
    def passed(self) -> bool:
        """True when the test decided the split is consistent with the expected share."""
        return self.error is None and self.verdict == Verdict.CONSISTENT.value


Classifier = Callable[[Served], str | None]
"""Maps what a sample was served by to ``"stable"``, ``"canary"`` or None (neither / ambiguous)."""


def fresh_connection_client() -> httpx.Client:
    """A client that never reuses a connection: no keep-alive pool and ``Connection: close``."""
    return httpx.Client(headers={"Connection": "close"}, limits=httpx.Limits(max_keepalive_connections=0))


def sample_variant(client: httpx.Client, url: str, timeout: float, policy: RetryPolicy) -> Served:
    """One sample: ``GET /info`` on a new connection; returns what served it (``model_id``, ``model_sha``)."""
    return Served.from_info(TgiClient(url, client, timeout).info(policy))


def run_split_check(
    url: str,
    design: SplitDesign,
    classify: Classifier,
    timeout: float,
    on_sample: Callable[[SplitResult], None] | None = None,
    sampler: Callable[[], Served | str] | None = None,
    budget_end: float | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> SplitResult:
    """Sample until the sequential test decides (or a sample fails, or the run's budget ends:
    ``budget_end``, a ``clock`` value) and return the result. An undecided test at the end of the
    budget is an error, not a pass."""
    test = SequentialSplitTest(design)
    result = SplitResult(design.expected, design.alpha, design.beta, design.delta, design.max_samples)
    result.confidence = 1.0 - design.alpha
    seen: Counter[str] = Counter()
    with fresh_connection_client() as client:
        draw = sampler or (lambda: sample_variant(client, url, timeout, RetryPolicy.brief(budget_end=budget_end)))
        _sample_until_decided(test, result, seen, draw, classify, on_sample, budget_end, clock)
    result.samples, result.canary = test.samples, test.hits
    result.verdict = test.verdict.value if test.verdict else None
    result.decided_by = test.decided_by
    result.ci_low, result.ci_high = clopper_pearson(test.hits, test.samples, result.confidence)
    result.model_ids = dict(seen)
    return result


def _sample_until_decided(
    test: SequentialSplitTest,
    result: SplitResult,
    seen: Counter[str],
    draw: Callable[[], Served | str],
    classify: Classifier,
    on_sample: Callable[[SplitResult], None] | None,
    budget_end: float | None,
    clock: Callable[[], float],
) -> None:
    def out_of_budget() -> bool:
        return budget_end is not None and clock() >= budget_end

    while test.verdict is None:
        if out_of_budget():
            result.error = _budget_ended(test.samples)
            break
        try:
            drawn = draw()
        except EndpointError as err:
            result.error = _budget_ended(test.samples) if out_of_budget() else f"sample {test.samples + 1}: {err}"
            break
        served = drawn if isinstance(drawn, Served) else Served(drawn)
        seen[served.label()] += 1
        side = classify(served)
        if side is None:
            result.error = (
                f"sample {test.samples + 1}: model_id {served.label()!r} is neither the stable nor the canary model"
            )
            break
        test.update(side == CANARY)
        result.samples, result.canary = test.samples, test.hits
        if on_sample is not None:
            on_sample(result)


def _budget_ended(samples: int) -> str:
    return (f"the run's budget ended after {samples} sample(s), before the test decided "
            "(raise smoke.timeoutSeconds or lower smoke.samples)")
