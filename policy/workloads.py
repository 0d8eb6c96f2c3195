"""Rules on workload pod templates: GPU limits and placement, resource requests and limits (ephemeral
storage too), HTTP probes of inference pods, and a PodDisruptionBudget for every workload of several
replicas."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    StackValidationArgs,
)

from .contract import GPU_RESOURCE, RUN_LABEL, TGI_APP
from .props import DEPLOYMENT, PodTemplate, as_int, config_of, container_name, get, labels_match, pod_template

INFERENCE_LABELS_PROPERTY = {
    "type": "object", "additionalProperties": {"type": "string"}, "default": {RUN_LABEL: TGI_APP},
    "description": "Pod labels that mark an inference pod (the serving pods' `run` label, TGI and vLLM alike, by "
                   "default).",
}

GPU_LIMITS_SCHEMA = PolicyConfigSchema(properties={
    "requireGpu": {
        "type": "boolean", "default": False,
        "description": "This stack is a GPU platform: inference pods must limit a GPU.",
    },
    "inferenceLabels": INFERENCE_LABELS_PROPERTY,
    "gpuResource": {"type": "string", "default": GPU_RESOURCE, "description": "Extended resource of a GPU."},
})


def gpu_limits_required(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """On GPU platforms (config requireGpu) every inference pod limits at least one GPU."""
    pod = pod_template(args.resource_type, args.props, args.name)
    cfg = config_of(args, GPU_LIMITS_SCHEMA)
    if pod is None or not labels_match(pod.labels, cfg["inferenceLabels"]):
        args.not_applicable("not an inference pod")
        return
    if not cfg["requireGpu"]:
        args.not_applicable("requireGpu is false: CPU inference is allowed on this stack")
        return
    if pod.gpu_limit(cfg["gpuResource"]) <= 0:
        names = ", ".join(f"'{container_name(c)}'" for c in pod.containers())
        report_violation(f"no container ({names}) limits {cfg['gpuResource']}; inference pods need a GPU "
                         f"on this stack (requireGpu)", None)


GPU_PLACEMENT_SCHEMA = PolicyConfigSchema(properties={
    "gpuResource": {"type": "string", "default": GPU_RESOURCE, "description": "Extended resource of a GPU."},
    "taintKey": {"type": "string", "default": GPU_RESOURCE, "description": "Key of the GPU nodes' taint."},
    "taintEffect": {"type": "string", "default": "NoSchedule", "description": "Effect of the GPU nodes' taint."},
})


def tolerates(tolerations: Sequence[Mapping[str, Any]], key: str, effect: str) -> bool:
    """Whether the tolerations let a pod onto nodes tainted ``key:<any value>:effect``."""
    for t in tolerations:
        t_key, t_effect = get(t, "key", default=""), get(t, "effect", default="")
        operator = get(t, "operator", default="Equal")
        if t_effect not in ("", effect):
            continue
        if t_key == "" and operator == "Exists":
            return True  # tolerates every taint
        if t_key == key:
            return True  # Exists, or Equal with the nodes' value: either is placement, not our business
    return False


def selects_nodes(spec: Mapping[str, Any]) -> bool:
    """A nodeSelector or a required node affinity: the pod lands only on chosen nodes."""
    if get(spec, "nodeSelector", default={}):
        return True
    terms = get(spec, "affinity", "nodeAffinity", "requiredDuringSchedulingIgnoredDuringExecution",
                "nodeSelectorTerms", default=[])
    return bool(terms)


def gpu_node_placement(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Pods that limit GPUs tolerate the GPU nodes' taint and select GPU nodes."""
    pod = pod_template(args.resource_type, args.props, args.name)
    cfg = config_of(args, GPU_PLACEMENT_SCHEMA)
    if pod is None or pod.gpu_limit(cfg["gpuResource"]) <= 0:
        args.not_applicable(f"no {cfg['gpuResource']} limit")
        return
    if not tolerates(get(pod.spec, "tolerations", default=[]), cfg["taintKey"], cfg["taintEffect"]):
        report_violation(f"pod limits {cfg['gpuResource']} but does not tolerate the GPU taint "
                         f"{cfg['taintKey']}:{cfg['taintEffect']}", None)
    if not selects_nodes(pod.spec):
        report_violation(f"pod limits {cfg['gpuResource']} but selects no GPU nodes "
                         "(set a nodeSelector or a required nodeAffinity)", None)


# --------------------------------------------------------------------------------------------------
# k8s-resources-required

RESOURCES_SCHEMA = PolicyConfigSchema(properties={
    "requireCpuLimit": {
        "type": "boolean", "default": True,
        "description": "Also require limits.cpu (some teams deliberately run without CPU limits).",
    },
    "exemptNamespaces": {
        "type": "array", "items": {"type": "string"}, "default": [],
        "description": "Namespaces of third-party add-ons this rule skips (e.g. kube-system, Datashim's dlf).",
    },
})


def pod_in_scope(args: ResourceValidationArgs, schema: Any) -> tuple[PodTemplate, dict[str, Any]] | None:
    """The workload's pod template and the rule's config, or None (said not applicable) for a resource that is
    not a workload or sits in one of the rule's ``exemptNamespaces``."""
    pod = pod_template(args.resource_type, args.props, args.name)
    if pod is None:
        args.not_applicable("not a workload")
        return None
    cfg = config_of(args, schema)
    if pod.namespace is not None and pod.namespace in cfg["exemptNamespaces"]:
        args.not_applicable(f"namespace {pod.namespace} is exempt")
        return None
    return pod, cfg


