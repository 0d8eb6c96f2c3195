"""LLM-canary guardrails: the validators and the POLICIES list of the llm-ab-guardrails pack.

Pure module (tests import it; ``__main__.py`` only builds the pack). It imports nothing from the
program: the engine runs the pack with only this directory on ``sys.path``.

What policies see (pulumi 3.272 engine, pulumi-policy 1.21):

- ``props`` are the resource inputs with camelCase keys; numbers arrive as floats (protobuf Struct).
- Secret values arrive **unwrapped**: the engine marshals them with ``KeepSecrets`` and the SDK's
  ``deserialize_properties`` strips the secret marker, so a policy cannot tell a Pulumi secret from
  a literal. Rules therefore look at *what* a value is (a known default, a literal env value) and,
  at stack level, at *where* it comes from (property dependencies).
- Unknown values (previews of not-yet-created resources) raise ``UnknownValueError`` when read; the
  SDK turns that into an advisory "can't run policy ... during preview". Rules that walk every value
  skip unknown ones instead of giving up.
- Resource options carry ``protect`` but not ``retainOnDelete`` (``AnalyzerResourceOptions`` has no
  such field), see :func:`weights_volume_protected`.
"""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    PolicyConfigSchema,
    PolicyPack,  # noqa: F401 -- re-exported for __main__.py, which stays two statements
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.proxy import UnknownValueError

PACK_ENFORCEMENT = EnforcementLevel.MANDATORY
"""Pack default; every policy below sets its own level anyway."""

TGI_APP = "text-generation-inference"
"""Value of the TGI pods' ``run`` label and the traffic Service's name (components/naming.py)."""
VARIANT_LABEL = "type"
"""Pod label telling stable from canary (components/naming.py ``tgi_selector``)."""
DECLARED_PERCENT_ANNOTATION = "llm-ab/declared-canary-percent"
"""Set on both TGI Deployments' metadata from ``split.*`` (components/naming.py; a test keeps the two in
sync, and this module stays importable without the program)."""
SPLIT_TOLERANCE_ANNOTATION = "llm-ab/split-tolerance"
WEIGHTS_COMPONENT = "object-store"
"""``app.kubernetes.io/component`` of MinIO's objects, including the weights claim."""

GPU_RESOURCE = "nvidia.com/gpu"

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
DATASET = "kubernetes:datashim.io/v1alpha1:Dataset"
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
WORKLOAD_TYPES = (*POD_TEMPLATE_PATHS, *SERVING_RUNTIME_TYPES)


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


# --------------------------------------------------------------------------------------------------
# k8s-pinned-images

PINNED_IMAGES_SCHEMA = PolicyConfigSchema(properties={
    "floatingTags": {
        "type": "array", "items": {"type": "string"},
        "default": ["latest", "main", "master", "stable", "edge", "nightly", "dev", "head"],
        "description": "Tags that move (compared case-insensitively); never accepted as a pin.",
    },
    "allowedRegistries": {
        "type": "array", "items": {"type": "string"}, "default": [],
        "description": "Registry hosts images may come from (e.g. ghcr.io); empty allows any.",
    },
})

_DIGEST = re.compile(r"@sha256:[0-9a-f]{64}$")


def image_is_pinned(image: str, floating_tags: Sequence[str]) -> bool:
    """A sha256 digest, or a tag that names a version (has a digit) and is not a floating one."""
    if _DIGEST.search(image):
        return True
    if "@" in image:
        return False  # a digest that is not a full sha256
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return False
    tag = last.rsplit(":", 1)[1]
    return tag.lower() not in {t.lower() for t in floating_tags} and any(ch.isdigit() for ch in tag)


