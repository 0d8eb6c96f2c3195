"""Traffic-split arithmetic: declared canary percent -> stable/canary replica counts (pure).

The traffic Service selects the pods of both Deployments, so kube-proxy spreads connections over
pods and the canary's share is canary_replicas / total_replicas. Only some percentages can be
realised with a given total; :func:`plan_split` picks the closest one and refuses when it is
further than the stack's tolerance from what was declared.
"""

from __future__ import annotations

from dataclasses import dataclass

MAX_SEARCH_REPLICAS = 1000
"""Largest replica total suggested when the declared split does not fit the configured one."""


class SplitError(ValueError):
    """The declared split cannot be realised within tolerance with the configured replicas."""


@dataclass(frozen=True)
class SplitPlan:
    """Replica counts for each variant and the split they actually produce."""

    stable_replicas: int
    canary_replicas: int
    declared_percent: float

    @property
    def total(self) -> int:
        return self.stable_replicas + self.canary_replicas

    @property
    def effective_percent(self) -> float:
        """Canary share of pods, in percent: what kube-proxy will actually deliver on average."""
        return 100.0 * self.canary_replicas / self.total if self.total else 0.0

    @property
    def deviation(self) -> float:
        """Percentage points between the effective and the declared canary share."""
        return abs(self.effective_percent - self.declared_percent)


def canary_replicas_for(percent: float, total: int) -> int:
    """The canary replica count closest to ``percent`` of ``total``.

    0% gives no canary and 100% no stable; anything strictly between keeps at least one replica
    on each side, because a variant with no pods is not being tested at all.
    """
    if total < 1:
        raise ValueError(f"total replicas must be >= 1, got {total}")
    if percent <= 0:
        return 0
    if percent >= 100:
        return total
    if total < 2:
        raise ValueError("a split strictly between 0% and 100% needs at least 2 replicas")
    nearest = int(percent * total / 100.0 + 0.5)
    return min(max(nearest, 1), total - 1)


def _plan(percent: float, total: int) -> SplitPlan:
    canary = canary_replicas_for(percent, total)
    return SplitPlan(stable_replicas=total - canary, canary_replicas=canary, declared_percent=percent)


def smallest_fitting_total(percent: float, tolerance: float, *, limit: int = MAX_SEARCH_REPLICAS) -> int | None:
    """The smallest replica total whose best split is within ``tolerance`` points, or None."""
    start = 1 if percent in (0, 100) else 2
    for total in range(start, limit + 1):
        if _plan(percent, total).deviation <= tolerance + 1e-9:
            return total
    return None


def plan_split(percent: float, total: int, tolerance: float) -> SplitPlan:
    """Replica counts for a declared canary ``percent`` over ``total`` replicas.

    Raises :class:`SplitError` naming the smallest total that fits when the best achievable split
    is more than ``tolerance`` percentage points away from the declared one.
    """
    if not 0 <= percent <= 100:
        raise SplitError(f"canary percent must be from 0 to 100, got {percent}")
    if tolerance < 0:
        raise SplitError(f"tolerance must be >= 0, got {tolerance}")
    if total < 1:
        raise SplitError(f"replicas must be >= 1, got {total}")
    if 0 < percent < 100 and total < 2:
        fit = smallest_fitting_total(percent, tolerance)
        raise SplitError(
            f"a {percent:g}% canary needs replicas on both sides; {total} replica cannot hold both"
            + (f"; the smallest total that fits is {fit}" if fit else "")
        )
    plan = _plan(percent, total)
    if plan.deviation > tolerance + 1e-9:
        fit = smallest_fitting_total(percent, tolerance)
        hint = (
            f"the smallest replica total that fits is {fit}"
            if fit is not None
            else f"no replica total up to {MAX_SEARCH_REPLICAS} fits; raise the tolerance"
        )
        raise SplitError(
            f"{total} replicas give a {plan.effective_percent:.4g}% canary "
            f"({plan.canary_replicas} of {total}), {plan.deviation:.4g} points from the declared "
            f"{percent:g}%, more than the tolerance of {tolerance:g}; {hint}"
        )
    return plan


