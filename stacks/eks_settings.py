"""Settings of the eks platform: the ``eks`` (cluster, network) and ``gpu`` (node pools) keys.

Registered by ``stacks.settings._feature_parsers`` as ``Settings.extras["eks"]``. Both sections are
validated on every platform, so a typo fails everywhere, but they take effect only with
``platform: eks``; on ``local`` :func:`parse_eks` returns None. Checks across sections (the TGI
pool can hold the split, the S3 bucket name) run on eks only.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import Enum
from typing import Any

from components.gpu_pool_spec import AMI_TYPES_WITH_DEVICE_PLUGIN, GPU_POOL_LABEL, MIN_DISK_GIB
from stacks.config_reader import ConfigError, Section, show
from stacks.gpu_capacity import gpus_per_node, replicas_per_node, unknown_gpu_type_reason
from stacks.settings import Platform, Settings, StorageSettings, pinned_image

DEVICE_PLUGIN_IMAGE = "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
MIN_GPU_DISK_GIB = MIN_DISK_GIB

_REGION = re.compile(r"^(us|eu|ap|ca|sa|me|af|il|mx)-[a-z]+-[0-9]$")
_CLUSTER_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,99}$")
_K8S_VERSION = re.compile(r"^1\.(?P<minor>[0-9]{2})$")
_SUBNET_ID = re.compile(r"^subnet-[0-9a-f]{8,17}$")
_POOL_NAME = re.compile(r"^[a-z0-9]([-a-z0-9]{0,30}[a-z0-9])?$")
_LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
_LABEL_VALUE = re.compile(r"^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$")
_MIN_K8S_MINOR = 30
"""AL2023 is the node OS from 1.30 on; AL2 GPU AMIs are end-of-support (components-api.md §7.1)."""


class AmiType(str, Enum):
    """NVIDIA x86_64 AMI types of EKS managed node groups (components-api.md §7.1)."""

    AL2023_NVIDIA = "AL2023_x86_64_NVIDIA"
    BOTTLEROCKET_NVIDIA = "BOTTLEROCKET_x86_64_NVIDIA"

    @property
    def has_device_plugin(self) -> bool:
        """Bottlerocket's NVIDIA variants ship the device plugin; on AL2023 we deploy it."""
        return self.value in AMI_TYPES_WITH_DEVICE_PLUGIN


class CapacityType(str, Enum):
    ON_DEMAND = "ON_DEMAND"
    SPOT = "SPOT"


@dataclass(frozen=True, kw_only=True)
class GpuPoolSettings:
    """One GPU managed node group (``gpu.nodePools[i]``)."""

    name: str
    instance_types: tuple[str, ...]
    ami_type: AmiType = AmiType.AL2023_NVIDIA
    capacity_type: CapacityType = CapacityType.ON_DEMAND
    min_size: int = 0
    desired_size: int = 1
    max_size: int = 1
    disk_size_gib: int = 100
    """Root volume: images plus caches; EKS's 20 GiB default is too small for TGI."""
    labels: Mapping[str, str] = field(default_factory=dict)

    @property
    def node_selector(self) -> dict[str, str]:
        return {GPU_POOL_LABEL: self.name}


@dataclass(frozen=True, kw_only=True)
class SystemNodeGroupSettings:
    """The small untainted node group for everything but GPU work (``eks.systemNodeGroup``)."""

    instance_types: tuple[str, ...] = ("m6i.large",)
    min_size: int = 1
    desired_size: int = 2
    max_size: int = 3
    disk_size_gib: int = 50


@dataclass(frozen=True, kw_only=True)
class VpcSettings:
    """A new VPC (``cidr``, two AZs) or existing subnets (``subnet_ids``)."""

    cidr: str = "10.0.0.0/16"
    availability_zones: tuple[str, ...] = ()
    """Empty: the first two available zones of the region."""
    subnet_ids: tuple[str, ...] = ()
    """Existing private subnets (with egress) for the control plane and nodes; no VPC is created."""

    @property
    def creates_vpc(self) -> bool:
        return not self.subnet_ids


