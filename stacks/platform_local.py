"""The local platform: any existing cluster, through the ambient kube context; it creates nothing."""

from __future__ import annotations

from policy.contract import GPU_PRESENT_LABEL
from stacks.platform import Platform
from stacks.settings import Settings

GPU_NODES = {GPU_PRESENT_LABEL: "true"}
"""Where GPU replicas land on a cluster the stack did not make: the nodes GPU Feature Discovery labels."""


def provision(settings: Settings) -> Platform:
    """The current kube context's cluster, as it is: no provider, MinIO for weights; GPU replicas select the
    GPU nodes by their GPU Feature Discovery label, unless ``serving.nodeSelector`` names the nodes itself."""
    return Platform(gpu_node_selector={} if settings.serving.node_selector else GPU_NODES)
