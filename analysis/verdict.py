"""Canary against stable, metric by metric: differences with intervals, and PROMOTE / HOLD / ROLLBACK.

Each metric row is a non-inferiority test of the canary with a margin from :class:`Thresholds`:

* a latency row compares a quantile (p50/p95 of TTFT, end-to-end, per-request mean ITL) as the
  relative change ``canary / stable - 1`` with a two-sample bootstrap interval ``[lo, hi]``:
  **pass** when ``hi <= margin``, **fail** when ``lo > margin``, **hold** otherwise (the
  interval straddles the margin); below ``minSamples`` successful requests per variant the
  row holds whatever the interval says (a bootstrap of a handful of values is not trusted);
* tokens/s is the same with the sign turned (a drop is the regression);
* the error rate has two rows: the canary's own rate against ``maxErrorRate`` (Wilson interval)
  and the increase over stable against ``maxErrorRateIncrease`` (Newcombe interval); the
  case-pass rate likewise against ``minCasePassRate`` and ``maxCasePassRateDrop``. These
  intervals are valid for small counts, so a rate row may fail below ``minSamples`` (ten
  errors in ten requests is evidence enough) but never passes there.

The overall verdict: **ROLLBACK** if any row fails, else **HOLD** if any row holds, else
**PROMOTE**. Rows without a margin (``None``) are informational and never decide.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .records import RequestRecord
from .stats import Interval, bootstrap_quantile_change, newcombe_interval, quantile, wilson_interval
from .thresholds import Thresholds


class Verdict(StrEnum):
    """The decision about the canary; the exit code follows it."""

    PROMOTE = "PROMOTE"
    HOLD = "HOLD"
    ROLLBACK = "ROLLBACK"

    @property
    def exit_code(self) -> int:
        """0 promote, 3 hold, 1 rollback (2 is left to usage errors)."""
        return {Verdict.PROMOTE: 0, Verdict.HOLD: 3, Verdict.ROLLBACK: 1}[self]


class RowStatus(StrEnum):
    """The outcome of one metric row."""

    PASS = "pass"
    HOLD = "hold"
    FAIL = "fail"
    INFO = "info"
    """No margin set: shown, never decides."""
    SKIP = "skip"
    """Nothing to compare (e.g. no scored golden cases)."""


@dataclass(frozen=True)
class Row:
    """One metric: both variants' values, the difference with its interval, the margin and the status."""

    metric: str
    unit: str
    """``s``, ``tok/s`` or ``rate``."""
    kind: str
    """``relative`` (a fraction of stable), ``absolute`` (the canary's rate) or ``difference`` (canary - stable)."""
    stable: float | None
    canary: float | None
    interval: Interval | None
    margin: float | None
    rule: str
    """The pass rule in words, e.g. ``upper bound <= +20%``."""
    status: RowStatus
    reason: str
    n_stable: int
    n_canary: int

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "metric": self.metric,
            "unit": self.unit,
            "kind": self.kind,
            "stable": self.stable,
            "canary": self.canary,
            "estimate": self.interval.estimate if self.interval else None,
            "ci_low": self.interval.low if self.interval else None,
            "ci_high": self.interval.high if self.interval else None,
            "margin": self.margin,
            "rule": self.rule,
            "status": self.status.value,
            "reason": self.reason,
            "n_stable": self.n_stable,
            "n_canary": self.n_canary,
        }