# --- gateway mode: an exact split by route weights --------------------------------------------

WEIGHT_TOTAL = 10_000
"""Sum of the two backendRefs' weights in gateway mode: a weight of 1 is 0.01 %, so any canary percent
with at most two decimals is exact (Gateway API weights are int32 from 0 to 1,000,000, proportional)."""
WEIGHT_STEP_PERCENT = 100.0 / WEIGHT_TOTAL
"""The smallest split step the weights can express, in percent."""


@dataclass(frozen=True)
class RouteWeights:
    """The HTTPRoute's backendRef weights for stable and canary (they sum to :data:`WEIGHT_TOTAL`)."""

    stable: int
    canary: int

    @property
    def effective_percent(self) -> float:
        """Canary share of requests, in percent: weight / sum of weights (Gateway API semantics)."""
        total = self.stable + self.canary
        return 100.0 * self.canary / total if total else 0.0


def route_weights(percent: float) -> RouteWeights:
    """Weights out of :data:`WEIGHT_TOTAL` that give exactly ``percent`` to the canary.

    Raises :class:`SplitError` when ``percent`` is outside 0-100 or not a multiple of 0.01 (it has no
    exact integer weight).
    """
    if not 0 <= percent <= 100:
        raise SplitError(f"canary percent must be from 0 to 100, got {percent}")
    scaled = percent * WEIGHT_TOTAL / 100.0
    canary = round(scaled)
    if abs(scaled - canary) > 1e-6:
        raise SplitError(
            f"a {percent:g}% canary has no exact route weight: weights are out of {WEIGHT_TOTAL}, so the canary "
            f"percent must be a multiple of {WEIGHT_STEP_PERCENT:g} (e.g. {canary * WEIGHT_STEP_PERCENT:g})")
    return RouteWeights(stable=WEIGHT_TOTAL - canary, canary=canary)


@dataclass(frozen=True)
class SplitCost:
    """What a split costs in replicas and GPUs: in the mode deployed and in replica mode, for the same split."""

    declared_percent: float
    replicas: int
    """Replicas the experiment runs (gateway mode: stable + canary replicas, at least one per variant served)."""
    gpus: int
    replica_mode_replicas: int | None
    """The smallest replica total whose replica ratio is within the tolerance (None: none up to
    :data:`MAX_SEARCH_REPLICAS`)."""
    replica_mode_gpus: int | None
    replica_mode_effective_percent: float | None
    """The canary share replica mode would deliver with that total."""

    def summary(self) -> dict[str, object]:
        """The preview's view of it (stack output ``split.cost``)."""
        return {
            "replicas": self.replicas,
            "gpus": self.gpus,
            "replicaMode": {
                "replicas": self.replica_mode_replicas,
                "gpus": self.replica_mode_gpus,
                "effectiveCanaryPercent": (None if self.replica_mode_effective_percent is None
                                           else round(self.replica_mode_effective_percent, 2)),
            },
        }


def minimal_gateway_replicas(percent: float) -> tuple[int, int]:
    """The fewest (stable, canary) replicas that serve a weighted split: one per variant with a weight."""
    return (1 if percent < 100 else 0), (1 if percent > 0 else 0)


def split_cost(percent: float, tolerance: float, gpus_per_replica: int, *,
               stable_replicas: int | None = None, canary_replicas: int | None = None) -> SplitCost:
    """GPUs a ``percent`` canary costs with the given per-variant replicas (default: the fewest that
    serve it), next to what replica mode needs for the same split within ``tolerance`` points."""
    least_stable, least_canary = minimal_gateway_replicas(percent)
    replicas = (least_stable if stable_replicas is None else stable_replicas) + (
        least_canary if canary_replicas is None else canary_replicas)
    fit = smallest_fitting_total(percent, tolerance)
    return SplitCost(
        declared_percent=percent, replicas=replicas, gpus=replicas * gpus_per_replica,
        replica_mode_replicas=fit, replica_mode_gpus=None if fit is None else fit * gpus_per_replica,
        replica_mode_effective_percent=None if fit is None else _plan(percent, fit).effective_percent,
    )
