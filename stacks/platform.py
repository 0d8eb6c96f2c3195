"""What a platform hands the rest of the stack (the seam between ``stacks.platform_<name>`` and the
experiment): where Kubernetes objects go, where GPU replicas land, which parts' pods go to simulated
nodes, what everything waits for, the weights store when the platform brings one, and the platform's
own stack outputs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.podspec import simulated_placement
from stacks.local_settings import Part


@dataclass(frozen=True, kw_only=True)
class WeightsStore:
    """The bucket the models are staged into and mounted from, and who may read and write it."""

    endpoint: pulumi.Output[str]
    bucket: pulumi.Output[str]
    reader_access_key: pulumi.Input[str]
    """Read-only credentials the Dataset (and ModelMesh's puller) mount with."""
    reader_secret_key: pulumi.Input[str]
    writer_secret: pulumi.Input[str] = ""
    """Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY of a writer; empty when the staging
    Jobs' service account carries the access instead (IRSA)."""
    writer_service_account: str | None = None
    writer_service_account_annotations: Mapping[str, pulumi.Input[str]] | None = None
    """When set, the staging component creates ``writer_service_account`` with these annotations."""
    region: str | None = None
    """The bucket's AWS region for the staging Jobs' S3 client; None for MinIO."""
    ready: Sequence[pulumi.Resource] = ()
    """What must finish before anything reads or writes the bucket (MinIO's bucket Job)."""
    volume_id: pulumi.Input[str] | None = None
    """Identity of the volume under the bucket (MinIO's claim uid): the staging Jobs carry it, so a new
    volume stages the models again. None for S3."""
    server_selector: Mapping[str, str] | None = None
    """Pod labels of an in-cluster S3 server (MinIO) that other clients must be let through to."""
    outputs: Mapping[str, Any] = field(default_factory=dict)
    """Stack outputs of the store (MinIO's root credentials, as secrets)."""


@dataclass(frozen=True, kw_only=True)
class Platform:
    """A platform, provisioned: everything the experiment and the optional features need of it."""

    provider: pulumi.ProviderResource | None = None
    """Explicit Kubernetes provider; None uses the ambient kubeconfig (``local``)."""
    gpu_node_selector: Mapping[str, str] = field(default_factory=dict)
    """Where GPU replicas must land (e.g. the GPU pool's label on eks)."""
    simulated: frozenset[Part] = frozenset()
    """Parts whose pods go to simulated nodes (``local.simulate``; only the local platform has such nodes)."""
    ready: Sequence[pulumi.Resource] = ()
    """Resources every Kubernetes component waits for (node groups, the device plugin, S3)."""
    weights: WeightsStore | None = None
    """The platform's weights bucket (S3 on eks); None: the experiment runs MinIO."""
    outputs: Mapping[str, Any] = field(default_factory=dict)
    """The platform's stack outputs (the cluster, its cost)."""

    def placement(self, part: Part) -> dict[str, Any]:
        """The pod placement fragment (``nodeSelector``, ``tolerations``) of every pod ``part`` creates: the
        simulated nodes when this platform simulates ``part``, else nothing (the scheduler's and the part's own
        choice). Merged into a pod spec with :func:`components.podspec.placed` (pure)."""
        return simulated_placement() if part in self.simulated else {}

    def opts(self, *, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
        """Options of a Kubernetes component on this platform, waiting for ``depends_on`` too."""
        return pulumi.ResourceOptions(
            providers=[self.provider] if self.provider is not None else None,
            depends_on=[*self.ready, *depends_on],
        )
