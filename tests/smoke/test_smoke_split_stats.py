"""Pure tests of the split statistics: SPRT decisions, error rates, intervals, fixed sample size."""

from __future__ import annotations

import math
import random

import pytest
from scipy import stats

from smoke.net import EndpointError
from smoke.power import MIN_CAP_POWER, binomial_pmf, min_samples, rejected_counts
from smoke.split import (
    OneSidedSprt,
    SequentialSplitTest,
    SplitDesign,
    Verdict,
    clopper_pearson,
    fixed_sample_size,
    run_split_check,
)


def _run(design: SplitDesign, draws: list[bool]) -> SequentialSplitTest:
    test = SequentialSplitTest(design)
    for hit in draws:
        if test.update(hit) is not None:
            break
    return test


def _simulate(design: SplitDesign, true_share: float, repetitions: int, seed: int) -> tuple[float, float]:
    """(fraction of runs that said 'off', mean samples) for Bernoulli(true_share) draws."""
    rng = random.Random(seed)
    off = samples = 0
    for _ in range(repetitions):
        test = SequentialSplitTest(design)
        while test.update(rng.random() < true_share) is None:
            pass
        off += test.verdict is Verdict.OFF
        samples += test.samples
    return off / repetitions, samples / repetitions


def test_wald_boundaries_follow_alpha_and_beta() -> None:
    side = OneSidedSprt(p0=0.1, p1=0.2, alpha=0.025, beta=0.1)

    assert side.upper == pytest.approx(math.log(0.9 / 0.025))
    assert side.lower == pytest.approx(math.log(0.1 / 0.975))
    assert side.step_hit == pytest.approx(math.log(2.0))
    assert side.step_miss == pytest.approx(math.log(0.8 / 0.9))


def test_expected_zero_fails_on_the_first_canary_sample() -> None:
    test = _run(SplitDesign(expected=0.0), [False, False, False, True, False])

    assert test.verdict is Verdict.OFF
    assert test.samples == 4 and test.hits == 1


def test_expected_zero_passes_after_22_stable_samples() -> None:
    test = _run(SplitDesign(expected=0.0), [False] * 100)

    # accept once 22 * log(0.9) <= log(0.1 / 0.975)
    assert test.verdict is Verdict.CONSISTENT
    assert test.samples == 22


def test_expected_hundred_is_the_mirror_image_of_expected_zero() -> None:
    passes = _run(SplitDesign(expected=1.0), [True] * 100)
    fails = _run(SplitDesign(expected=1.0), [True, True, False])

    assert (passes.verdict, passes.samples) == (Verdict.CONSISTENT, 22)
    assert (fails.verdict, fails.samples) == (Verdict.OFF, 3)


def test_alternatives_drop_the_side_outside_zero_one() -> None:
    assert SplitDesign(expected=0.0).alternatives() == (0.1,)
    assert SplitDesign(expected=0.1).alternatives() == pytest.approx((0.0, 0.2))
    assert SplitDesign(expected=0.95).alternatives() == pytest.approx((0.85,))
    assert SplitDesign(expected=0.5, delta=0.2).alternatives() == pytest.approx((0.3, 0.7))


def test_half_canary_when_ten_percent_expected_is_rejected_quickly() -> None:
    test = _run(SplitDesign(expected=0.1), [i % 2 == 0 for i in range(1000)])

    assert test.verdict is Verdict.OFF
    assert test.decided_by == "sprt"
    assert test.samples < 15


def test_exactly_ten_percent_canary_is_accepted() -> None:
    test = _run(SplitDesign(expected=0.1), [i % 10 == 9 for i in range(1000)])

    assert test.verdict is Verdict.CONSISTENT
    assert 40 < test.samples < 200


def test_undecided_test_at_the_cap_falls_back_to_the_exact_binomial_test() -> None:
    inside = _run(SplitDesign(expected=0.5, max_samples=4), [True, False, True, False])
    outside = _run(SplitDesign(expected=0.5, max_samples=12), [True] * 12)

    assert (inside.verdict, inside.decided_by, inside.samples) == (Verdict.CONSISTENT, "binomial-at-cap", 4)
    assert outside.samples <= 12 and outside.verdict is Verdict.OFF


def test_error_rates_hold_in_simulation_at_expected_ten_percent() -> None:
    design = SplitDesign(expected=0.1)

    false_alarm, _ = _simulate(design, 0.10, repetitions=3000, seed=1)
    hit_at_delta, _ = _simulate(design, 0.20, repetitions=3000, seed=2)
    hit_below, _ = _simulate(design, 0.00, repetitions=500, seed=3)

    assert false_alarm <= 0.05 + 0.015  # alpha, plus Monte Carlo slack
    assert hit_at_delta >= 0.90 - 0.02  # 1 - beta
    assert hit_below >= 0.90 - 0.02


