"""Pure facts of EKS node groups (GPU pools and the system group), shared by the settings schema and
the components (no Pulumi import).

The GPU taint effect is AWS's ``NO_SCHEDULE`` (``nvidia.com/gpu=true:NoSchedule`` on the node); the
x86_64 NVIDIA AMI types are AL2023 and Bottlerocket (AL2 GPU AMIs are end-of-support); Bottlerocket's
NVIDIA variants run the device plugin themselves.
"""

from __future__ import annotations

from collections.abc import Mapping

from policy.contract import GPU_POOL_LABEL, GPU_TAINT_KEY, MIN_GPU_DISK_GIB

GPU_TAINT_VALUE = "true"
GPU_TAINT_EFFECT = "NO_SCHEDULE"
"""AWS spelling of Kubernetes' NoSchedule (EKS rejects ``NoSchedule``)."""
NVIDIA_AMI_TYPES = ("AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA")
AMI_TYPES_WITH_DEVICE_PLUGIN = ("BOTTLEROCKET_x86_64_NVIDIA",)
CAPACITY_TYPES = ("ON_DEMAND", "SPOT")
MIN_DISK_GIB = MIN_GPU_DISK_GIB
"""Smallest GPU node disk; the mandatory ``eks-gpu-nodegroup-disk`` policy holds the same minimum."""

__all__ = ["AMI_TYPES_WITH_DEVICE_PLUGIN", "CAPACITY_TYPES", "GPU_POOL_LABEL", "GPU_TAINT_EFFECT", "GPU_TAINT_KEY",
           "GPU_TAINT_VALUE", "MIN_DISK_GIB", "NVIDIA_AMI_TYPES", "gpu_taint", "needs_device_plugin_daemonset",
           "pool_labels", "sizes_problem"]


def gpu_taint() -> dict[str, str]:
    """The taint of every GPU pool, as the EKS API spells it."""
    return {"key": GPU_TAINT_KEY, "value": GPU_TAINT_VALUE, "effect": GPU_TAINT_EFFECT}


def pool_labels(pool: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Node labels of a pool: the user's plus ours (ours win)."""
    return {**(extra or {}), GPU_POOL_LABEL: pool}


def needs_device_plugin_daemonset(ami_type: str) -> bool:
    return ami_type not in AMI_TYPES_WITH_DEVICE_PLUGIN


def sizes_problem(min_size: int, desired_size: int, max_size: int) -> tuple[str, str] | None:
    """The one scaling rule of a node group, min <= desired <= max and max >= 1: None when it holds,
    else (the config key at fault, what is wrong)."""
    if max_size < 1:
        return "maxSize", f"must be at least 1, got {max_size}"
    if max_size < min_size:
        return "maxSize", f"must be >= minSize ({min_size}), got {max_size}"
    if not min_size <= desired_size <= max_size:
        return "desiredSize", f"must be between minSize ({min_size}) and maxSize ({max_size}), got {desired_size}"
    return None
