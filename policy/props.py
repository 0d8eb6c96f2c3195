"""Reading the engine's property bags: safe lookups (unknown values during preview), pod templates of
every workload kind, the policies' config with its defaults. Shared by every rule family."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import PolicyConfigSchema, ResourceValidationArgs, StackValidationArgs
from pulumi_policy.proxy import UnknownValueError

from .contract import GPU_RESOURCE

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
DATASET = "kubernetes:datashim.io/v1alpha1:Dataset"
HTTPROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
EKS_NODE_GROUP_TYPES = ("aws:eks/nodeGroup:NodeGroup", "eks:index:ManagedNodeGroup")

# Where each workload keeps its pod template (metadata + spec), as a path from the resource's props.
POD_TEMPLATE_PATHS: dict[str, tuple[str, ...]] = {
    "kubernetes:apps/v1:Deployment": ("spec", "template"),
    "kubernetes:apps/v1:StatefulSet": ("spec", "template"),
    "kubernetes:apps/v1:DaemonSet": ("spec", "template"),
    "kubernetes:apps/v1:ReplicaSet": ("spec", "template"),
    "kubernetes:core/v1:ReplicationController": ("spec", "template"),
    "kubernetes:batch/v1:Job": ("spec", "template"),
    "kubernetes:batch/v1:CronJob": ("spec", "jobTemplate", "spec", "template"),
    "kubernetes:core/v1:Pod": (),
}
# KServe (ModelMesh) runtimes keep containers, tolerations and node placement directly under spec.
SERVING_RUNTIME_TYPES = (
    "kubernetes:serving.kserve.io/v1alpha1:ServingRuntime",
    "kubernetes:serving.kserve.io/v1alpha1:ClusterServingRuntime",
)


# --------------------------------------------------------------------------------------------------
# Reading props


def get(obj: Any, *path: str | int, default: Any = None) -> Any:
    """``obj[path...]`` or ``default`` when a step is missing; unknown values raise (SDK semantics)."""
    cur = obj
    for key in path:
        if isinstance(key, int):
            if not isinstance(cur, Sequence) or isinstance(cur, str) or not -len(cur) <= key < len(cur):
                return default
        elif not isinstance(cur, Mapping) or key not in cur:
            return default
        cur = cur[key]
        if cur is None:
            return default
    return cur


def known(obj: Any, *path: str | int, default: Any = None) -> Any:
    """Like :func:`get`, but an unknown value (preview) gives ``default`` instead of raising."""
    try:
        return get(obj, *path, default=default)
    except UnknownValueError:
        return default


def as_int(value: Any) -> int | None:
    """Struct numbers arrive as floats; ``1.0`` -> 1. Non-numbers give None."""
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return int(value)


def fmt_number(value: float) -> str:
    return f"{value:.4g}"


def config_of(args: ResourceValidationArgs | StackValidationArgs, schema: PolicyConfigSchema) -> dict[str, Any]:
    """The policy's config with the schema defaults filled in (the engine does the same)."""
    values = {k: v["default"] for k, v in (schema.properties or {}).items() if "default" in v}
    values.update(args.get_config() or {})
    return values


def labels_match(labels: Mapping[str, Any], selector: Mapping[str, Any]) -> bool:
    """True when every ``selector`` pair is in ``labels`` (an empty selector matches nothing here)."""
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


@dataclass(frozen=True)
class PodTemplate:
    """The pod part of a workload: what the scheduler and kubelet will see."""

    kind: str
    """``Deployment``, ``Job``, ``ServingRuntime``, ..."""
    name: str
    """``metadata.name`` of the workload, else its Pulumi name."""
    namespace: str | None
    labels: Mapping[str, Any]
    spec: Mapping[str, Any]
    """Pod spec (or the ServingRuntime spec, which has the same container/placement fields)."""

    def containers(self) -> list[Mapping[str, Any]]:
        found: list[Mapping[str, Any]] = []
        for key in ("initContainers", "containers"):
            found += [c for c in get(self.spec, key, default=[]) if isinstance(c, Mapping)]
        return found

    def limits(self, container: Mapping[str, Any], resource: str) -> Any:
        return get(container, "resources", "limits", resource)

    def gpu_limit(self, resource: str = GPU_RESOURCE) -> float:
        total = 0.0
        for c in self.containers():
            value = self.limits(c, resource)
            try:
                total += float(value) if value is not None else 0.0
            except (TypeError, ValueError):
                total += 1.0  # a malformed limit still asks for a GPU
        return total


def pod_template(resource_type: str, props: Mapping[str, Any], fallback_name: str) -> PodTemplate | None:
    """The pod template of a workload resource, or None for other types."""
    kind = resource_type.rsplit(":", 1)[-1]
    name = known(props, "metadata", "name", default=fallback_name)
    namespace = known(props, "metadata", "namespace")
    if resource_type in SERVING_RUNTIME_TYPES:
        return PodTemplate(kind, name, namespace, get(props, "metadata", "labels", default={}),
                           get(props, "spec", default={}))
    path = POD_TEMPLATE_PATHS.get(resource_type)
    if path is None:
        return None
    template = get(props, *path, default={}) if path else props
    return PodTemplate(kind, name, namespace, get(template, "metadata", "labels", default={}),
                       get(template, "spec", default={}))


def container_name(container: Mapping[str, Any]) -> str:
    return str(known(container, "name", default="<unnamed>"))


def walk_strings(value: Any, path: str = "") -> Iterator[tuple[str, str]]:
    """Every known string leaf under ``value`` with its dotted path; unknown values are skipped."""
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, Mapping):
        for key in list(value):
            try:
                child = value[key]
            except UnknownValueError:
                continue
            yield from walk_strings(child, f"{path}.{key}" if path else str(key))
    elif isinstance(value, Sequence):
        for i in range(len(value)):
            try:
                child = value[i]
            except UnknownValueError:
                continue
            yield from walk_strings(child, f"{path}[{i}]")