@dataclass(frozen=True)
class Comparison:
    """All rows and the verdict."""

    rows: tuple[Row, ...]
    verdict: Verdict
    reasons: tuple[str, ...] = field(default_factory=tuple)
    """Why: the failing rows for ROLLBACK, the holding rows for HOLD."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "verdict": self.verdict.value,
            "exit_code": self.verdict.exit_code,
            "reasons": list(self.reasons),
            "rows": [r.to_dict() for r in self.rows],
        }


@dataclass(frozen=True)
class LatencyMetric:
    """A per-request value compared at a quantile, and the threshold field holding its margin (percent)."""

    metric: str
    q: float
    value: Callable[[RequestRecord], float | None]
    threshold: str
    higher_is_better: bool = False
    unit: str = "s"


LATENCY_METRICS: tuple[LatencyMetric, ...] = (
    LatencyMetric("TTFT p50", 0.50, lambda r: r.ttft_s, "max_ttft_p50_regression_pct"),
    LatencyMetric("TTFT p95", 0.95, lambda r: r.ttft_s, "max_ttft_p95_regression_pct"),
    LatencyMetric("end-to-end p50", 0.50, lambda r: r.e2e_s, "max_e2e_p50_regression_pct"),
    LatencyMetric("end-to-end p95", 0.95, lambda r: r.e2e_s, "max_e2e_p95_regression_pct"),
    LatencyMetric("ITL p50 (per-request mean)", 0.50, lambda r: r.mean_itl_s, "max_itl_p50_regression_pct"),
    LatencyMetric(
        "tokens/s p50 (per request)", 0.50, lambda r: r.tokens_per_s, "max_tokens_per_s_drop_pct", True, "tok/s"
    ),
)


def _values(records: Sequence[RequestRecord], value: Callable[[RequestRecord], float | None]) -> list[float]:
    out = []
    for record in records:
        if record.ok:
            v = value(record)
            if v is not None and v > 0:
                out.append(v)
    return out


def _against_limit(interval: Interval, limit: float, *, at_most: bool) -> RowStatus:
    """A rate's interval against its limit: PASS when all of it is on the good side (at most /
    at least ``limit``), FAIL when all of it is on the bad side, HOLD when it straddles."""
    if at_most:
        good, bad = interval.high <= limit, interval.low > limit
    else:
        good, bad = interval.low >= limit, interval.high < limit
    return RowStatus.PASS if good else RowStatus.FAIL if bad else RowStatus.HOLD


def _relative_status(interval: Interval, margin: float, higher_is_better: bool) -> tuple[RowStatus, str]:
    # Regression as a positive fraction: slower (lower is better) or fewer tokens/s (higher is better).
    if higher_is_better:
        worst, best = -interval.low, -interval.high
        word = "drop"
    else:
        worst, best = interval.high, interval.low
        word = "regression"
    if worst <= margin:
        return RowStatus.PASS, f"{word} at most {worst:+.1%}, within the {margin:.0%} margin"
    if best > margin:
        return RowStatus.FAIL, f"{word} at least {best:+.1%}, beyond the {margin:.0%} margin"
    return RowStatus.HOLD, f"interval straddles the {margin:.0%} margin"


def latency_row(
    metric: LatencyMetric,
    stable: Sequence[RequestRecord],
    canary: Sequence[RequestRecord],
    thresholds: Thresholds,
    resamples: int,
    seed: int,
    confidence: float | None = None,
) -> Row:
    """One quantile row (see the module docstring for the rule); ``confidence`` overrides the thresholds'."""
    s, c = _values(stable, metric.value), _values(canary, metric.value)
    margin_pct = getattr(thresholds, metric.threshold)
    margin = None if margin_pct is None else margin_pct / 100
    sign = "-" if metric.higher_is_better else "+"
    rule = (
        "informational"
        if margin is None
        else f"{'drop' if metric.higher_is_better else 'increase'} <= {sign}{margin:.0%}"
    )
    stable_q = quantile(s, metric.q) if s else None
    canary_q = quantile(c, metric.q) if c else None
    common: dict[str, Any] = {"metric": metric.metric, "unit": metric.unit, "kind": "relative", "stable": stable_q,
                              "canary": canary_q}
    if len(s) < 2 or len(c) < 2:
        status = RowStatus.INFO if margin is None else RowStatus.HOLD
        return Row(
            **common,
            interval=None,
            margin=margin,
            rule=rule,
            status=status,
            reason=f"too few successful requests to compare (stable {len(s)}, canary {len(c)})",
            n_stable=len(s),
            n_canary=len(c),
        )
    interval = bootstrap_quantile_change(
        s, c, metric.q, confidence=confidence or thresholds.confidence, resamples=resamples, seed=seed
    )
    if margin is None:
        status, reason = RowStatus.INFO, "no margin set"
    elif min(len(s), len(c)) < thresholds.min_samples:
        status, reason = (
            RowStatus.HOLD,
            (
                f"too few samples: stable {len(s)}, canary {len(c)} successful requests "
                f"(minSamples {thresholds.min_samples})"
            ),
        )
    else:
        status, reason = _relative_status(interval, margin, metric.higher_is_better)
    return Row(
        **common,
        interval=interval,
        margin=margin,
        rule=rule,
        status=status,
        reason=reason,
        n_stable=len(s),
        n_canary=len(c),
    )


