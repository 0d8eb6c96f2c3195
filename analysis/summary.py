"""Client-side figures of one target: counts, errors by kind, latency quantiles, token rates."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from .records import ErrorKind, RequestRecord


def _q(values: Sequence[float], q: float) -> float | None:
    return float(np.quantile(values, q)) if values else None


@dataclass(frozen=True)
class TargetSummary:
    """What one target's records add up to."""

    target: str
    url: str
    engine: str
    model: str | None
    requests: int
    ok: int
    errors: dict[str, int] = field(default_factory=dict)
    ttft_p50: float | None = None
    ttft_p95: float | None = None
    e2e_p50: float | None = None
    e2e_p95: float | None = None
    itl_p50: float | None = None
    """Median of the per-request mean inter-token latencies."""
    itl_p95: float | None = None
    tokens_per_s_p50: float | None = None
    output_tokens_mean: float | None = None
    input_tokens_mean: float | None = None
    achieved_rps: float | None = None
    """Requests started per second of the phase."""
    throughput_tokens_per_s: float | None = None
    """All output tokens of successful requests per second of the phase."""
    case_scored: int = 0
    case_passed: int = 0
    first_error: str | None = None

    @property
    def error_rate(self) -> float | None:
        """Failed requests over all requests."""
        return (self.requests - self.ok) / self.requests if self.requests else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        out = {k: getattr(self, k) for k in self.__dataclass_fields__}
        out["error_rate"] = self.error_rate
        return out


def summarize(
    records: Sequence[RequestRecord], *, target: str, url: str, engine: str, model: str | None, elapsed_s: float
) -> TargetSummary:
    """Summarize ``records`` of one target over a phase of ``elapsed_s`` seconds."""
    ok = [r for r in records if r.ok]
    errors = Counter(r.error.value for r in records if r.error is not None)
    ttft = [r.ttft_s for r in ok if r.ttft_s is not None]
    e2e = [r.e2e_s for r in ok if r.e2e_s is not None]
    itl = [v for r in ok if (v := r.mean_itl_s) is not None]
    tps = [v for r in ok if (v := r.tokens_per_s) is not None]
    inputs = [r.input_tokens for r in ok if r.input_tokens is not None]
    scored = [r.case_pass for r in records if r.case_pass is not None]
    failed = next((r for r in records if r.error is not None), None)
    return TargetSummary(
        target=target,
        url=url,
        engine=engine,
        model=model,
        requests=len(records),
        ok=len(ok),
        errors=dict(sorted(errors.items())),
        ttft_p50=_q(ttft, 0.5),
        ttft_p95=_q(ttft, 0.95),
        e2e_p50=_q(e2e, 0.5),
        e2e_p95=_q(e2e, 0.95),
        itl_p50=_q(itl, 0.5),
        itl_p95=_q(itl, 0.95),
        tokens_per_s_p50=_q(tps, 0.5),
        output_tokens_mean=float(np.mean([r.output_tokens for r in ok])) if ok else None,
        input_tokens_mean=float(np.mean(inputs)) if inputs else None,
        achieved_rps=sum(r.error is not ErrorKind.CLIENT_OVERLOAD for r in records) / elapsed_s
        if elapsed_s > 0
        else None,
        throughput_tokens_per_s=sum(r.output_tokens for r in ok) / elapsed_s if elapsed_s > 0 else None,
        case_scored=len(scored),
        case_passed=sum(scored),
        first_error=f"{failed.error.value}: {failed.error_detail}" if failed and failed.error else None,
    )