@dataclass(frozen=True, kw_only=True)
class EksSettings:
    """Everything the eks platform creates besides the Kubernetes layer."""

    region: str = "us-east-1"
    cluster_name: str
    kubernetes_version: str = "1.35"
    endpoint_public_access_cidrs: tuple[str, ...] = ("0.0.0.0/0",)
    vpc: VpcSettings = field(default_factory=VpcSettings)
    system_node_group: SystemNodeGroupSettings = field(default_factory=SystemNodeGroupSettings)
    gpu_pools: tuple[GpuPoolSettings, ...] = ()
    tgi_pool_name: str | None = None
    """The pool TGI runs on (``gpu.tgiPool``; default the first pool); None without pools."""
    device_plugin_image: str = DEVICE_PLUGIN_IMAGE

    @property
    def tgi_pool(self) -> GpuPoolSettings | None:
        return next((p for p in self.gpu_pools if p.name == self.tgi_pool_name), None)

    @property
    def device_plugin_pools(self) -> list[GpuPoolSettings]:
        """Pools whose AMI lacks the NVIDIA device plugin (we deploy its DaemonSet there)."""
        return [p for p in self.gpu_pools if not p.ami_type.has_device_plugin]

    @property
    def s3_endpoint(self) -> str:
        return f"https://s3.{self.region}.amazonaws.com"


# --- parsing ------------------------------------------------------------------------------


def parse_eks(raw: Mapping[str, Any], settings: Settings) -> EksSettings | None:
    """Validate ``eks`` and ``gpu``; the parsed settings on ``platform: eks``, else None."""
    if raw.get("aws") is not None:
        raise ConfigError("aws", "is not used: set the AWS region with llm-ab:eks.region")
    eks_section = Section("eks", raw.get("eks"))
    gpu_section = Section("gpu", raw.get("gpu"))
    parsed = _parse_eks(eks_section, gpu_section, stack=settings.stack)
    if settings.platform is not Platform.EKS:
        return None
    _check_tgi_placement(parsed, settings)
    _check_storage(settings.storage)
    return parsed


def _parse_eks(s: Section, gpu: Section, *, stack: str) -> EksSettings:
    d = EksSettings(cluster_name="")
    region = s.string("region", d.region, pattern=_REGION,
                      allowed="an AWS region of the aws partition such as us-east-1 or eu-west-1")
    cluster_name = s.optional_string("clusterName") or f"llm-ab-{stack}"
    if not _CLUSTER_NAME.match(cluster_name):
        raise ConfigError(s.key("clusterName"), f"must be an EKS cluster name (a letter, then up to 99 letters, "
                                                f"digits, '-' or '_'), got {show(cluster_name)}")
    version = _kubernetes_version(s, d.kubernetes_version)
    cidrs = s.string_list("endpointPublicAccessCidrs", d.endpoint_public_access_cidrs)
    for cidr in cidrs:
        _cidr(s.key("endpointPublicAccessCidrs"), cidr)
    if not cidrs:
        raise ConfigError(s.key("endpointPublicAccessCidrs"), "must list at least one CIDR that may reach the API")
    vpc = _parse_vpc(s.section("vpc"), region)
    system = _parse_system_node_group(s.section("systemNodeGroup"))
    s.done()
    pools, tgi_pool, plugin_image = _parse_gpu(gpu)
    return EksSettings(region=region, cluster_name=cluster_name, kubernetes_version=version,
                       endpoint_public_access_cidrs=cidrs, vpc=vpc, system_node_group=system,
                       gpu_pools=pools, tgi_pool_name=tgi_pool, device_plugin_image=plugin_image)


def _kubernetes_version(s: Section, default: str) -> str:
    value = s.raw("kubernetesVersion")
    if value is None:
        return default
    text = f"{value:.2f}" if isinstance(value, float) else str(value)  # YAML reads 1.35 as a float
    match = _K8S_VERSION.match(text)
    if not match or int(match.group("minor")) < _MIN_K8S_MINOR:
        raise ConfigError(s.key("kubernetesVersion"),
                          f"must be an EKS Kubernetes minor version 1.{_MIN_K8S_MINOR} or later, as a "
                          f"string such as \"1.35\", got {show(value)}")
    return text


def _cidr(key: str, value: str) -> ipaddress.IPv4Network:
    try:
        return ipaddress.IPv4Network(value, strict=True)
    except ValueError:
        raise ConfigError(key, f"must list IPv4 CIDR blocks such as 10.0.0.0/16, got {show(value)}") from None