def _gate_small(status: RowStatus, reason: str, n: int, min_samples: int) -> tuple[RowStatus, str]:
    if status is RowStatus.PASS and n < min_samples:
        return RowStatus.HOLD, f"too few samples: {n} (minSamples {min_samples})"
    return status, reason


def error_rows(
    stable: Sequence[RequestRecord], canary: Sequence[RequestRecord], t: Thresholds, confidence: float | None = None
) -> list[Row]:
    """The canary's error rate (Wilson) and its increase over stable (Newcombe)."""
    ks, ns = sum(not r.ok for r in stable), len(stable)
    kc, nc = sum(not r.ok for r in canary), len(canary)
    own = wilson_interval(kc, nc, confidence or t.confidence)
    status = _against_limit(own, t.max_error_rate, at_most=True)
    reason = {RowStatus.PASS: f"upper bound {own.high:.2%} <= {t.max_error_rate:.2%}",
              RowStatus.FAIL: f"lower bound {own.low:.2%} > {t.max_error_rate:.2%}",
              RowStatus.HOLD: f"interval straddles {t.max_error_rate:.2%}"}[status]
    status, reason = _gate_small(status, reason, nc, t.min_samples)
    rows = [
        Row(
            "error rate (canary)",
            "rate",
            "absolute",
            ks / ns if ns else None,
            kc / nc if nc else None,
            own,
            t.max_error_rate,
            f"canary <= {t.max_error_rate:.1%}",
            status,
            reason,
            ns,
            nc,
        )
    ]
    diff = newcombe_interval(kc, nc, ks, ns, confidence or t.confidence)
    status = _against_limit(diff, t.max_error_rate_increase, at_most=True)
    reason = {RowStatus.PASS: f"increase at most {diff.high:+.2%}",
              RowStatus.FAIL: f"increase at least {diff.low:+.2%}",
              RowStatus.HOLD: f"interval straddles +{t.max_error_rate_increase:.2%}"}[status]
    status, reason = _gate_small(status, reason, min(ns, nc), t.min_samples)
    rows.append(
        Row(
            "error rate increase",
            "rate",
            "difference",
            ks / ns if ns else None,
            kc / nc if nc else None,
            diff,
            t.max_error_rate_increase,
            f"canary - stable <= +{t.max_error_rate_increase:.1%}",
            status,
            reason,
            ns,
            nc,
        )
    )
    return rows


