"""Pure facts of GPU node pools, shared by the settings and the components (no Pulumi import).

components-api.md §7.1: the taint effect is AWS's ``NO_SCHEDULE`` (``nvidia.com/gpu=true:NoSchedule``
on the node); the x86_64 NVIDIA AMI types are AL2023 and Bottlerocket (AL2 GPU AMIs are
end-of-support); Bottlerocket's NVIDIA variants run the device plugin themselves.
"""

from __future__ import annotations

from collections.abc import Mapping

from components.podspec import GPU_TAINT_KEY

GPU_POOL_LABEL = "llm-ab/gpu-pool"
"""Node label with the pool's name; TGI's node selector and the device plugin's affinity use it."""
GPU_TAINT_VALUE = "true"
GPU_TAINT_EFFECT = "NO_SCHEDULE"
"""AWS spelling of Kubernetes' NoSchedule (EKS rejects ``NoSchedule``)."""
NVIDIA_AMI_TYPES = ("AL2023_x86_64_NVIDIA", "BOTTLEROCKET_x86_64_NVIDIA")
AMI_TYPES_WITH_DEVICE_PLUGIN = ("BOTTLEROCKET_x86_64_NVIDIA",)
CAPACITY_TYPES = ("ON_DEMAND", "SPOT")
MIN_DISK_GIB = 100
"""Smallest GPU node disk: the TGI image (~10 GB) and its caches; EKS's own default is 20 GiB.
The same minimum as the mandatory ``eks-gpu-nodegroup-disk`` policy (policy/rules.py)."""


def gpu_taint() -> dict[str, str]:
    """The taint of every GPU pool, as the EKS API spells it."""
    return {"key": GPU_TAINT_KEY, "value": GPU_TAINT_VALUE, "effect": GPU_TAINT_EFFECT}


def pool_labels(pool: str, extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """Node labels of a pool: the user's plus ours (ours win)."""
    return {**(extra or {}), GPU_POOL_LABEL: pool}


def needs_device_plugin_daemonset(ami_type: str) -> bool:
    return ami_type not in AMI_TYPES_WITH_DEVICE_PLUGIN