def _parse_vpc(s: Section, region: str) -> VpcSettings:
    d = VpcSettings()
    subnet_ids = s.string_list("subnetIds")
    zones = s.string_list("availabilityZones")
    cidr_given = s.has("cidr")
    cidr = s.string("cidr", d.cidr)
    s.done()
    if subnet_ids:
        if cidr_given or zones:
            other = "cidr" if cidr_given else "availabilityZones"
            raise ConfigError(s.key(other), "cannot be combined with eks.vpc.subnetIds (existing subnets): "
                                            "remove one of them")
        bad = next((x for x in subnet_ids if not _SUBNET_ID.match(x)), None)
        if bad is not None:
            raise ConfigError(s.key("subnetIds"),
                              f"must list subnet ids such as subnet-0123456789abcdef0, got {show(bad)}")
        if len(set(subnet_ids)) < 2:
            raise ConfigError(s.key("subnetIds"), f"must list at least 2 subnets in different zones (EKS needs two), "
                                                  f"got {len(set(subnet_ids))}")
        return VpcSettings(cidr=cidr, subnet_ids=subnet_ids)
    network = _cidr(s.key("cidr"), cidr)
    if not network.is_private or not 16 <= network.prefixlen <= 20:
        raise ConfigError(s.key("cidr"), f"must be a private IPv4 block from /16 to /20 (pods take VPC addresses), "
                                         f"got {show(cidr)}")
    if zones:
        if len(zones) != 2 or len(set(zones)) != 2:
            raise ConfigError(s.key("availabilityZones"), f"must list exactly 2 different zones, got {len(zones)}")
        bad = next((z for z in zones if not re.match(rf"^{re.escape(region)}[a-z]$", z)), None)
        if bad is not None:
            raise ConfigError(s.key("availabilityZones"), f"must be zones of eks.region {region}, e.g. {region}a, "
                                                          f"got {show(bad)}")
    return VpcSettings(cidr=cidr, availability_zones=zones)


def _sizes(s: Section, *, min_default: int, desired_default: int, max_default: int | None) -> tuple[int, int, int]:
    """minSize/desiredSize/maxSize with min <= desired <= max; maxSize defaults to desiredSize."""
    lo = s.integer("minSize", min_default, lo=0, hi=1000)
    desired = s.integer("desiredSize", max(desired_default, lo), lo=0, hi=1000)
    hi = s.integer("maxSize", max_default if max_default is not None else max(desired, 1), lo=1, hi=1000)
    if hi < lo:
        raise ConfigError(s.key("maxSize"), f"must be >= minSize ({lo}), got {hi}")
    if not lo <= desired <= hi:
        raise ConfigError(s.key("desiredSize"), f"must be between minSize ({lo}) and maxSize ({hi}), got {desired}")
    return lo, desired, hi


def _parse_system_node_group(s: Section) -> SystemNodeGroupSettings:
    d = SystemNodeGroupSettings()
    types = s.string_list("instanceTypes", d.instance_types)
    if not types:
        raise ConfigError(s.key("instanceTypes"), "must list at least one instance type")
    lo, desired, hi = _sizes(s, min_default=d.min_size, desired_default=d.desired_size, max_default=d.max_size)
    if hi < 1 or desired < 1:
        raise ConfigError(s.key("desiredSize"), f"must be at least 1: cluster add-ons need a node, got {desired}")
    disk = s.integer("diskSizeGiB", d.disk_size_gib, lo=20, hi=16384)
    s.done()
    return SystemNodeGroupSettings(instance_types=types, min_size=lo, desired_size=desired, max_size=hi,
                                   disk_size_gib=disk)


def _parse_gpu(s: Section) -> tuple[tuple[GpuPoolSettings, ...], str | None, str]:
    raw_pools = s.raw("nodePools")
    if raw_pools is None:
        raw_pools = []
    if not isinstance(raw_pools, list):
        raise ConfigError(s.key("nodePools"), f"must be a list of pools, got {show(raw_pools)}")
    pools: list[GpuPoolSettings] = []
    for i, raw_pool in enumerate(raw_pools):
        pool = _parse_pool(Section(f"{s.key('nodePools')}[{i}]", raw_pool))
        if any(p.name == pool.name for p in pools):
            raise ConfigError(f"{s.key('nodePools')}[{i}].name",
                              f"must be unique among the pools, got {show(pool.name)}")
        pools.append(pool)
    tgi_pool = s.optional_string("tgiPool")
    if tgi_pool is not None and not any(p.name == tgi_pool for p in pools):
        names = ", ".join(p.name for p in pools) or "none declared"
        raise ConfigError(s.key("tgiPool"), f"must name one of gpu.nodePools ({names}), got {show(tgi_pool)}")
    plugin = s.section("devicePlugin")
    image = pinned_image(plugin, "image", DEVICE_PLUGIN_IMAGE)
    plugin.done()
    s.done()
    if tgi_pool is None and pools:
        tgi_pool = pools[0].name
    return tuple(pools), tgi_pool, image