def resources_required(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Every container sets CPU and memory requests and limits."""
    found = pod_in_scope(args, RESOURCES_SCHEMA)
    if found is None:
        return
    pod, cfg = found
    wanted = [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")]
    if not cfg["requireCpuLimit"]:
        wanted.remove(("limits", "cpu"))
    for c in pod.containers():
        missing = [f"{kind}.{res}" for kind, res in wanted if get(c, "resources", kind, res) in (None, "")]
        if missing:
            report_violation(f"container '{container_name(c)}' sets no {', '.join(missing)}", None)


# --------------------------------------------------------------------------------------------------
# k8s-ephemeral-storage

EPHEMERAL_SCHEMA = PolicyConfigSchema(properties={
    "exemptNamespaces": {
        "type": "array", "items": {"type": "string"}, "default": [],
        "description": "Namespaces of third-party add-ons this rule skips (e.g. kube-system, Datashim's dlf).",
    },
})


def _sized_disk_scratch(spec: Mapping[str, Any]) -> list[str]:
    """Names of the pod's disk-backed (not memory) emptyDirs that have a sizeLimit."""
    return [str(get(v, "name", default="?")) for v in get(spec, "volumes", default=[])
            if get(v, "emptyDir") is not None and get(v, "emptyDir", "medium", default="") != "Memory"
            and get(v, "emptyDir", "sizeLimit") not in (None, "")]


def ephemeral_storage(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Every container requests ephemeral-storage (the scheduler then places the pod on a node with the disk,
    and the kubelet does not evict it for using what it asked for), and limits it when the pod has a sized
    disk emptyDir."""
    found = pod_in_scope(args, EPHEMERAL_SCHEMA)
    if found is None:
        return
    pod, cfg = found
    scratch = _sized_disk_scratch(pod.spec)
    for c in pod.containers():
        missing = []
        if get(c, "resources", "requests", "ephemeral-storage") in (None, ""):
            missing.append("requests.ephemeral-storage")
        if scratch and get(c, "resources", "limits", "ephemeral-storage") in (None, ""):
            missing.append(f"limits.ephemeral-storage (the pod has sized emptyDirs: {', '.join(scratch)})")
        if missing:
            report_violation(f"container '{container_name(c)}' sets no {', '.join(missing)}", None)


# --------------------------------------------------------------------------------------------------
# inference-http-probes

PROBES_SCHEMA = PolicyConfigSchema(properties={"inferenceLabels": INFERENCE_LABELS_PROPERTY})


def inference_http_probes(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Inference containers have HTTP startup and readiness probes (the model loads for minutes)."""
    pod = pod_template(args.resource_type, args.props, args.name)
    cfg = config_of(args, PROBES_SCHEMA)
    if pod is None or not labels_match(pod.labels, cfg["inferenceLabels"]):
        args.not_applicable("not an inference pod")
        return
    for c in get(pod.spec, "containers", default=[]):
        for probe in ("startupProbe", "readinessProbe"):
            if get(c, probe) is None:
                report_violation(f"container '{container_name(c)}' has no {probe}", None)
            elif get(c, probe, "httpGet") is None:
                report_violation(f"container '{container_name(c)}' has a {probe} that is not an HTTP check "
                                 "(httpGet)", None)


# --------------------------------------------------------------------------------------------------
# k8s-pdb-multi-replica

STATEFUL_SET = "kubernetes:apps/v1:StatefulSet"
PDB = "kubernetes:policy/v1:PodDisruptionBudget"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"

PDB_SCHEMA = PolicyConfigSchema(properties={
    "exemptNamespaces": {
        "type": "array", "items": {"type": "string"}, "default": [],
        "description": "Namespaces of third-party add-ons this rule skips.",
    },
})


def _most_replicas(r: PolicyResource, namespace: str, name: str, hpas: Sequence[PolicyResource]) -> int:
    """The workload's ``spec.replicas`` (default 1), or the ``maxReplicas`` of an HPA scaling it."""
    most = as_int(get(r.props, "spec", "replicas", default=1)) or 0
    for hpa in hpas:
        target = get(hpa.props, "spec", "scaleTargetRef", default={})
        if (get(hpa.props, "metadata", "namespace", default="default") == namespace
                and get(target, "kind") == r.resource_type.rsplit(":", 1)[-1] and get(target, "name") == name):
            most = max(most, as_int(get(hpa.props, "spec", "maxReplicas", default=1)) or 0)
    return most


def _covers(pdb: PolicyResource, namespace: str, labels: Mapping[str, Any]) -> bool:
    selector = get(pdb.props, "spec", "selector", "matchLabels", default={})
    return (get(pdb.props, "metadata", "namespace", default="default") == namespace
            and labels_match(labels, selector))


def pdb_multi_replica(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every Deployment or StatefulSet that runs (or an HPA may scale it to) more than one replica has a
    PodDisruptionBudget in its namespace selecting its pods: a node drain then evicts its replicas one
    budget at a time instead of all at once."""
    cfg = config_of(args, PDB_SCHEMA)
    hpas = [r for r in args.resources if r.resource_type == HPA]
    pdbs = [r for r in args.resources if r.resource_type == PDB]
    for r in args.resources:
        if r.resource_type not in (DEPLOYMENT, STATEFUL_SET):
            continue
        pod = pod_template(r.resource_type, r.props, r.name)
        if pod is None:
            continue
        namespace = pod.namespace or "default"
        if namespace in cfg["exemptNamespaces"]:
            continue
        most = _most_replicas(r, namespace, pod.name, hpas)
        if most > 1 and not any(_covers(pdb, namespace, pod.labels) for pdb in pdbs):
            report_violation(f"{pod.kind} '{pod.name}' runs up to {most} replicas but no PodDisruptionBudget in "
                             f"namespace '{namespace}' selects its pods: a node drain may evict them all at once",
                             r.urn)
