"""Rules on EKS GPU node groups: tainted for GPU work only, with room on disk for the TGI image."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from pulumi_policy import PolicyConfigSchema, ReportViolation, ResourceValidationArgs

from .contract import GPU_RESOURCE, MIN_GPU_DISK_GIB
from .props import EKS_NODE_GROUP_TYPES, as_int, config_of, fmt_number, get, known

GPU_NODE_GROUP_PROPERTIES: dict[str, Any] = {
    "gpuInstancePattern": {
        "type": "string", "default": r"^(p[2-9]|g[3-9]|gr[0-9])[a-z0-9-]*\.",
        "description": "EC2 instance types (regex) that carry NVIDIA GPUs.",
    },
}


def is_gpu_node_group(props: Mapping[str, Any], instance_pattern: str) -> bool:
    """GPU instance types, or an NVIDIA/GPU AMI type (e.g. AL2023_x86_64_NVIDIA, AL2_x86_64_GPU)."""
    ami = known(props, "amiType", default="") or ""
    if isinstance(ami, str) and ("NVIDIA" in ami.upper() or "GPU" in ami.upper()):
        return True
    pattern = re.compile(instance_pattern)
    types = known(props, "instanceTypes", default=[]) or []
    return any(isinstance(t, str) and pattern.search(t) for t in types)


NODE_GROUP_TAINT_SCHEMA = PolicyConfigSchema(properties={
    **GPU_NODE_GROUP_PROPERTIES,
    "taintKey": {"type": "string", "default": GPU_RESOURCE, "description": "Key of the GPU taint."},
})


def gpu_node_group_tainted(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """EKS GPU node groups carry the nvidia.com/gpu NO_SCHEDULE taint, so only GPU pods land there."""
    cfg = config_of(args, NODE_GROUP_TAINT_SCHEMA)
    if args.resource_type not in EKS_NODE_GROUP_TYPES or not is_gpu_node_group(args.props, cfg["gpuInstancePattern"]):
        args.not_applicable("not an EKS GPU node group")
        return
    taints = get(args.props, "taints", default=[])
    if not any(get(t, "key") == cfg["taintKey"] and get(t, "effect") == "NO_SCHEDULE" for t in taints):
        report_violation(f"GPU node group has no {cfg['taintKey']} taint with effect NO_SCHEDULE, so any pod "
                         "can take its GPU nodes", None)


NODE_GROUP_DISK_SCHEMA = PolicyConfigSchema(properties={
    **GPU_NODE_GROUP_PROPERTIES,
    "minDiskSizeGib": {
        "type": "number", "minimum": 1, "default": MIN_GPU_DISK_GIB,
        "description": "Smallest node disk (GiB) for inference images (TGI ~ 10 GB) and model caches.",
    },
})

EKS_DEFAULT_DISK_GIB = 20


def gpu_node_group_disk(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """EKS GPU node groups have disks large enough for inference images and model weights."""
    cfg = config_of(args, NODE_GROUP_DISK_SCHEMA)
    if args.resource_type not in EKS_NODE_GROUP_TYPES or not is_gpu_node_group(args.props, cfg["gpuInstancePattern"]):
        args.not_applicable("not an EKS GPU node group")
        return
    minimum = float(cfg["minDiskSizeGib"])
    size = as_int(get(args.props, "diskSize"))
    if size is None:
        if get(args.props, "launchTemplate") is not None:
            args.not_applicable("the disk is set by the node group's launch template")
            return
        report_violation(f"GPU node group sets no diskSize, so it gets the EKS default of {EKS_DEFAULT_DISK_GIB} "
                         f"GiB, below the minimum of {fmt_number(minimum)} GiB", None)
    elif size < minimum:
        report_violation(f"GPU node group disk is {size} GiB, below the minimum of {fmt_number(minimum)} GiB",
                         None)
