"""The local platform: any existing cluster, through the ambient kube context; it creates nothing."""

from __future__ import annotations

from stacks.platform import Platform
from stacks.settings import Settings


def provision(settings: Settings) -> Platform:  # noqa: ARG001 - every platform takes the settings
    """The current kube context's cluster, as it is: no provider, no GPU placement, MinIO for weights."""
    return Platform()
