"""The ``eks`` (cluster, network) and ``gpu`` (node pools) sections of the settings schema.

Both are validated on every platform, so a typo fails everywhere, but they take effect only with
``platform: eks``. The rules across sections (the TGI pool can hold the split, the S3 bucket name)
are :func:`check_eks_platform`, run by the root schema on eks only. GPU facts come from the pure
:mod:`stacks.gpu_capacity` catalogue and :mod:`components.gpu_pool_spec`.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from datetime import date
from enum import Enum
from typing import Annotated, Any

from pydantic import BeforeValidator, Field, model_validator

from components.gpu_pool_spec import AMI_TYPES_WITH_DEVICE_PLUGIN, MIN_DISK_GIB, sizes_problem
from policy.contract import GPU_POOL_LABEL
from stacks.config_types import (
    Bool,
    LabelMap,
    OptionalText,
    PinnedImage,
    Section,
    StringList,
    Text,
    WholeNumber,
    given,
    problem,
    show,
    to_number,
)
from stacks.gpu_capacity import gpus_per_node, replicas_per_node, unknown_gpu_type_reason

DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"

REGION = re.compile(r"^(us|eu|ap|ca|sa|me|af|il|mx)-[a-z]+-[0-9]$")
CLUSTER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")
K8S_VERSION = re.compile(r"^1\.(?P<minor>[0-9]{2})$")
SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
POOL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
EKS_VERSIONS: dict[str, date | None] = {
    "1.32": date(2027, 3, 23),
    "1.33": date(2027, 7, 29),
    "1.34": date(2027, 12, 2),
    "1.35": date(2028, 3, 27),
    "1.36": None,
}
"""EKS Kubernetes minors and the day their extended support ends (EKS then upgrades the cluster itself).
Sources: docs.aws.amazon.com/eks/latest/userguide/kubernetes-versions.html (14 months standard + 12 extended)
and endoflife.date/amazon-eks (dates as of 2026-02); 1.36 is named by the EKS user guide, its dates are not
yet verified (None: not expired). 1.30 and 1.31 ended on 2026-07-23 and 2026-11-26; 1.29 and older earlier."""


def supported_eks_versions(today: date) -> list[str]:
    """The catalogue's minors still in (standard or extended) support on ``today``."""
    return [v for v, ends in EKS_VERSIONS.items() if ends is None or ends > today]


class AmiType(str, Enum):
    """NVIDIA x86_64 AMI types of EKS managed node groups."""

    AL2023_NVIDIA = "AL2023_x86_64_NVIDIA"
    BOTTLEROCKET_NVIDIA = "BOTTLEROCKET_x86_64_NVIDIA"

    @property
    def has_device_plugin(self) -> bool:
        """Bottlerocket's NVIDIA variants ship the device plugin; on AL2023 we deploy it."""
        return self.value in AMI_TYPES_WITH_DEVICE_PLUGIN


class CapacityType(str, Enum):
    ON_DEMAND = "ON_DEMAND"
    SPOT = "SPOT"


def _ami_type(value: Any) -> Any:
    if value not in [a.value for a in AmiType]:
        hint = " (AL2 GPU AMIs are end-of-support)" if str(value).startswith("AL2_") else ""
        raise problem(f"must be one of {', '.join(a.value for a in AmiType)}{hint}, got {show(value)}")
    return value


def _capacity_type(value: Any) -> Any:
    """ON_DEMAND or SPOT; on-demand, On_Demand, spot, ... are accepted too."""
    normal = value.strip().upper().replace("-", "_") if isinstance(value, str) else None
    if normal not in [c.value for c in CapacityType]:
        raise problem(f"must be ON_DEMAND or SPOT (on-demand, spot), got {show(value)}")
    return normal