def case_rows(
    stable: Sequence[RequestRecord], canary: Sequence[RequestRecord], t: Thresholds, confidence: float | None = None
) -> list[Row]:
    """The canary's golden-case pass rate (Wilson) and its drop below stable (Newcombe)."""
    scored_s = [r.case_pass for r in stable if r.case_pass is not None]
    scored_c = [r.case_pass for r in canary if r.case_pass is not None]
    ps, ns = sum(scored_s), len(scored_s)
    pc, nc = sum(scored_c), len(scored_c)
    rate_s = ps / ns if ns else None
    rate_c = pc / nc if nc else None
    if nc == 0:
        skip = Row(
            "case-pass rate (canary)",
            "rate",
            "absolute",
            rate_s,
            None,
            None,
            t.min_case_pass_rate,
            f"canary >= {t.min_case_pass_rate:.0%}",
            RowStatus.SKIP,
            "no scored golden case for the canary (no case expectation matches its model)",
            ns,
            0,
        )
        return [skip]
    own = wilson_interval(pc, nc, confidence or t.confidence)
    status = _against_limit(own, t.min_case_pass_rate, at_most=False)
    reason = {RowStatus.PASS: f"lower bound {own.low:.1%} >= {t.min_case_pass_rate:.1%}",
              RowStatus.FAIL: f"upper bound {own.high:.1%} < {t.min_case_pass_rate:.1%}",
              RowStatus.HOLD: f"interval straddles {t.min_case_pass_rate:.1%}"}[status]
    status, reason = _gate_small(status, reason, nc, t.min_samples)
    rows = [
        Row(
            "case-pass rate (canary)",
            "rate",
            "absolute",
            rate_s,
            rate_c,
            own,
            t.min_case_pass_rate,
            f"canary >= {t.min_case_pass_rate:.0%}",
            status,
            reason,
            ns,
            nc,
        )
    ]
    if ns == 0:
        rows.append(
            Row(
                "case-pass rate drop",
                "rate",
                "difference",
                None,
                rate_c,
                None,
                t.max_case_pass_rate_drop,
                f"canary - stable >= -{t.max_case_pass_rate_drop:.0%}",
                RowStatus.SKIP,
                "no scored golden case for stable",
                0,
                nc,
            )
        )
        return rows
    diff = newcombe_interval(pc, nc, ps, ns, confidence or t.confidence)
    status = _against_limit(diff, -t.max_case_pass_rate_drop, at_most=False)
    reason = {RowStatus.PASS: f"drop at most {-diff.low:.1%}",
              RowStatus.FAIL: f"drop at least {-diff.high:.1%}",
              RowStatus.HOLD: f"interval straddles -{t.max_case_pass_rate_drop:.1%}"}[status]
    status, reason = _gate_small(status, reason, min(ns, nc), t.min_samples)
    rows.append(
        Row(
            "case-pass rate drop",
            "rate",
            "difference",
            rate_s,
            rate_c,
            diff,
            t.max_case_pass_rate_drop,
            f"canary - stable >= -{t.max_case_pass_rate_drop:.0%}",
            status,
            reason,
            ns,
            nc,
        )
    )
    return rows


def compare(
    stable: Sequence[RequestRecord],
    canary: Sequence[RequestRecord],
    thresholds: Thresholds,
    *,
    resamples: int = 2000,
    seed: int = 0,
    confidence: float | None = None,
) -> Comparison:
    """Every row and the overall verdict for the two variants' records.

    ``confidence`` overrides ``thresholds.confidence`` (the sequential design's per-look level).
    """
    rows: list[Row] = [
        latency_row(m, stable, canary, thresholds, resamples, seed + i, confidence)
        for i, m in enumerate(LATENCY_METRICS)
    ]
    rows += error_rows(stable, canary, thresholds, confidence)
    rows += case_rows(stable, canary, thresholds, confidence)
    return Comparison(tuple(rows), *decide(rows))


def decide(rows: Sequence[Row]) -> tuple[Verdict, tuple[str, ...]]:
    """ROLLBACK if a row fails, HOLD if one holds, else PROMOTE; with the deciding rows' reasons."""
    failing = tuple(f"{r.metric}: {r.reason}" for r in rows if r.status is RowStatus.FAIL)
    if failing:
        return Verdict.ROLLBACK, failing
    holding = tuple(f"{r.metric}: {r.reason}" for r in rows if r.status is RowStatus.HOLD)
    if holding:
        return Verdict.HOLD, holding
    return Verdict.PROMOTE, ()
