"""How many samples the split check needs: exact binomial power, in plain Python.

The split check (:mod:`smoke.split`) stops at a cap (``--samples``, the stack's ``smoke.samples``) and, if
its sequential test is still undecided there, falls back to the exact equal-tailed binomial test. A cap
too small for that test to tell the expected share from one ``delta`` off lets a wrong split through
undecided: with 10 samples a 20 % canary passed a 50 % check 58 % of the time. :func:`min_samples` is
the least cap the check accepts, so the stack's settings can refuse a smaller ``smoke.samples`` at
preview; it is plain Python because the program's runtime has no scipy.
"""

from __future__ import annotations

import functools
import math

DEFAULT_ALPHA = 0.05
"""False-alarm rate of the split check: P(fail | the split is right)."""
DEFAULT_BETA = 0.10
"""Miss rate of the split check's sequential test at a share ``delta`` off the expected one."""
DEFAULT_DELTA = 0.10
"""The smallest deviation the split check is designed to detect: ten percentage points."""
MIN_CAP_POWER = 0.95
"""Power the cap must give on its own: at :func:`min_samples` the exact binomial test at the cap detects a
share ``delta`` off the expected one with at least this probability, at level alpha. Above the sequential
test's own 1 - beta, so the cap does not cut into the power of the test it truncates."""


def alternatives(expected: float, delta: float) -> tuple[float, ...]:
    """The shares ``expected - delta`` and ``expected + delta`` that lie in [0, 1]."""
    eps = 1e-12
    found: list[float] = []
    for p1 in (expected - delta, expected + delta):
        if -eps <= p1 <= 1.0 + eps:
            found.append(min(1.0, max(0.0, p1)))
    return tuple(found)


def binomial_pmf(n: int, p: float) -> list[float]:
    """P(X = k) for k = 0..n, X ~ Binomial(n, p)."""
    if p <= 0.0:
        return [1.0] + [0.0] * n
    if p >= 1.0:
        return [0.0] * n + [1.0]
    log_p, log_q, log_n = math.log(p), math.log1p(-p), math.lgamma(n + 1)
    return [math.exp(log_n - math.lgamma(k + 1) - math.lgamma(n - k + 1) + k * log_p + (n - k) * log_q)
            for k in range(n + 1)]


def rejected_counts(n: int, expected: float, alpha: float) -> list[bool]:
    """For each count k of n, whether the exact equal-tailed binomial test rejects p = ``expected`` at level
    ``alpha``: P(X <= k) <= alpha/2 or P(X >= k) <= alpha/2 (the Clopper-Pearson interval excludes it)."""
    pmf = binomial_pmf(n, expected)
    lower: list[float] = []
    running = 0.0
    for mass in pmf:
        running += mass
        lower.append(running)
    upper, running = [0.0] * (n + 1), 0.0
    for k in range(n, -1, -1):
        running += pmf[k]
        upper[k] = running
    half = alpha / 2
    return [lower[k] <= half or upper[k] <= half for k in range(n + 1)]


@functools.lru_cache(maxsize=512)
def fixed_sample_size(expected: float, alpha: float = DEFAULT_ALPHA, delta: float = DEFAULT_DELTA,
                      power: float = 1.0 - DEFAULT_BETA, limit: int = 20000) -> int:
    """Smallest n for which the exact equal-tailed binomial test of p = ``expected`` at level ``alpha`` has
    power >= ``power`` at every alternative ``expected`` +/- ``delta`` in [0, 1]."""
    targets = alternatives(expected, delta)
    for n in range(1, limit + 1):
        reject = rejected_counts(n, expected, alpha)
        if not any(reject):
            continue
        if all(sum(m for m, r in zip(binomial_pmf(n, p1), reject, strict=True) if r) >= power for p1 in targets):
            return n
    raise ValueError(f"no fixed sample size up to {limit} reaches the requested power")


def min_samples(expected: float, alpha: float = DEFAULT_ALPHA, delta: float = DEFAULT_DELTA) -> int:
    """The least cap (``smoke.samples``) of a split check expecting the canary share ``expected`` (a fraction):
    :func:`fixed_sample_size` at power :data:`MIN_CAP_POWER`."""
    return fixed_sample_size(expected, alpha, delta, MIN_CAP_POWER)