def _kubernetes_version(value: Any) -> str:
    text = f"{value:.2f}" if isinstance(value, float) else str(value)  # YAML reads 1.35 as a float
    supported = supported_eks_versions(date.today())
    if not K8S_VERSION.match(text) or text not in supported:
        raise problem(f"must be an EKS Kubernetes minor version EKS supports today ({', '.join(supported)}), as a "
                      f"string such as \"1.35\", got {show(value)}")
    return text


def _cidr(value: str, what: str = "must list IPv4 CIDR blocks such as 10.0.0.0/16") -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise problem(f"{what}, got {show(value)}") from None


def _with_size_defaults(data: Any, *, desired: int, maximum: int | None) -> Any:
    """desiredSize defaults to max(``desired``, minSize); maxSize to ``maximum`` or max(desiredSize, 1)."""
    if not isinstance(data, Mapping):
        return data
    out = dict(data)
    lo = to_number(out.get("minSize", 0))
    if not given(out, "desiredSize") and lo is not None:
        out["desiredSize"] = max(desired, int(lo))
    if not given(out, "maxSize"):
        wanted = to_number(out["desiredSize"]) if given(out, "desiredSize") else desired
        if maximum is not None:
            out["maxSize"] = maximum
        elif wanted is not None:
            out["maxSize"] = max(int(wanted), 1)
    return out


Size = Annotated[int, WholeNumber(0, 1000)]


class NodeGroupSizes(Section):
    """Scaling of a managed node group; the one rule is :func:`components.gpu_pool_spec.sizes_problem`."""

    min_size: Size = 0
    desired_size: Size = 1
    max_size: Annotated[int, WholeNumber(1, 1000)] = 1

    @model_validator(mode="after")
    def _ordered(self) -> NodeGroupSizes:
        found = sizes_problem(self.min_size, self.desired_size, self.max_size)
        if found is not None:
            raise problem(found[1], at=found[0])
        return self


class SystemNodeGroupSettings(NodeGroupSizes):
    """The small untainted node group for everything but GPU work (``eks.systemNodeGroup``)."""

    instance_types: StringList = ("m6i.large",)
    """Untainted node group for add-ons, Datashim, MinIO, the Jobs (and TGI at `gpusPerReplica: 0`)"""
    min_size: Size = 1
    """Minimum nodes of the system group"""
    desired_size: Size = 2
    """Nodes of the system group"""
    max_size: Annotated[int, WholeNumber(1, 1000)] = 3
    """Maximum nodes of the system group"""
    disk_size_gib: Annotated[int, WholeNumber(20, 16384)] = Field(50, alias="diskSizeGiB")
    """Root volume of system nodes"""

    @model_validator(mode="before")
    @classmethod
    def _size_defaults(cls, data: Any) -> Any:
        return _with_size_defaults(data, desired=2, maximum=3)

    @model_validator(mode="after")
    def _runs_the_add_ons(self) -> SystemNodeGroupSettings:
        if not self.instance_types:
            raise problem("must list at least one instance type", at="instanceTypes")
        if self.desired_size < 1:
            raise problem(f"must be at least 1: cluster add-ons need a node, got {self.desired_size}",
                          at="desiredSize")
        return self