def test_clopper_pearson_matches_closed_forms() -> None:
    low0, high0 = clopper_pearson(0, 22, 0.95)
    low_all, high_all = clopper_pearson(22, 22, 0.95)
    low_half, high_half = clopper_pearson(5, 10, 0.95)

    assert low0 == 0.0 and high0 == pytest.approx(1 - 0.025 ** (1 / 22))
    assert high_all == 1.0 and low_all == pytest.approx(0.025 ** (1 / 22))
    assert low_half == pytest.approx(1 - high_half)
    assert low_half == pytest.approx(0.187086, abs=1e-5)
    assert clopper_pearson(0, 0, 0.95) == (0.0, 1.0)


def test_fixed_sample_size_for_expected_zero_is_the_geometric_bound() -> None:
    # power at p = 0.1 is 1 - 0.9**n, so n = ceil(log(0.1) / log(0.9)) = 22
    assert fixed_sample_size(SplitDesign(expected=0.0)) == math.ceil(math.log(0.1) / math.log(0.9))


def test_fixed_sample_size_grows_with_variance_and_shrinks_with_delta() -> None:
    ten = fixed_sample_size(SplitDesign(expected=0.1))
    half = fixed_sample_size(SplitDesign(expected=0.5))
    half_wide = fixed_sample_size(SplitDesign(expected=0.5, delta=0.2))

    assert 100 < ten < half
    assert half_wide < half / 3


def test_the_plain_python_binomial_test_is_the_clopper_pearson_one_the_check_falls_back_to() -> None:
    """The settings compute the least cap without scipy; it must reject exactly where the check at its cap does."""
    for n in (1, 7, 30, 101):
        for p0 in (0.0, 0.1, 0.5, 0.93, 1.0):
            assert binomial_pmf(n, p0) == pytest.approx(stats.binom.pmf(range(n + 1), n, p0), abs=1e-12)
            excluded = [not low <= p0 <= high for low, high in (clopper_pearson(k, n, 0.95) for k in range(n + 1))]
            assert rejected_counts(n, p0, 0.05) == excluded, (n, p0)


@pytest.mark.parametrize(("expected", "least"), [(0.5, 327), (0.1, 164), (0.0, 29), (1.0, 29)])
def test_the_least_cap_gives_the_binomial_test_at_the_cap_95_percent_power_and_one_less_does_not(
        expected: float, least: int) -> None:
    def power(n: int) -> float:
        reject = rejected_counts(n, expected, 0.05)
        return min(sum(m for m, r in zip(binomial_pmf(n, p1), reject, strict=True) if r)
                   for p1 in SplitDesign(expected=expected).alternatives())

    assert min_samples(expected) == least
    assert power(least) >= MIN_CAP_POWER > power(least - 1)


def test_a_20_percent_canary_fails_a_50_percent_check_at_the_least_cap_at_least_95_percent_of_the_time() -> None:
    """The issue's repro: at 10 samples such a canary passed 58 % of the time; at the least cap the stack accepts,
    it fails almost always (and a share exactly delta off still fails with the sequential test's 1 - beta)."""
    least = min_samples(0.5)

    at_least_cap, _ = _simulate(SplitDesign(expected=0.5, max_samples=least), 0.20, repetitions=2000, seed=5)
    at_ten, _ = _simulate(SplitDesign(expected=0.5, max_samples=10), 0.20, repetitions=2000, seed=5)
    at_delta, _ = _simulate(SplitDesign(expected=0.5, max_samples=least), 0.60, repetitions=1000, seed=6)

    assert at_least_cap >= 0.95
    assert at_ten < 0.5  # what smoke.samples: 10 allowed
    assert at_delta >= 0.90 - 0.03  # 1 - beta, less Monte Carlo slack


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"expected": 1.5}, "expected share"),
        ({"expected": 0.1, "alpha": 0.0}, "alpha and beta"),
        ({"expected": 0.1, "delta": 0.6}, "delta"),
        ({"expected": 0.1, "max_samples": 0}, "max_samples"),
    ],
)
def test_split_design_rejects_invalid_parameters(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SplitDesign(**kwargs)


def test_run_split_check_reports_an_unrecognised_model_id() -> None:
    ids = iter(["stable-model", "stable-model", "mystery"])

    result = run_split_check(
        "http://unused",
        SplitDesign(expected=0.1),
        lambda served: {"stable-model": "stable"}.get(served.model_id),
        1.0,
        sampler=lambda: next(ids),
    )

    assert not result.passed
    assert result.samples == 2
    assert result.error == "sample 3: model_id 'mystery' is neither the stable nor the canary model"
    assert result.model_ids == {"stable-model": 2, "mystery": 1}


def test_run_split_check_reports_a_failed_sample() -> None:
    def broken() -> str:
        raise EndpointError("GET http://svc/info: HTTP 500: boom")

    result = run_split_check("http://unused", SplitDesign(expected=0.1), lambda _: "stable", 1.0, sampler=broken)

    assert result.error == "sample 1: GET http://svc/info: HTTP 500: boom"
    assert result.samples == 0 and result.observed is None
