"""GPUs an A/B split costs: replica mode (the split is the replica ratio) against gateway mode (an HTTPRoute
splits by weight), as the program computes them (:func:`components.split.split_cost`, the numbers of the
preview's ``split.cost`` output).

Replica mode needs the smallest replica total whose ratio is within the tolerance of the declared share;
gateway mode needs one replica per variant with a weight, and the weights (out of 10000) give the declared
share exactly.

Run: ``python bench/bench_split_cost.py [--tolerance 5] [--gpus-per-replica 1] [--percents 1 5 10 25 50]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from components.split import route_weights, split_cost  # noqa: E402
from stacks.split_settings import SplitSettings  # noqa: E402

DEFAULT_TOLERANCE = SplitSettings().tolerance
PERCENTS = (1.0, 5.0, 10.0, 25.0, 50.0)


def rows(percents: tuple[float, ...], tolerance: float, gpus_per_replica: int) -> list[dict[str, object]]:
    """One row per canary percent: what each mode runs and delivers."""
    out = []
    for percent in percents:
        cost = split_cost(percent, tolerance, gpus_per_replica)
        weights = route_weights(percent)
        out.append({
            "percent": percent,
            "replica_replicas": cost.replica_mode_replicas,
            "replica_effective": cost.replica_mode_effective_percent,
            "replica_gpus": cost.replica_mode_gpus,
            "gateway_replicas": cost.replicas,
            "gateway_weights": f"{weights.stable}/{weights.canary}",
            "gateway_effective": weights.effective_percent,
            "gateway_gpus": cost.gpus,
        })
    return out


def print_table(table: list[dict[str, object]], tolerance: float, gpus_per_replica: int) -> None:
    print(f"GPUs for a canary within a tolerance of {tolerance:g} points, {gpus_per_replica} GPU per replica "
          f"(components.split.split_cost)")
    header = (f"{'canary':>7} | {'replica mode: replicas':>22} {'effective':>9} {'GPUs':>5} | "
              f"{'gateway mode: replicas':>22} {'weights':>10} {'effective':>9} {'GPUs':>5} | {'saved':>5}")
    print(header)
    print("-" * len(header))
    for r in table:
        replica_gpus = r["replica_gpus"]
        saved = "n/a" if replica_gpus is None else f"{int(replica_gpus) / int(r['gateway_gpus']):.1f}x"  # type: ignore[call-overload]
        effective = "none" if r["replica_effective"] is None else f"{r['replica_effective']:.2f}%"
        print(f"{r['percent']:>6g}% | {str(r['replica_replicas']):>22} {effective:>9} {str(replica_gpus):>5} | "
              f"{r['gateway_replicas']:>22} {r['gateway_weights']:>10} {r['gateway_effective']:>8.2f}% "
              f"{r['gateway_gpus']:>5} | {saved:>5}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tolerance", type=float, default=DEFAULT_TOLERANCE)
    parser.add_argument("--gpus-per-replica", type=int, default=1)
    parser.add_argument("--percents", type=float, nargs="+", default=list(PERCENTS))
    args = parser.parse_args()
    print_table(rows(tuple(args.percents), args.tolerance, args.gpus_per_replica), args.tolerance,
                args.gpus_per_replica)


if __name__ == "__main__":
    main()