def _parse_pool(s: Section) -> GpuPoolSettings:
    d = GpuPoolSettings(name="d", instance_types=())
    name = s.string("name", pattern=_POOL_NAME, allowed="a pool name: lower-case letters, digits and '-', at most 32")
    types = s.string_list("instanceTypes")
    if not types:
        raise ConfigError(s.key("instanceTypes"), "must list at least one GPU instance type, e.g. [g5.xlarge]")
    for instance_type in types:
        reason = unknown_gpu_type_reason(instance_type)
        if reason:
            raise ConfigError(s.key("instanceTypes"), f"must list GPU instance types: {reason}")
    ami = s.raw("amiType")
    if ami is not None and ami not in [a.value for a in AmiType]:
        hint = " (AL2 GPU AMIs are end-of-support)" if str(ami).startswith("AL2_") else ""
        raise ConfigError(s.key("amiType"),
                          f"must be one of {', '.join(a.value for a in AmiType)}{hint}, got {show(ami)}")
    capacity = _capacity_type(s, d.capacity_type)
    lo, desired, hi = _sizes(s, min_default=d.min_size, desired_default=d.desired_size, max_default=None)
    disk_size = s.integer("diskSizeGiB", d.disk_size_gib, lo=1, hi=16384)
    if disk_size < MIN_GPU_DISK_GIB:
        raise ConfigError(s.key("diskSizeGiB"),
                          f"must be at least {MIN_GPU_DISK_GIB} GiB: GPU nodes hold the TGI image and its caches "
                          f"(EKS's 20 GiB default is too small), got {disk_size}")
    labels = s.string_map("labels")
    for key, value in labels.items():
        if key == GPU_POOL_LABEL:
            raise ConfigError(s.key("labels"), f"must not set {GPU_POOL_LABEL}: it is the pool name, set by llm-ab")
        if not _LABEL_KEY.match(key) or len(key) > 253 or not _LABEL_VALUE.match(value):
            raise ConfigError(s.key("labels"), f"must be Kubernetes node labels, got {show(key)}: {show(value)}")
    s.done()
    return GpuPoolSettings(name=name, instance_types=types, ami_type=AmiType(ami or d.ami_type.value),
                           capacity_type=capacity, min_size=lo, desired_size=desired, max_size=hi,
                           disk_size_gib=disk_size, labels=labels)


def _capacity_type(s: Section, default: CapacityType) -> CapacityType:
    """ON_DEMAND or SPOT; on-demand, On_Demand, spot, ... are accepted too."""
    value = s.raw("capacityType")
    if value is None:
        return default
    normal = str(value).strip().upper().replace("-", "_") if isinstance(value, str) else None
    if normal not in [c.value for c in CapacityType]:
        raise ConfigError(s.key("capacityType"), f"must be ON_DEMAND or SPOT (on-demand, spot), got {show(value)}")
    return CapacityType(normal)


# --- checks across sections (eks only) ---------------------------------------------------


def placement_problem(pool: GpuPoolSettings, gpus_per_replica: int, replicas: int) -> tuple[str, str] | None:
    """(field, message) when ``pool`` can't hold ``replicas`` TGI replicas of ``gpus_per_replica`` GPUs."""
    per_node_gpus = gpus_per_node(pool.instance_types)
    if gpus_per_replica > per_node_gpus:
        return ("tgi.gpusPerReplica",
                f"must fit on one node of GPU pool {pool.name!r} ({per_node_gpus} GPU(s) per node of "
                f"{', '.join(pool.instance_types)}), got {gpus_per_replica}")
    per_node = replicas_per_node(pool.instance_types, gpus_per_replica)
    for size_key, size in (("maxSize", pool.max_size), ("desiredSize", pool.desired_size)):
        if size * per_node < replicas:
            need = -(-replicas // per_node)
            return (size_key,
                    f"gives room for {size * per_node} TGI replica(s) ({size} node(s) x {per_node} per node at "
                    f"tgi.gpusPerReplica {gpus_per_replica}), but split.replicas needs {replicas}: set it to at "
                    f"least {need}, got {size}")
    return None


def _check_tgi_placement(eks: EksSettings, settings: Settings) -> None:
    gpus = settings.tgi.gpus_per_replica
    if gpus == 0:
        return  # CPU inference runs on the system node group (README: EKS platform)
    pool = eks.tgi_pool
    if pool is None:
        raise ConfigError("gpu.nodePools", f"must declare at least one pool on platform eks when tgi.gpusPerReplica "
                                           f"is {gpus} (or set tgi.gpusPerReplica to 0 for CPU inference)")
    problem = placement_problem(pool, gpus, settings.plan.total)
    if problem:
        key, message = problem
        index = eks.gpu_pools.index(pool)
        raise ConfigError(key if key.startswith("tgi.") else f"gpu.nodePools[{index}].{key}", message)


def _check_storage(storage: StorageSettings) -> None:
    if storage.kind == "s3" and storage.bucket == StorageSettings().bucket:
        raise ConfigError("storage.bucket",
                          f"must be a globally unique S3 bucket name with storage.kind s3 ({storage.bucket!r} is "
                          f"surely taken), e.g. llm-ab-<stack>-weights-<account id>")