def image_registry(image: str) -> str:
    """Registry host of an image reference; Docker Hub for bare names like ``python:3.11``."""
    first, sep, _ = image.partition("/")
    if sep and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def pinned_images(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Every container image is pinned by an exact version tag or a digest."""
    pod = pod_template(args.resource_type, args.props, args.name)
    if pod is None:
        args.not_applicable("not a workload")
        return
    cfg = config_of(args, PINNED_IMAGES_SCHEMA)
    registries = list(cfg["allowedRegistries"])
    for c in pod.containers():
        image = get(c, "image")
        if not isinstance(image, str) or not image:
            report_violation(f"container '{container_name(c)}' sets no image", None)
            continue
        if not image_is_pinned(image, cfg["floatingTags"]):
            report_violation(f"container '{container_name(c)}' uses unpinned image '{image}'", None)
        if registries and image_registry(image) not in registries:
            report_violation(f"container '{container_name(c)}' uses image '{image}' from registry "
                             f"'{image_registry(image)}', not one of {', '.join(registries)}", None)


# --------------------------------------------------------------------------------------------------
# gpu-limits-required and gpu-node-placement

INFERENCE_LABELS_PROPERTY = {
    "type": "object", "additionalProperties": {"type": "string"}, "default": {"run": TGI_APP},
    "description": "Pod labels that mark an inference pod (TGI's `run` label by default).",
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


def resources_required(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Every container sets CPU and memory requests and limits."""
    pod = pod_template(args.resource_type, args.props, args.name)
    if pod is None:
        args.not_applicable("not a workload")
        return
    cfg = config_of(args, RESOURCES_SCHEMA)
    if pod.namespace is not None and pod.namespace in cfg["exemptNamespaces"]:
        args.not_applicable(f"namespace {pod.namespace} is exempt")
        return
    wanted = [("requests", "cpu"), ("requests", "memory"), ("limits", "cpu"), ("limits", "memory")]
    if not cfg["requireCpuLimit"]:
        wanted.remove(("limits", "cpu"))
    for c in pod.containers():
        missing = [f"{kind}.{res}" for kind, res in wanted if get(c, "resources", kind, res) in (None, "")]
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
# no-plaintext-credentials

CREDENTIALS_SCHEMA = PolicyConfigSchema(properties={
    "knownDefaults": {
        "type": "array", "items": {"type": "string"},
        "default": ["minioadmin", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
        "description": "Well-known default or example credentials, rejected anywhere in any value.",
    },
    "placeholderValues": {
        "type": "array", "items": {"type": "string"},
        "default": ["ACCESS_KEY", "SECRET_KEY", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "changeme", "password"],
        "description": "Placeholders rejected as whole values where credentials live (Secret data, "
                       "env values, container args, Dataset spec.local).",
    },
    "sensitiveEnvPattern": {
        "type": "string",
        "default": r"(?:^|_)(?:SECRET|PASSWORD|PASSWD|ACCESS_KEY|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIALS?)(?:_|$)",
        "description": "Env var names (case-insensitive regex) that must come from a Secret, never `value`.",
    },
    "referenceEnvSuffixes": {
        "type": "array", "items": {"type": "string"}, "default": ["_NAME", "_FILE", "_PATH", "_DIR", "_REF"],
        "description": "Sensitive-looking env names that hold a reference, not a credential (e.g. SECRET_NAME).",
    },
})


def _decoded(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def credential_values(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, value) of every known value that holds or configures a credential."""
    if resource_type == SECRET:
        for path, value in walk_strings(known(props, "stringData", default={}), "stringData"):
            yield path, value
        for path, value in walk_strings(known(props, "data", default={}), "data"):
            yield path, _decoded(value) or value
    if resource_type == DATASET:
        yield from walk_strings(known(props, "spec", "local", default={}), "spec.local")
    pod = pod_template(resource_type, props, "")
    if pod is not None:
        for c in pod.containers():
            name = container_name(c)
            for env in known(c, "env", default=[]):
                value = known(env, "value")
                if isinstance(value, str):
                    yield f"container '{name}' env {known(env, 'name', default='?')}", value
            for key in ("command", "args"):
                for i, value in enumerate(known(c, key, default=[])):
                    if isinstance(value, str):
                        yield f"container '{name}' {key}[{i}]", value


def no_plaintext_credentials(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """No known default credentials anywhere; secret-named env vars come from Secrets, not literals."""
    cfg = config_of(args, CREDENTIALS_SCHEMA)
    defaults = [d for d in cfg["knownDefaults"] if d]
    for path, value in walk_strings(args.props):
        decoded = _decoded(value) if path.startswith("data.") and args.resource_type == SECRET else None
        for text in (value, decoded or ""):
            hit = next((d for d in defaults if d.lower() in text.lower()), None)
            if hit:
                report_violation(f"{path} contains the well-known default credential '{hit}'", None)
                break
    placeholders = {p.lower() for p in cfg["placeholderValues"]}
    for where, value in credential_values(args.resource_type, args.props):
        if value.strip().lower() in placeholders:
            report_violation(f"{where} is the placeholder credential '{value.strip()}'", None)
    pod = pod_template(args.resource_type, args.props, args.name)
    if pod is None:
        return
    sensitive = re.compile(cfg["sensitiveEnvPattern"], re.IGNORECASE)
    suffixes = tuple(s.upper() for s in cfg["referenceEnvSuffixes"])
    for c in pod.containers():
        for env in known(c, "env", default=[]):
            name = known(env, "name", default="")
            if not isinstance(name, str) or not sensitive.search(name) or name.upper().endswith(suffixes):
                continue
            if known(env, "value", default="") != "" or _is_unknown_value(env):
                report_violation(f"container '{container_name(c)}' sets {name} from a literal value; "
                                 "use valueFrom.secretKeyRef or envFrom a Secret", None)


def _is_unknown_value(env: Mapping[str, Any]) -> bool:
    """A ``value`` that is unknown during preview is still a value written into the pod spec."""
    try:
        get(env, "value")
    except UnknownValueError:
        return True
    return False


# --------------------------------------------------------------------------------------------------
# k8s-secret-data-not-literal (stack)

SECRET_DATA_SCHEMA = PolicyConfigSchema(properties={
    "allowedSecrets": {
        "type": "array", "items": {"type": "string"}, "default": [],
        "description": "Secrets (metadata.name or Pulumi name) whose values may come from stack config.",
    },
})


def secret_data_not_literal(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Secret values come from other resources (e.g. pulumi-random), not from literals in the program.

    Policies receive secret values unwrapped, so "is it a Pulumi secret" cannot be checked; where a
    value comes from can: a value computed from another resource has a property dependency, a
    literal (or a stack-config value) has none. Empty values are ignored.
    """
    cfg = config_of(args, SECRET_DATA_SCHEMA)
    allowed = set(cfg["allowedSecrets"])
    for r in args.resources:
        if r.resource_type != SECRET:
            continue
        name = known(r.props, "metadata", "name", default=r.name)
        if name in allowed or r.name in allowed:
            continue
        # After `up`, stack policies see outputs: the API server's `data` for our `stringData` input.
        # The dependencies stay keyed by input, so either key's dependencies count for both.
        keys = ("stringData", "data")
        with_values = [k for k in keys if any(v for _, v in walk_strings(known(r.props, k, default={})))]
        if with_values and not any(r.property_dependencies.get(k) for k in keys):
            report_violation(f"Secret '{name}' sets {' and '.join(with_values)} from literals (or stack config), "
                             "not from a generating resource; generate it (pulumi-random) or list it in "
                             "allowedSecrets", r.urn)


# --------------------------------------------------------------------------------------------------
# k8s-no-public-services

SERVICE_SCHEMA = PolicyConfigSchema(properties={
    "allowedTypes": {
        "type": "array", "items": {"type": "string"}, "default": ["ClusterIP", "ExternalName"],
        "description": "Service types allowed (add LoadBalancer or NodePort to expose services).",
    },
    "allowedServices": {
        "type": "array", "items": {"type": "string"}, "default": [],
        "description": "Services (metadata.name) that may use any type.",
    },
})


def no_public_services(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Services stay inside the cluster: no LoadBalancer or NodePort unless config allows it."""
    if args.resource_type != SERVICE:
        args.not_applicable("not a Service")
        return
    cfg = config_of(args, SERVICE_SCHEMA)
    name = known(args.props, "metadata", "name", default=args.name)
    kind = get(args.props, "spec", "type", default="ClusterIP")
    if name in cfg["allowedServices"] or kind in cfg["allowedTypes"]:
        return
    report_violation(f"Service '{name}' is of type {kind}, which exposes it outside the cluster; "
                     f"allowed types: {', '.join(cfg['allowedTypes'])}", None)


# --------------------------------------------------------------------------------------------------
# datashim-dataset-read-only


def dataset_read_only(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """Datashim Datasets mount the weights read-only (spec.local.readonly is the string "true")."""
    if args.resource_type != DATASET:
        args.not_applicable("not a Datashim Dataset")
        return
    name = known(args.props, "metadata", "name", default=args.name)
    readonly = get(args.props, "spec", "local", "readonly")
    if readonly != "true":
        shown = "unset" if readonly is None else repr(readonly)
        report_violation(f"Dataset '{name}' is not read-only: spec.local.readonly is {shown}, "
                         "expected the string 'true'", None)


# --------------------------------------------------------------------------------------------------
# storage-weights-protected


def weights_volume_protected(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """The MinIO weights claim is protected, so no update or destroy deletes the weights.

    Only ``protect`` is visible to policies: the engine's AnalyzerResourceOptions (pulumi 3.272)
    carries protect, ignoreChanges, deleteBeforeReplace, aliases, customTimeouts,
    additionalSecretOutputs and parent, not retainOnDelete. A claim kept by retainOnDelete alone
    is therefore reported (advisory by default); tests/policy checks retainOnDelete under mocks.
    """
    labels = known(args.props, "metadata", "labels", default={})
    if args.resource_type != PVC or labels.get("app.kubernetes.io/component") != WEIGHTS_COMPONENT:
        args.not_applicable("not the weights volume claim")
        return
    if args.opts is not None and args.opts.protect:
        return
    name = known(args.props, "metadata", "name", default=args.name)
    report_violation(f"weights volume claim '{name}' is not protected; retainOnDelete is invisible to policies "
                     "(the engine sends only `protect`), so only protect=True satisfies this check", None)


# --------------------------------------------------------------------------------------------------
# Stack-level: the A/B split


@dataclass(frozen=True)
class Variant:
    resource: PolicyResource
    pod: PodTemplate
    variant: str
    replicas: int


def tgi_variants(resources: Sequence[PolicyResource]) -> list[Variant]:
    """TGI Deployments labelled run=text-generation-inference and type=stable|canary."""
    found = []
    for r in resources:
        if r.resource_type != DEPLOYMENT:
            continue
        pod = pod_template(r.resource_type, r.props, r.name)
        if pod is None or pod.labels.get("run") != TGI_APP:
            continue
        variant = pod.labels.get(VARIANT_LABEL)
        if variant in ("stable", "canary"):
            replicas = as_int(get(r.props, "spec", "replicas", default=1))
            found.append(Variant(r, pod, variant, replicas if replicas is not None else 1))
    return found


def _share(variants: Sequence[Variant]) -> tuple[int, int]:
    canary = sum(v.replicas for v in variants if v.variant == "canary")
    return canary, sum(v.replicas for v in variants)


CANARY_CAP_SCHEMA = PolicyConfigSchema(properties={
    "maxCanaryPercent": {
        "type": "number", "minimum": 0, "maximum": 100, "default": 50,
        "description": "Largest canary share of TGI replicas this stack may run, in percent (e.g. prod: 20).",
    },
})


def canary_share_cap(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The canary's share of TGI replicas stays at or below the stack's cap."""
    variants = tgi_variants(args.resources)
    canary, total = _share(variants)
    if total == 0:
        args.not_applicable("no TGI replicas")
        return
    cap = float(config_of(args, CANARY_CAP_SCHEMA)["maxCanaryPercent"])
    share = 100.0 * canary / total
    if share > cap + 1e-9:
        report_violation(f"the canary runs {canary} of {total} TGI replicas ({fmt_number(share)}%), "
                         f"above this stack's cap of {fmt_number(cap)}%", None)


TRAFFIC_SCHEMA = PolicyConfigSchema(properties={
    "trafficService": {
        "type": "string", "default": TGI_APP,
        "description": "metadata.name of the Service that splits traffic over both variants.",
    },
})


def traffic_service(resources: Sequence[PolicyResource], name: str) -> PolicyResource | None:
    for r in resources:
        if r.resource_type == SERVICE and known(r.props, "metadata", "name") == name:
            return r
    return None


def split_selects_both_variants(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Both variants exist and the traffic Service selects exactly their pods."""
    cfg = config_of(args, TRAFFIC_SCHEMA)
    variants = tgi_variants(args.resources)
    for wanted in ("stable", "canary"):
        if not any(v.variant == wanted for v in variants):
            report_violation(f"no {wanted} TGI Deployment (pod labels run={TGI_APP}, {VARIANT_LABEL}={wanted})",
                             None)
    svc = traffic_service(args.resources, cfg["trafficService"])
    if svc is None:
        report_violation(f"no traffic Service '{cfg['trafficService']}'", None)
        return
    selector = dict(get(svc.props, "spec", "selector", default={}))
    if not selector:
        report_violation(f"traffic Service '{cfg['trafficService']}' has no selector", svc.urn)
        return
    shown = ", ".join(f"{k}={v}" for k, v in sorted(selector.items()))
    for v in variants:
        if not labels_match(v.pod.labels, selector):
            report_violation(f"traffic Service selector {{{shown}}} does not select the {v.variant} pods of "
                             f"Deployment '{v.pod.name}'", svc.urn)
    svc_namespace = known(svc.props, "metadata", "namespace")
    variant_urns = {v.resource.urn for v in variants}
    for r in args.resources:
        if r.urn in variant_urns:
            continue
        pod = pod_template(r.resource_type, r.props, r.name)
        if pod is None or r.resource_type in SERVING_RUNTIME_TYPES:
            continue
        same_namespace = svc_namespace is None or pod.namespace is None or pod.namespace == svc_namespace
        if same_namespace and labels_match(pod.labels, selector):
            report_violation(f"traffic Service selector {{{shown}}} also selects the pods of {pod.kind} "
                             f"'{pod.name}'", r.urn)


SPLIT_TOLERANCE_SCHEMA = PolicyConfigSchema(properties={
    "tolerance": {
        "type": "number", "minimum": 0, "default": 5,
        "description": "Points allowed between effective and declared split when the TGI Deployments carry "
                       f"no {SPLIT_TOLERANCE_ANNOTATION} annotation.",
    },
})


def _declared_annotation(variants: Sequence[Variant], annotation: str) -> dict[str, Any]:
    """``annotation`` from each TGI Deployment's own metadata (None when missing), by Deployment name."""
    return {v.pod.name: (get(v.resource.props, "metadata", "annotations", default={}) or {}).get(annotation)
            for v in variants}


def _as_float(raw: Any) -> float | None:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def _agree(values: Mapping[str, Any]) -> bool:
    """All the same value; numbers compare as numbers ("10" agrees with "10.0"), anything else only with itself."""
    return len({raw if _as_float(raw) is None else _as_float(raw) for raw in values.values()}) <= 1


def _disagreement(annotation: str, values: Mapping[str, Any]) -> str:
    shown = ", ".join(f"'{name}' has {raw!r}" for name, raw in values.items())
    return f"the TGI Deployments disagree on annotation {annotation}: {shown}"


def split_within_tolerance(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The replica split is within tolerance of the canary percent both TGI Deployments declare."""
    cfg = config_of(args, SPLIT_TOLERANCE_SCHEMA)
    variants = sorted(tgi_variants(args.resources), key=lambda v: (v.variant != "stable", v.pod.name))
    if not variants:
        args.not_applicable("no TGI Deployments")
        return
    declared_by = _declared_annotation(variants, DECLARED_PERCENT_ANNOTATION)
    missing = [v for v in variants if _as_float(declared_by[v.pod.name]) is None]
    for v in missing:
        report_violation(f"TGI Deployment '{v.pod.name}' declares no canary percent "
                         f"(annotation {DECLARED_PERCENT_ANNOTATION} is {declared_by[v.pod.name]!r})", v.resource.urn)
    if missing:
        return
    if not _agree(declared_by):
        report_violation(_disagreement(DECLARED_PERCENT_ANNOTATION, declared_by), None)
        return
    declared = _as_float(next(iter(declared_by.values())))
    assert declared is not None
    tolerance_by = _declared_annotation(variants, SPLIT_TOLERANCE_ANNOTATION)
    if not _agree(tolerance_by):
        report_violation(_disagreement(SPLIT_TOLERANCE_ANNOTATION, tolerance_by), None)
        return
    tolerance = _as_float(next(iter(tolerance_by.values())))
    if tolerance is None:  # none of them says, or not as a number
        tolerance = float(cfg["tolerance"])
    canary, total = _share(variants)
    if total == 0:
        report_violation(f"no TGI replicas to realise the declared {fmt_number(declared)}% canary", None)
        return
    effective = 100.0 * canary / total
    if abs(effective - declared) > tolerance + 1e-9:
        report_violation(f"{canary} of {total} TGI replicas give a {fmt_number(effective)}% canary, "
                         f"{fmt_number(abs(effective - declared))} points from the declared "
                         f"{fmt_number(declared)}%, more than the tolerance of {fmt_number(tolerance)}", None)


# --------------------------------------------------------------------------------------------------
# EKS GPU node groups

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
        "type": "number", "minimum": 1, "default": 100,
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


# --------------------------------------------------------------------------------------------------
# The pack

POLICIES: list[ResourceValidationPolicy | StackValidationPolicy] = [
    ResourceValidationPolicy(
        name="k8s-pinned-images",
        description="Container images are pinned by an exact version tag or a sha256 digest, never :latest "
                    "or untagged.",
        validate=pinned_images,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PINNED_IMAGES_SCHEMA,
        remediation_steps="Use a release tag (e.g. text-generation-inference:1.3.4) or image@sha256:<digest>.",
    ),
    ResourceValidationPolicy(
        name="gpu-limits-required",
        description="On GPU platforms every inference pod limits nvidia.com/gpu.",
        validate=gpu_limits_required,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=GPU_LIMITS_SCHEMA,
        remediation_steps="Set tgi.gpusPerReplica > 0 in the stack config.",
    ),
    ResourceValidationPolicy(
        name="gpu-node-placement",
        description="Pods that limit GPUs tolerate the GPU nodes' taint and select GPU nodes.",
        validate=gpu_node_placement,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=GPU_PLACEMENT_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="k8s-resources-required",
        description="Every container sets CPU and memory requests and limits.",
        validate=resources_required,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=RESOURCES_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="inference-http-probes",
        description="Inference containers have HTTP startup and readiness probes.",
        validate=inference_http_probes,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PROBES_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="no-plaintext-credentials",
        description="No well-known default credentials, and secret-named env vars come from Secrets, not "
                    "literal values.",
        validate=no_plaintext_credentials,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=CREDENTIALS_SCHEMA,
        remediation_steps="Generate credentials with pulumi-random and pass them through a Secret.",
    ),
    StackValidationPolicy(
        name="k8s-secret-data-not-literal",
        description="Kubernetes Secret values are computed from other resources, not written as literals.",
        validate=secret_data_not_literal,
        # Advisory: a value from `pulumi config set --secret` looks exactly like a literal to a policy.
        enforcement_level=EnforcementLevel.ADVISORY,
        config_schema=SECRET_DATA_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="k8s-no-public-services",
        description="Services are not of type LoadBalancer or NodePort unless the stack's policy config "
                    "allows it.",
        validate=no_public_services,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=SERVICE_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="datashim-dataset-read-only",
        description="Datashim Datasets mount the model weights read-only.",
        validate=dataset_read_only,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="storage-weights-protected",
        description="The MinIO weights volume claim is protected against deletion.",
        validate=weights_volume_protected,
        # Advisory: the program keeps the claim with retainOnDelete, which policies cannot see.
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    StackValidationPolicy(
        name="split-canary-share-cap",
        description="The canary's share of TGI replicas is at most the stack's cap.",
        validate=canary_share_cap,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=CANARY_CAP_SCHEMA,
    ),
    StackValidationPolicy(
        name="split-selects-both-variants",
        description="Stable and canary TGI Deployments exist and the traffic Service selects exactly their pods.",
        validate=split_selects_both_variants,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=TRAFFIC_SCHEMA,
    ),
    StackValidationPolicy(
        name="split-within-tolerance",
        description="The replica split is within tolerance of the canary percent declared on both TGI "
                    "Deployments.",
        validate=split_within_tolerance,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=SPLIT_TOLERANCE_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="eks-gpu-nodegroup-tainted",
        description="EKS GPU node groups carry the nvidia.com/gpu NO_SCHEDULE taint.",
        validate=gpu_node_group_tainted,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=NODE_GROUP_TAINT_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="eks-gpu-nodegroup-disk",
        description="EKS GPU node groups have disks of at least the configured size (default 100 GiB).",
        validate=gpu_node_group_disk,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=NODE_GROUP_DISK_SCHEMA,
    ),
]
