"""Known-answer and property tests of the interval estimates (no server)."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import binomtest

from analysis.stats import bootstrap_quantile_change, newcombe_interval, wilson_interval, z_value

# Newcombe (1998a), "Two-sided confidence intervals for the single proportion", Table I,
# method 3 (Wilson score interval without continuity correction).
WILSON_TABLE = [
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0000, 0.1611),
    (1, 29, 0.0061, 0.1718),
]

# Newcombe (1998b), "Interval estimation for the difference between independent proportions",
# Table II, method 10 (hybrid score), for p1 - p2.
NEWCOMBE_TABLE = [
    ((56, 70, 48, 80), (0.0524, 0.3339)),
    ((9, 10, 3, 10), (0.1705, 0.8090)),
    ((6, 7, 2, 7), (0.0582, 0.8062)),
    ((5, 56, 0, 29), (-0.0381, 0.1926)),
    ((0, 10, 0, 20), (-0.1611, 0.2775)),
    ((0, 10, 0, 10), (-0.2775, 0.2775)),
    ((10, 10, 0, 20), (0.6791, 1.0000)),
    ((10, 10, 0, 10), (0.6075, 1.0000)),
]


@pytest.mark.parametrize(("k", "n", "low", "high"), WILSON_TABLE)
def test_wilson_interval_matches_newcombes_table(k: int, n: int, low: float, high: float) -> None:
    interval = wilson_interval(k, n, 0.95)
    assert (round(interval.low, 4), round(interval.high, 4)) == (low, high)


@pytest.mark.parametrize(("counts", "expected"), NEWCOMBE_TABLE)
def test_newcombe_hybrid_score_interval_matches_newcombes_table(
    counts: tuple[int, int, int, int], expected: tuple[float, float]
) -> None:
    interval = newcombe_interval(*counts, confidence=0.95)
    assert (round(interval.low, 4), round(interval.high, 4)) == expected


def test_z_value_is_the_normal_quantile() -> None:
    assert z_value(0.95) == pytest.approx(1.959964, abs=1e-6)
    assert z_value(0.90) == pytest.approx(1.644854, abs=1e-6)


def test_wilson_with_no_trials_is_uninformative() -> None:
    interval = wilson_interval(0, 0)
    assert (interval.low, interval.high) == (0.0, 1.0)


@pytest.mark.parametrize(("k", "n"), [(-1, 5), (6, 5), (0, -1)])
def test_wilson_rejects_impossible_counts(k: int, n: int) -> None:
    with pytest.raises(ValueError, match="successes <= trials"):
        wilson_interval(k, n)


counts = st.integers(min_value=0, max_value=400).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n)))
levels = st.sampled_from([0.8, 0.9, 0.95, 0.99])


@given(counts, levels)
def test_wilson_agrees_with_scipy_and_contains_the_estimate(kn: tuple[int, int], confidence: float) -> None:
    k, n = kn
    interval = wilson_interval(k, n, confidence)
    if n:
        reference = binomtest(k, n).proportion_ci(confidence_level=confidence, method="wilson")
        assert interval.low == pytest.approx(reference.low, abs=1e-9)
        assert interval.high == pytest.approx(reference.high, abs=1e-9)
    assert 0.0 <= interval.low <= interval.estimate <= interval.high <= 1.0


@given(counts, levels)
def test_wilson_widens_with_the_confidence_level(kn: tuple[int, int], confidence: float) -> None:
    k, n = kn
    narrow, wide = wilson_interval(k, n, confidence * 0.9), wilson_interval(k, n, confidence)
    assert wide.low <= narrow.low + 1e-12 and narrow.high <= wide.high + 1e-12


@given(counts, counts, levels)
def test_newcombe_contains_the_difference_and_is_antisymmetric(
    a: tuple[int, int], b: tuple[int, int], confidence: float
) -> None:
    forward = newcombe_interval(*a, *b, confidence=confidence)
    backward = newcombe_interval(*b, *a, confidence=confidence)
    assert -1.0 <= forward.low <= forward.estimate <= forward.high <= 1.0
    assert forward.low == pytest.approx(-backward.high, abs=1e-12)
    assert forward.high == pytest.approx(-backward.low, abs=1e-12)


def test_bootstrap_is_reproducible_with_a_seed() -> None:
    rng = np.random.default_rng(5)
    s, c = rng.lognormal(0, 0.3, 200), rng.lognormal(0.1, 0.3, 200)
    first = bootstrap_quantile_change(s, c, 0.95, resamples=500, seed=9)
    again = bootstrap_quantile_change(s, c, 0.95, resamples=500, seed=9)
    assert first == again


@settings(max_examples=25, deadline=None)
@given(st.floats(min_value=0.01, max_value=100.0), st.integers(min_value=0, max_value=10_000))
def test_bootstrap_ratio_does_not_depend_on_the_time_unit(scale: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    s, c = rng.lognormal(0, 0.4, 60), rng.lognormal(0.2, 0.4, 60)
    base = bootstrap_quantile_change(s, c, 0.5, resamples=300, seed=1)
    scaled = bootstrap_quantile_change(s * scale, c * scale, 0.5, resamples=300, seed=1)
    assert scaled.estimate == pytest.approx(base.estimate, rel=1e-9, abs=1e-12)
    assert scaled.low == pytest.approx(base.low, rel=1e-9, abs=1e-12)
    assert scaled.high == pytest.approx(base.high, rel=1e-9, abs=1e-12)


@settings(max_examples=25, deadline=None)
@given(st.floats(min_value=1.05, max_value=3.0), st.integers(min_value=0, max_value=10_000))
def test_slowing_the_canary_moves_the_whole_interval_up(factor: float, seed: int) -> None:
    rng = np.random.default_rng(seed)
    s, c = rng.lognormal(0, 0.3, 80), rng.lognormal(0, 0.3, 80)
    base = bootstrap_quantile_change(s, c, 0.95, resamples=300, seed=2)
    slower = bootstrap_quantile_change(s, c * factor, 0.95, resamples=300, seed=2)
    # Same resampling indices (same seed): every resampled ratio is multiplied by ``factor``.
    assert slower.low == pytest.approx((1 + base.low) * factor - 1, rel=1e-9)
    assert slower.high == pytest.approx((1 + base.high) * factor - 1, rel=1e-9)


@pytest.mark.parametrize("q", [0.5, 0.95])
def test_bootstrap_interval_covers_the_true_ratio_at_about_its_level(q: int) -> None:
    """Simulated log-normal latencies where the canary is exactly 20 % slower at every quantile."""
    rng = np.random.default_rng(20261202)
    repetitions, n, true_change = 200, 150, 0.20
    covered = 0
    for i in range(repetitions):
        s = rng.lognormal(np.log(0.05), 0.5, n)
        c = rng.lognormal(np.log(0.05), 0.5, n) * (1 + true_change)
        covered += bootstrap_quantile_change(s, c, q, confidence=0.95, resamples=300, seed=i).contains(true_change)
    coverage = covered / repetitions
    # 200 repetitions: a 95 % procedure lands in [0.90, 0.99] with probability > 0.99.
    assert 0.90 <= coverage <= 0.99, f"coverage {coverage:.3f} of a nominal 95 % interval at q={q}"


def test_bootstrap_of_constant_latencies_is_a_point() -> None:
    interval = bootstrap_quantile_change([0.1] * 10, [0.12] * 10, 0.5, resamples=100)
    assert interval.estimate == pytest.approx(0.2)
    assert interval.low == pytest.approx(0.2) and interval.high == pytest.approx(0.2)


@pytest.mark.parametrize(
    ("stable", "canary", "message"),
    [([0.1], [0.1, 0.2], "at least 2 values"), ([0.1, 0.0], [0.1, 0.2], "positive")],
)
def test_bootstrap_rejects_unusable_samples(stable: list[float], canary: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap_quantile_change(stable, canary, 0.5)


def test_wilson_interval_shrinks_like_one_over_root_n() -> None:
    widths = [wilson_interval(n // 10, n).high - wilson_interval(n // 10, n).low for n in (100, 400, 1600)]
    assert widths[0] / widths[1] == pytest.approx(2.0, rel=0.05)
    assert widths[1] / widths[2] == pytest.approx(2.0, rel=0.05)
    assert math.isfinite(widths[2])
