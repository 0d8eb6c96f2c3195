"""GPU instance catalog, pool capacity and cost arithmetic for the eks platform (pure, no Pulumi).

The catalog is ``stacks/gpu_prices.yaml``: which instance types a GPU pool may use, how many GPUs
each has, and an approximate on-demand list price. Settings validation uses it to reject non-GPU
types and pools too small for the split; ``stacks/platform_eks.py`` uses it for the capacity and cost
outputs every preview shows.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

PRICES_FILE = Path(__file__).resolve().with_name("gpu_prices.yaml")

GPU_FAMILIES = ("g4dn", "g5", "g6", "g6e", "p4d", "p5")
"""x86_64 NVIDIA families the EKS NVIDIA AMIs (AL2023, Bottlerocket) run on."""


@dataclass(frozen=True, kw_only=True)
class GpuInstanceType:
    """One row of the price table."""

    name: str
    gpus: int
    gpu: str
    """GPU model, e.g. A10G."""
    usd_per_hour: float


@dataclass(frozen=True, kw_only=True)
class PriceTable:
    """The catalog and where its prices come from."""

    as_of: str
    region: str
    currency: str
    source: str
    instances: Mapping[str, GpuInstanceType]

    def describe(self) -> str:
        return (f"stacks/{PRICES_FILE.name}: approximate on-demand list prices, {self.region}, {self.currency}, "
                f"as of {self.as_of} ({self.source})")


def parse_price_table(raw: Mapping[str, Any]) -> PriceTable:
    instances = {
        name: GpuInstanceType(name=name, gpus=int(row["gpus"]), gpu=str(row["gpu"]),
                              usd_per_hour=float(row["usdPerHour"]))
        for name, row in raw["instances"].items()
    }
    return PriceTable(as_of=str(raw["asOf"]), region=str(raw["region"]), currency=str(raw["currency"]),
                      source=str(raw["source"]), instances=instances)


@functools.cache
def price_table() -> PriceTable:
    return parse_price_table(yaml.safe_load(PRICES_FILE.read_text()))


def instance_family(instance_type: str) -> str:
    return instance_type.split(".", 1)[0]


def known_sizes(family: str, table: PriceTable | None = None) -> list[str]:
    table = table or price_table()
    return [name for name in table.instances if instance_family(name) == family]


def unknown_gpu_type_reason(instance_type: str, table: PriceTable | None = None) -> str | None:
    """Why ``instance_type`` can't be in a GPU pool, or None when it can."""
    table = table or price_table()
    if instance_type in table.instances:
        return None
    family = instance_family(instance_type)
    if family in GPU_FAMILIES:
        return f"{instance_type!r} is not a {family} size (known: {', '.join(known_sizes(family, table))})"
    return (f"{instance_type!r} is not a GPU instance type (families: {', '.join(GPU_FAMILIES)}; "
            f"x86_64 NVIDIA, see {PRICES_FILE.name})")


def gpus_per_node(instance_types: Sequence[str], table: PriceTable | None = None) -> int:
    """GPUs every node of a pool has: the smallest of its instance types (a mixed pool gets any)."""
    table = table or price_table()
    return min(table.instances[t].gpus for t in instance_types)


def node_price(instance_types: Sequence[str], table: PriceTable | None = None) -> float:
    """Hourly price of one node: the dearest of the pool's types (an upper bound for mixed pools)."""
    table = table or price_table()
    return max(table.instances[t].usd_per_hour for t in instance_types)


def replicas_per_node(instance_types: Sequence[str], gpus_per_replica: int, table: PriceTable | None = None) -> int:
    """Serving replicas one node holds; a replica's GPUs must all be on one node."""
    if gpus_per_replica <= 0:
        raise ValueError("gpus_per_replica must be > 0")
    return gpus_per_node(instance_types, table) // gpus_per_replica


def _money(x: float) -> float:
    return round(x, 2)


@dataclass(frozen=True, kw_only=True)
class PoolShape:
    """What the estimate needs to know of one pool (decoupled from the settings dataclasses)."""

    name: str
    instance_types: Sequence[str]
    capacity_type: str
    min_size: int
    desired_size: int
    max_size: int


def pool_estimate(pool: PoolShape, table: PriceTable | None = None) -> dict[str, Any]:
    """Capacity and hourly cost of one pool at its desired size (stack output ``gpuPools``)."""
    table = table or price_table()
    per_node = gpus_per_node(pool.instance_types, table)
    price = node_price(pool.instance_types, table)
    estimate: dict[str, Any] = {
        "instanceTypes": list(pool.instance_types),
        "gpu": "/".join(sorted({table.instances[t].gpu for t in pool.instance_types})),
        "capacityType": pool.capacity_type,
        "nodes": {"min": pool.min_size, "desired": pool.desired_size, "max": pool.max_size},
        "gpusPerNode": per_node,
        "gpus": pool.desired_size * per_node,
        "usdPerNodeHour": price,
        "usdPerHour": _money(pool.desired_size * price),
        "usdPerHourAtMax": _money(pool.max_size * price),
    }
    if pool.capacity_type == "SPOT":
        estimate["note"] = "SPOT: on-demand price shown as the upper bound"
    return estimate


def replica_cost(replicas: Mapping[str, int], gpus_per_replica: int, instance_types: Sequence[str],
                 table: PriceTable | None = None) -> dict[str, float]:
    """Hourly cost of the GPUs the serving replicas actually request, per variant and in total."""
    table = table or price_table()
    per_gpu = node_price(instance_types, table) / gpus_per_node(instance_types, table)
    costs = {variant: _money(n * gpus_per_replica * per_gpu) for variant, n in replicas.items()}
    costs["total"] = _money(sum(n * gpus_per_replica * per_gpu for n in replicas.values()))
    return costs
