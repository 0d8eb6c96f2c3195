"""Measure how many requests the smoke split check needs, against a fixed-sample test with the same error rates.

Simulates Bernoulli canary draws with a seeded RNG and runs the real
:class:`smoke.split.SequentialSplitTest` (two one-sided SPRTs, alpha = 0.05, beta = 0.10,
delta = 10 points, cap 1000) many times per scenario. The fixed-sample peer is the exact
equal-tailed binomial test whose n is the smallest giving the same alpha and power 1 - beta at
p0 +/- delta (:func:`smoke.split.fixed_sample_size`); its rejection probability is exact.

Run: ``python bench/bench_split.py [--repetitions 20000] [--seed 1]``.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from smoke.split import SequentialSplitTest, SplitDesign, Verdict, fixed_sample_size  # noqa: E402

SCENARIOS: tuple[tuple[float, float, str], ...] = (
    (0.10, 0.10, "asked"),
    (0.10, 0.25, "asked"),
    (0.10, 0.20, "extra: at +delta"),
    (0.10, 0.00, "extra: canary dead"),
    (0.00, 0.00, "extra: 0 % edge"),
)


@dataclass(frozen=True)
class Row:
    """Results of one scenario."""

    declared: float
    true: float
    note: str
    mean_n: float
    median_n: float
    p95_n: float
    max_n: int
    sprt_off: float
    capped: float
    fixed_n: int
    fixed_off: float


def simulate(
    design: SplitDesign, true_share: float, repetitions: int, rng: random.Random
) -> tuple[list[int], float, float]:
    """Sample sizes, fraction of 'off' verdicts and fraction decided at the cap."""
    sizes: list[int] = []
    off = capped = 0
    for _ in range(repetitions):
        test = SequentialSplitTest(design)
        while test.update(rng.random() < true_share) is None:
            pass
        sizes.append(test.samples)
        off += test.verdict is Verdict.OFF
        capped += test.decided_by == "binomial-at-cap"
    return sizes, off / repetitions, capped / repetitions


def fixed_rejection_probability(design: SplitDesign, n: int, true_share: float) -> float:
    """Exact P(reject) of the equal-tailed binomial test with n samples when p = true_share."""
    ks = np.arange(n + 1)
    half = design.alpha / 2
    reject = (stats.binom.cdf(ks, n, design.expected) <= half) | (stats.binom.sf(ks - 1, n, design.expected) <= half)
    return float(stats.binom.pmf(ks[reject], n, true_share).sum())


def run(repetitions: int, seed: int) -> list[Row]:
    """All scenarios, each with its own seeded RNG stream."""
    rows = []
    for index, (declared, true_share, note) in enumerate(SCENARIOS):
        design = SplitDesign(expected=declared)
        sizes, off, capped = simulate(design, true_share, repetitions, random.Random(seed * 1000 + index))
        fixed_n = fixed_sample_size(design)
        rows.append(
            Row(
                declared,
                true_share,
                note,
                mean_n=statistics.fmean(sizes),
                median_n=statistics.median(sizes),
                p95_n=float(np.percentile(sizes, 95)),
                max_n=max(sizes),
                sprt_off=off,
                capped=capped,
                fixed_n=fixed_n,
                fixed_off=fixed_rejection_probability(design, fixed_n, true_share),
            )
        )
    return rows


def print_table(rows: list[Row], repetitions: int, seconds: float) -> None:
    """A plain-text table with the ratio of mean SPRT samples to the fixed sample size."""
    print(
        f"Split check: SPRT vs fixed-sample test, alpha=0.05 beta=0.10 delta=10 points, cap 1000, "
        f"{repetitions} repetitions per row ({seconds:.1f} s)"
    )
    header = (
        f"{'declared':>8} {'true':>6} {'SPRT mean n':>11} {'median':>6} {'p95':>5} {'max':>5} "
        f"{'P(off)':>7} {'capped':>6} {'fixed n':>7} {'fixed P(off)':>12} {'mean/fixed':>10}  note"
    )
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.declared:>8.0%} {r.true:>6.0%} {r.mean_n:>11.1f} {r.median_n:>6.0f} {r.p95_n:>5.0f} {r.max_n:>5d} "
            f"{r.sprt_off:>7.3f} {r.capped:>6.3f} {r.fixed_n:>7d} {r.fixed_off:>12.3f} "
            f"{r.mean_n / r.fixed_n:>10.2f}  {r.note}"
        )


def main() -> None:
    """Parse arguments, simulate, print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=20000)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    started = time.perf_counter()
    rows = run(args.repetitions, args.seed)
    print_table(rows, args.repetitions, time.perf_counter() - started)


if __name__ == "__main__":
    main()