class VpcSettings(Section):
    """A new VPC (``cidr``, two AZs) or existing subnets (``subnetIds``)."""

    cidr: Annotated[str, Text()] = "10.0.0.0/16"
    """Block of the new VPC (private, /16-/20): two public and two private subnets, one NAT gateway"""
    availability_zones: StringList = ()
    """The two zones of the new VPC; empty: the first two available in the region"""
    subnet_ids: StringList = ()
    """Existing private subnets (with egress, two zones) instead of a new VPC"""

    @model_validator(mode="after")
    def _one_network(self) -> VpcSettings:
        if self.subnet_ids:
            if "cidr" in self.model_fields_set or self.availability_zones:
                other = "cidr" if "cidr" in self.model_fields_set else "availabilityZones"
                raise problem("cannot be combined with eks.vpc.subnetIds (existing subnets): remove one of them",
                              at=other)
            bad = next((x for x in self.subnet_ids if not SUBNET_ID.match(x)), None)
            if bad is not None:
                raise problem(f"must list subnet ids such as subnet-0123456789abcdef0, got {show(bad)}",
                              at="subnetIds")
            if len(set(self.subnet_ids)) < 2:
                raise problem(f"must list at least 2 subnets in different zones (EKS needs two), "
                              f"got {len(set(self.subnet_ids))}", at="subnetIds")
            return self
        network = _cidr(self.cidr, "must list IPv4 CIDR blocks such as 10.0.0.0/16")
        if not network.is_private or not 16 <= network.prefixlen <= 20:
            raise problem(f"must be a private IPv4 block from /16 to /20 (pods take VPC addresses), "
                          f"got {show(self.cidr)}", at="cidr")
        zones = self.availability_zones
        if zones and (len(zones) != 2 or len(set(zones)) != 2):
            raise problem(f"must list exactly 2 different zones, got {len(zones)}", at="availabilityZones")
        return self

    @property
    def creates_vpc(self) -> bool:
        return not self.subnet_ids


class EksSettings(Section):
    """The EKS cluster and its network (``eks``)."""

    region: Annotated[str, Text(REGION, "an AWS region of the aws partition such as us-east-1 or eu-west-1")] \
        = "us-east-1"
    """AWS region of the cluster (eks only; `eks` and `gpu` are validated but ignored on local)"""
    cluster_name: OptionalText = None
    """EKS cluster name; empty: `llm-ab-<stack>`"""
    kubernetes_version: Annotated[str, BeforeValidator(_kubernetes_version)] = "1.35"
    """EKS Kubernetes minor version (a string, 1.30 or later; older ones cost extended support)"""
    endpoint_public_access_cidrs: StringList = ()
    """CIDRs that may reach the public API endpoint; required on eks unless `endpointPrivateOnly` (no default: see
    EKS platform)"""
    endpoint_private_only: Bool = False
    """No public API endpoint: reachable from the VPC only, so `pulumi up` and kubectl must run there"""
    vpc: VpcSettings = VpcSettings()
    system_node_group: SystemNodeGroupSettings = SystemNodeGroupSettings()

    @model_validator(mode="after")
    def _consistent(self) -> EksSettings:
        if self.cluster_name is not None and not CLUSTER_NAME.match(self.cluster_name):
            raise problem(f"must be an EKS cluster name (a letter, then up to 99 letters, digits, '-' or '_'), "
                          f"got {show(self.cluster_name)}", at="clusterName")
        for cidr in self.endpoint_public_access_cidrs:
            try:
                _cidr(cidr)
            except Exception as err:
                raise problem(f"must list IPv4 CIDR blocks such as 10.0.0.0/16, got {show(cidr)}",
                              at="endpointPublicAccessCidrs") from err
        bad = next((z for z in self.vpc.availability_zones if not re.match(rf"^{re.escape(self.region)}[a-z]$", z)),
                   None)
        if bad is not None:
            raise problem(f"must be zones of eks.region {self.region}, e.g. {self.region}a, got {show(bad)}",
                          at="vpc.availabilityZones")
        return self

    def cluster_name_of(self, stack: str) -> str:
        return self.cluster_name or f"llm-ab-{stack}"

    @property
    def s3_endpoint(self) -> str:
        return f"https://s3.{self.region}.amazonaws.com"


def _not_the_pool_label(value: Any) -> Any:
    if isinstance(value, Mapping) and GPU_POOL_LABEL in value:
        raise problem(f"must not set {GPU_POOL_LABEL}: it is the pool name, set by llm-ab")
    return value


def _gpu_instance_types(value: Any) -> Any:
    if isinstance(value, list | tuple):
        for instance_type in value:
            reason = unknown_gpu_type_reason(instance_type) if isinstance(instance_type, str) else None
            if reason:
                raise problem(f"must list GPU instance types: {reason}")
    return value


