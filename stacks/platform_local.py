"""The local platform: any existing cluster, through the ambient kube context; it creates nothing."""

from __future__ import annotations

import pulumi

from policy.contract import GPU_PRESENT_LABEL
from stacks import outputs as OUT
from stacks.local_settings import Part
from stacks.platform import Platform
from stacks.settings import Settings

GPU_NODES = {GPU_PRESENT_LABEL: "true"}
"""Where GPU replicas land on a cluster the stack did not make: the nodes GPU Feature Discovery labels."""
SIMULATED = "simulated"
CLUSTER = "cluster"
"""The ``placement`` output's words: on the simulated nodes, or wherever the cluster schedules it."""


def placement_output(simulated: frozenset[Part]) -> dict[str, str]:
    """The ``placement`` stack output: each part, simulated or on the cluster (pure)."""
    return {part.value: SIMULATED if part in simulated else CLUSTER for part in Part}


def placement_warnings(settings: Settings) -> list[str]:
    """Placements that are allowed but will fail ``pulumi up`` (pure)."""
    simulated = settings.local.simulated
    gates = [name for name, on in (("smoke gate", settings.smoke.enabled), ("analysis", settings.analysis.enabled))
             if on]
    if Part.SERVING in simulated and Part.GATES not in simulated and gates:
        return [f"local.simulate has serving but not gates: the {' and the '.join(gates)} will really run against "
                "serving pods that are only simulated, and fail; add gates to local.simulate (or take serving out)"]
    return []


def provision(settings: Settings) -> Platform:
    """The current kube context's cluster, as it is: no provider, MinIO for weights; GPU replicas select the
    GPU nodes by their GPU Feature Discovery label, unless ``serving.nodeSelector`` names the nodes itself; the
    parts ``local.simulate`` names go to the simulated nodes."""
    for warning in placement_warnings(settings):
        pulumi.log.warn(warning)
    simulated = settings.local.simulated
    return Platform(gpu_node_selector={} if settings.serving.node_selector else GPU_NODES, simulated=simulated,
                    outputs={OUT.PLACEMENT: placement_output(simulated)})
