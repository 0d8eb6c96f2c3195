"""A GPU managed node group: tainted so only GPU workloads land there, labelled with its pool name.

Facts: the taint effect is the AWS enum ``NO_SCHEDULE`` (it shows on the
node as ``nvidia.com/gpu=true:NoSchedule``); ``labels`` are Kubernetes node labels; the node group
should depend on its role's policy attachments; ``disk_size`` conflicts with a launch template and
EKS's default (20 GiB) is too small for TGI images. Bottlerocket NVIDIA AMIs run the device plugin
themselves; AL2023 NVIDIA AMIs need its DaemonSet (components/cluster_addons.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_aws as aws

from components.gpu_pool_spec import (
    AMI_TYPES_WITH_DEVICE_PLUGIN,
    CAPACITY_TYPES,
    GPU_POOL_LABEL,
    MIN_DISK_GIB,
    NVIDIA_AMI_TYPES,
    gpu_taint,
    needs_device_plugin_daemonset,
    pool_labels,
    sizes_problem,
)

__all__ = [
    "AMI_TYPES_WITH_DEVICE_PLUGIN", "CAPACITY_TYPES", "GPU_POOL_LABEL", "MIN_DISK_GIB", "NVIDIA_AMI_TYPES",
    "GpuNodePool", "GpuNodePoolArgs", "gpu_taint", "needs_device_plugin_daemonset", "pool_labels",
]


@dataclass(frozen=True, kw_only=True)
class GpuNodePoolArgs:
    """Inputs for GpuNodePool."""

    pool: str
    """Pool name: the value of the ``llm-ab/gpu-pool`` node label."""
    cluster_name: pulumi.Input[str]
    node_role_arn: pulumi.Input[str]
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    instance_types: Sequence[str]
    ami_type: str = "AL2023_x86_64_NVIDIA"
    capacity_type: str = "ON_DEMAND"
    min_size: int = 0
    desired_size: int = 1
    max_size: int = 1
    disk_size_gib: int = MIN_DISK_GIB
    labels: Mapping[str, str] = field(default_factory=dict)
    kubernetes_version: pulumi.Input[str] | None = None
    """Pass the cluster's version output: a control-plane upgrade then rolls the pool after it."""
    wait_for: Sequence[pulumi.Resource] = ()
    """Created before and deleted after the node group: the node role's policy attachments (nodes
    lose their permissions otherwise) and the VPC CNI add-on."""
    tags: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if self.ami_type not in NVIDIA_AMI_TYPES:
            raise ValueError(f"ami_type must be one of {', '.join(NVIDIA_AMI_TYPES)}, got {self.ami_type!r}")
        if self.capacity_type not in CAPACITY_TYPES:
            raise ValueError(f"capacity_type must be one of {', '.join(CAPACITY_TYPES)}, got {self.capacity_type!r}")
        sizes = sizes_problem(self.min_size, self.desired_size, self.max_size)
        if sizes is not None:
            raise ValueError(f"{sizes[0]} {sizes[1]}")
        if self.disk_size_gib < MIN_DISK_GIB:
            raise ValueError(f"disk_size_gib must be >= {MIN_DISK_GIB}, got {self.disk_size_gib}")
        if not self.instance_types:
            raise ValueError("instance_types must not be empty")


class GpuNodePool(pulumi.ComponentResource):
    """One EKS managed node group of GPU instances, tainted ``nvidia.com/gpu=true:NoSchedule``."""

    node_group_name: pulumi.Output[str]
    node_selector: pulumi.Output[dict[str, str]]
    """Selects this pool's nodes (``llm-ab/gpu-pool: <pool>``)."""

    def __init__(self, name: str, args: GpuNodePoolArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:compute:GpuNodePool", name, None, opts)
        taint = gpu_taint()
        node_group = aws.eks.NodeGroup(
            f"{name}-ng",
            cluster_name=args.cluster_name,
            node_role_arn=args.node_role_arn,
            subnet_ids=args.subnet_ids,
            ami_type=args.ami_type,
            version=args.kubernetes_version,
            instance_types=list(args.instance_types),
            capacity_type=args.capacity_type,
            disk_size=args.disk_size_gib,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=args.min_size, desired_size=args.desired_size, max_size=args.max_size),
            # One node at a time: a GPU node is expensive and may be scarce.
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            labels=pool_labels(args.pool, args.labels),
            taints=[aws.eks.NodeGroupTaintArgs(**taint)],
            tags={**args.tags, GPU_POOL_LABEL: args.pool},
            # Joining GPU nodes (driver, image pulls) can outlast the default wait.
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.wait_for),
                                        custom_timeouts=pulumi.CustomTimeouts(create="45m", update="60m")),
        )
        self.node_group = node_group
        self.node_group_name = node_group.node_group_name
        self.node_selector = pulumi.Output.from_input({GPU_POOL_LABEL: args.pool})
        self.register_outputs({"node_group_name": self.node_group_name, "node_selector": self.node_selector})