def _disk(value: Any) -> Any:
    parsed = to_number(value)
    if parsed is not None and parsed == int(parsed) and 1 <= parsed < MIN_DISK_GIB:
        raise problem(f"must be at least {MIN_DISK_GIB} GiB: GPU nodes hold the TGI image and its caches "
                      f"(EKS's 20 GiB default is too small), got {int(parsed)}")
    return value


class GpuPoolSettings(NodeGroupSizes):
    """One GPU managed node group (``gpu.nodePools[i]``)."""

    name: Annotated[str, Text(POOL_NAME, "a pool name: lower-case letters, digits and '-', at most 32")]
    instance_types: Annotated[StringList, BeforeValidator(_gpu_instance_types)] = ()
    ami_type: Annotated[AmiType, BeforeValidator(_ami_type)] = AmiType.AL2023_NVIDIA
    capacity_type: Annotated[CapacityType, BeforeValidator(_capacity_type)] = CapacityType.ON_DEMAND
    disk_size_gib: Annotated[int, WholeNumber(1, 16384), BeforeValidator(_disk)] = Field(MIN_DISK_GIB,
                                                                                    alias="diskSizeGiB")
    """Root volume: images plus caches; EKS's 20 GiB default is too small for TGI."""
    labels: Annotated[LabelMap, BeforeValidator(_not_the_pool_label)] = Field(default_factory=dict)

    @model_validator(mode="before")
    @classmethod
    def _size_defaults(cls, data: Any) -> Any:
        return _with_size_defaults(data, desired=1, maximum=None)

    @model_validator(mode="after")
    def _has_instance_types(self) -> GpuPoolSettings:
        if not self.instance_types:
            raise problem("must list at least one GPU instance type, e.g. [g5.xlarge]", at="instanceTypes")
        return self

    @property
    def node_selector(self) -> dict[str, str]:
        return {GPU_POOL_LABEL: self.name}


class DevicePluginSettings(Section):
    image: PinnedImage = DEVICE_PLUGIN_IMAGE
    """NVIDIA device plugin DaemonSet for AL2023 pools (Bottlerocket has it built in)"""


def _pool_list(value: Any) -> Any:
    if value is None:
        return ()
    if not isinstance(value, list | tuple):
        raise problem(f"must be a list of pools, got {show(value)}")
    return value


class GpuSettings(Section):
    """The GPU node pools (``gpu``)."""

    node_pools: Annotated[tuple[GpuPoolSettings, ...], BeforeValidator(_pool_list)] = ()
    """GPU managed node groups: `{name, instanceTypes, amiType, capacityType, minSize, desiredSize, maxSize,
    diskSizeGiB, labels}` (see EKS platform)"""
    serving_pool_name: OptionalText = Field(None, alias="servingPool")
    """The pool the model servers run on (their pods select `llm-ab/gpu-pool: <pool>`); empty: the first pool"""
    device_plugin: DevicePluginSettings = DevicePluginSettings()

    @model_validator(mode="after")
    def _pools_named_once(self) -> GpuSettings:
        names: list[str] = []
        for i, pool in enumerate(self.node_pools):
            if pool.name in names:
                raise problem(f"must be unique among the pools, got {show(pool.name)}", at=f"nodePools[{i}].name")
            names.append(pool.name)
        if self.serving_pool_name is not None and self.serving_pool_name not in names:
            raise problem(f"must name one of gpu.nodePools ({', '.join(names) or 'none declared'}), "
                          f"got {show(self.serving_pool_name)}", at="servingPool")
        return self

    @property
    def serving_pool(self) -> GpuPoolSettings | None:
        """The pool the model servers run on (``gpu.servingPool``, default the first pool); None without pools."""
        name = self.serving_pool_name or (self.node_pools[0].name if self.node_pools else None)
        return next((p for p in self.node_pools if p.name == name), None)

    @property
    def device_plugin_pools(self) -> list[GpuPoolSettings]:
        """Pools whose AMI lacks the NVIDIA device plugin (we deploy its DaemonSet there)."""
        return [p for p in self.node_pools if not p.ami_type.has_device_plugin]


