"""The comparison rules and the verdict, on synthetic request records (no server)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from analysis.records import ErrorKind, RequestRecord
from analysis.thresholds import Thresholds
from analysis.verdict import RowStatus, Verdict, compare

SEVERITY = {Verdict.PROMOTE: 0, Verdict.HOLD: 1, Verdict.ROLLBACK: 2}


def records(
    target: str,
    n: int,
    *,
    slower: float = 1.0,
    errors: int = 0,
    passes: int | None = None,
    seed: int = 0,
    tokens: int = 8,
) -> list[RequestRecord]:
    """``n`` records with log-normal TTFT and e2e (scaled by ``slower``); the first ``errors`` failed."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        ttft = float(rng.lognormal(np.log(0.05), 0.3)) * slower
        decode = float(rng.lognormal(np.log(0.02), 0.3)) * slower
        record = RequestRecord(target=target, index=i, prompt="p", started_s=i * 0.01)
        if i < errors:
            record.error, record.status = ErrorKind.HTTP_5XX, 500
        else:
            record.ttft_s, record.e2e_s = ttft, ttft + decode * (tokens - 1)
            record.itl_s = [decode] * (tokens - 1)
            record.output_tokens = tokens
            if passes is not None:
                record.case_pass = (i - errors) < passes
        out.append(record)
    return out


def row(comparison, metric: str):  # type: ignore[no-untyped-def]
    return next(r for r in comparison.rows if r.metric == metric)


def test_equal_variants_with_enough_samples_are_promoted() -> None:
    result = compare(records("stable", 400, seed=1), records("canary", 400, seed=2), Thresholds(), resamples=500)
    assert result.verdict is Verdict.PROMOTE, result.reasons
    assert result.verdict.exit_code == 0
    ttft = row(result, "TTFT p95")
    assert ttft.status is RowStatus.PASS and ttft.interval is not None and ttft.interval.high < 0.30


def test_a_canary_40_percent_slower_is_rolled_back_naming_the_latency_rows() -> None:
    result = compare(
        records("stable", 300, seed=1), records("canary", 300, slower=1.4, seed=2), Thresholds(), resamples=500
    )
    assert result.verdict is Verdict.ROLLBACK and result.verdict.exit_code == 1
    failed = {r.metric for r in result.rows if r.status is RowStatus.FAIL}
    assert {"TTFT p50", "end-to-end p50"} <= failed
    p50 = row(result, "TTFT p50")
    assert p50.interval is not None and p50.interval.low > 0.20
    assert p50.interval.contains(0.4)
    assert any(reason.startswith("TTFT p50: regression at least") for reason in result.reasons)


def test_too_few_samples_hold_even_when_equal() -> None:
    result = compare(records("stable", 12, seed=1), records("canary", 12, seed=2), Thresholds(), resamples=300)
    assert result.verdict is Verdict.HOLD and result.verdict.exit_code == 3
    assert row(result, "TTFT p50").reason.startswith("too few samples: stable 12, canary 12 successful requests")
    assert row(result, "error rate (canary)").status is RowStatus.HOLD


def test_a_canary_failing_every_request_is_rolled_back_below_min_samples() -> None:
    result = compare(records("stable", 10), records("canary", 10, errors=10), Thresholds(), resamples=200)
    assert result.verdict is Verdict.ROLLBACK
    assert row(result, "error rate (canary)").status is RowStatus.FAIL
    assert row(result, "TTFT p50").status is RowStatus.HOLD  # nothing to compare


def test_five_percent_canary_errors_against_a_one_percent_limit_roll_back() -> None:
    thresholds = Thresholds(max_error_rate=0.01, max_error_rate_increase=0.01)
    result = compare(records("stable", 400), records("canary", 400, errors=20), thresholds, resamples=300)
    own = row(result, "error rate (canary)")
    assert own.canary == pytest.approx(0.05) and own.status is RowStatus.FAIL
    assert own.interval is not None and own.interval.low > 0.01
    assert row(result, "error rate increase").status is RowStatus.FAIL
    assert result.verdict is Verdict.ROLLBACK


def test_metrics_without_a_margin_are_shown_but_never_decide() -> None:
    thresholds = Thresholds(
        max_ttft_p50_regression_pct=None,
        max_ttft_p95_regression_pct=None,
        max_e2e_p50_regression_pct=None,
        max_e2e_p95_regression_pct=None,
    )
    result = compare(
        records("stable", 200, seed=1), records("canary", 200, slower=2.0, seed=2), thresholds, resamples=300
    )
    assert row(result, "TTFT p50").status is RowStatus.INFO
    assert row(result, "TTFT p50").interval is not None
    assert result.verdict is Verdict.PROMOTE


def test_a_tokens_per_second_drop_beyond_its_margin_fails() -> None:
    thresholds = Thresholds(
        max_tokens_per_s_drop_pct=10.0,
        max_e2e_p50_regression_pct=None,
        max_e2e_p95_regression_pct=None,
        max_ttft_p50_regression_pct=None,
        max_ttft_p95_regression_pct=None,
    )
    result = compare(
        records("stable", 300, seed=1), records("canary", 300, slower=1.5, seed=2), thresholds, resamples=300
    )
    tps = row(result, "tokens/s p50 (per request)")
    assert tps.status is RowStatus.FAIL and tps.reason.startswith("drop at least")
    assert tps.interval is not None and tps.interval.high < -0.10


def test_case_pass_rate_below_its_floor_fails_and_unscored_cases_skip() -> None:
    result = compare(records("stable", 100, passes=100), records("canary", 100, passes=50), Thresholds(), resamples=200)
    assert row(result, "case-pass rate (canary)").status is RowStatus.FAIL
    assert row(result, "case-pass rate drop").status is RowStatus.FAIL
    # 0 errors in 0 vs 0 needs n >= z^2 (1 - d) / d = 188 per variant for the 2-point increase margin.
    unscored = compare(records("stable", 200), records("canary", 200), Thresholds(), resamples=200)
    assert row(unscored, "case-pass rate (canary)").status is RowStatus.SKIP
    assert unscored.verdict is Verdict.PROMOTE


def test_the_verdict_maps_to_the_documented_exit_codes() -> None:
    assert {v: v.exit_code for v in Verdict} == {Verdict.PROMOTE: 0, Verdict.HOLD: 3, Verdict.ROLLBACK: 1}


@settings(max_examples=15, deadline=None)
@given(st.floats(min_value=1.0, max_value=2.0), st.floats(min_value=0.0, max_value=0.5), st.integers(0, 1000))
def test_slowing_the_canary_never_improves_the_verdict(base: float, extra: float, seed: int) -> None:
    stable = records("stable", 120, seed=seed)
    faster = compare(stable, records("canary", 120, slower=base, seed=seed + 1), Thresholds(), resamples=200)
    slower = compare(stable, records("canary", 120, slower=base + extra, seed=seed + 1), Thresholds(), resamples=200)
    assert SEVERITY[slower.verdict] >= SEVERITY[faster.verdict]
