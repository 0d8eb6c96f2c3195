"""Interval estimates for the A/B comparison: Wilson, Newcombe hybrid score, two-sample bootstrap.

All functions are pure (no I/O, seeded randomness only) so they can be tested on textbook
values and simulated data. Confidence levels are two-sided; a non-inferiority decision that
uses one bound of a ``c`` interval is a one-sided test at level ``(1 - c) / 2``.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats


@dataclass(frozen=True)
class Interval:
    """A point estimate with a two-sided confidence interval ``[low, high]``."""

    estimate: float
    low: float
    high: float
    confidence: float

    def contains(self, value: float) -> bool:
        """Whether ``value`` lies in the closed interval."""
        return self.low <= value <= self.high


def z_value(confidence: float) -> float:
    """The standard normal quantile for a two-sided ``confidence`` interval (1.959964 for 0.95)."""
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be in (0, 1), got {confidence}")
    return float(stats.norm.ppf((1 + confidence) / 2))


def wilson_interval(successes: int, trials: int, confidence: float = 0.95) -> Interval:
    """Wilson score interval for a binomial proportion (Wilson 1927; Newcombe 1998, method 3).

    Without continuity correction. ``trials == 0`` gives the uninformative ``[0, 1]`` around 0.
    """
    _check_counts(successes, trials)
    if trials == 0:
        return Interval(0.0, 0.0, 1.0, confidence)
    z = z_value(confidence)
    p = successes / trials
    denom = 1 + z * z / trials
    centre = (p + z * z / (2 * trials)) / denom
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
    # At the boundaries the closed form is exact; clamp only floating-point excursions.
    low = 0.0 if successes == 0 else max(0.0, centre - half)
    high = 1.0 if successes == trials else min(1.0, centre + half)
    return Interval(p, low, high, confidence)


def newcombe_interval(
    successes_a: int, trials_a: int, successes_b: int, trials_b: int, confidence: float = 0.95
) -> Interval:
    """Interval for ``p_a - p_b`` of two independent proportions: Newcombe's hybrid score method.

    Newcombe (1998), "Interval estimation for the difference between independent proportions",
    method 10: the Wilson intervals ``[l_a, u_a]`` and ``[l_b, u_b]`` combine as
    ``d - sqrt((p_a - l_a)^2 + (u_b - p_b)^2)`` and ``d + sqrt((u_a - p_a)^2 + (p_b - l_b)^2)``.
    """
    a = wilson_interval(successes_a, trials_a, confidence)
    b = wilson_interval(successes_b, trials_b, confidence)
    diff = a.estimate - b.estimate
    low = diff - math.sqrt((a.estimate - a.low) ** 2 + (b.high - b.estimate) ** 2)
    high = diff + math.sqrt((a.high - a.estimate) ** 2 + (b.estimate - b.low) ** 2)
    return Interval(diff, max(-1.0, low), min(1.0, high), confidence)


def _check_counts(successes: int, trials: int) -> None:
    if trials < 0 or successes < 0 or successes > trials:
        raise ValueError(f"need 0 <= successes <= trials, got {successes} of {trials}")


def quantile(values: Sequence[float] | np.ndarray, q: float) -> float:
    """The ``q`` quantile (numpy's default linear interpolation, Hyndman-Fan type 7)."""
    return float(np.quantile(np.asarray(values, dtype=float), q))


def bootstrap_quantile_change(
    stable: Sequence[float] | np.ndarray,
    canary: Sequence[float] | np.ndarray,
    q: float,
    *,
    confidence: float = 0.95,
    resamples: int = 2000,
    seed: int = 0,
) -> Interval:
    """Relative change of the ``q`` quantile, ``Q_canary(q) / Q_stable(q) - 1``, with a bootstrap interval.

    Two-sample (unpaired) nonparametric bootstrap: each resample draws ``len(stable)`` values
    from stable and ``len(canary)`` from canary with replacement; the interval is the
    percentile interval of the resampled ratios (Efron & Tibshirani 1993, ch. 13), computed by
    :func:`scipy.stats.bootstrap` with a seeded generator, so the same data and seed always give
    the same interval. Values must be positive (latencies, rates).
    """
    s = np.asarray(stable, dtype=float)
    c = np.asarray(canary, dtype=float)
    if s.size < 2 or c.size < 2:
        raise ValueError(f"need at least 2 values per variant, got {s.size} stable and {c.size} canary")
    if not 0 <= q <= 1:
        raise ValueError(f"quantile must be in [0, 1], got {q}")
    if (s <= 0).any() or (c <= 0).any():
        raise ValueError("values must be positive")

    def ratio(a: np.ndarray, b: np.ndarray, axis: int = -1) -> np.ndarray:
        return np.quantile(b, q, axis=axis) / np.quantile(a, q, axis=axis) - 1.0

    estimate = float(ratio(s, c))
    with warnings.catch_warnings():
        # A resample distribution with ties (e.g. a constant latency) is legitimate here.
        warnings.simplefilter("ignore", category=RuntimeWarning)
        warnings.simplefilter("ignore", category=getattr(stats, "DegenerateDataWarning", RuntimeWarning))
        result = stats.bootstrap(
            (s, c),
            ratio,
            n_resamples=resamples,
            paired=False,
            vectorized=True,
            confidence_level=confidence,
            method="percentile",
            rng=np.random.default_rng(seed),
        )
    low = float(result.confidence_interval.low)
    high = float(result.confidence_interval.high)
    if math.isnan(low) or math.isnan(high):  # every resample identical
        low = high = estimate
    return Interval(estimate, min(low, estimate), max(high, estimate), confidence)