# --- rules across sections (eks only) ----------------------------------------------------


def placement_problem(pool: GpuPoolSettings, gpus_per_replica: int, replicas: int,
                      replicas_key: str = "split.replicas") -> tuple[str, str] | None:
    """(field, message) when ``pool`` can't hold ``replicas`` serving replicas of ``gpus_per_replica`` GPUs."""
    per_node_gpus = gpus_per_node(pool.instance_types)
    if gpus_per_replica > per_node_gpus:
        return ("serving.gpusPerReplica",
                f"must fit on one node of GPU pool {pool.name!r} ({per_node_gpus} GPU(s) per node of "
                f"{', '.join(pool.instance_types)}), got {gpus_per_replica}")
    per_node = replicas_per_node(pool.instance_types, gpus_per_replica)
    for size_key, size in (("maxSize", pool.max_size), ("desiredSize", pool.desired_size)):
        if size * per_node < replicas:
            need = -(-replicas // per_node)
            return (size_key,
                    f"gives room for {size * per_node} serving replica(s) ({size} node(s) x {per_node} per node at "
                    f"serving.gpusPerReplica {gpus_per_replica}), but {replicas_key} needs {replicas}: set it to at "
                    f"least {need}, got {size}")
    return None


def endpoint_problem(eks: EksSettings) -> tuple[str, str] | None:
    """(key, message) when the API endpoint's exposure is not an explicit choice: public to listed CIDRs, or
    private only. The old default, public to 0.0.0.0/0, was silent."""
    if eks.endpoint_private_only and eks.endpoint_public_access_cidrs:
        return ("eks.endpointPublicAccessCidrs",
                f"cannot be combined with eks.endpointPrivateOnly: true (there is no public endpoint): remove one, "
                f"got {list(eks.endpoint_public_access_cidrs)}")
    if not eks.endpoint_private_only and not eks.endpoint_public_access_cidrs:
        return ("eks.endpointPublicAccessCidrs",
                "must list the CIDRs that may reach the cluster's public API endpoint, i.e. where `pulumi up` and "
                "kubectl run from (e.g. [198.51.100.0/24]; [0.0.0.0/0] opens it to the whole internet), or set "
                "eks.endpointPrivateOnly: true when they run inside the VPC, got []")
    return None


def check_eks_platform(gpu: GpuSettings, *, gpus_per_replica: int, replicas: int, storage_kind: str, bucket: str,
                       default_bucket: str, eks: EksSettings | None = None,
                       replicas_key: str = "split.replicas") -> None:
    """Rules between ``eks``/``gpu`` and the rest of the stack on ``platform: eks``."""
    found_endpoint = endpoint_problem(eks) if eks is not None else None
    if found_endpoint:
        raise problem(found_endpoint[1], at=found_endpoint[0])
    if gpus_per_replica > 0:  # CPU inference runs on the system node group (README: EKS platform)
        pool = gpu.serving_pool
        if pool is None:
            raise problem(f"must declare at least one pool on platform eks when serving.gpusPerReplica is "
                          f"{gpus_per_replica} (or set serving.gpusPerReplica to 0 for CPU inference)",
                          at="gpu.nodePools")
        found = placement_problem(pool, gpus_per_replica, replicas, replicas_key)
        if found:
            key, message = found
            index = gpu.node_pools.index(pool)
            raise problem(message, at=key if key.startswith("serving.") else f"gpu.nodePools[{index}].{key}")
    if storage_kind == "s3" and bucket == default_bucket:
        raise problem(f"must be a globally unique S3 bucket name with storage.kind s3 ({bucket!r} is surely "
                      f"taken), e.g. llm-ab-<stack>-weights-<account id>", at="storage.bucket")
