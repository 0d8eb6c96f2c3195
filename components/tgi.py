"""Text Generation Inference server: one variant (stable or canary) of the A/B experiment.

Facts: ``MODEL_ID`` may be a local directory; ``HF_HUB_OFFLINE`` must be
exactly "1"; ``/health`` answers only after load and warmup; ``/dev/shm`` must be a memory
emptyDir; Kubernetes service links can clobber TGI's ``PORT``-style variables; token-limit flags
were renamed in 2.1 (``MAX_INPUT_LENGTH`` -> ``MAX_INPUT_TOKENS``).
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.naming import (
    TGI_APP,
    TGI_PORT,
    common_labels,
    dataset_labels,
    service_url,
    tgi_deployment_name,
    tgi_selector,
)
from components.podspec import GPU_RESOURCE, container_security, gpu_tolerations, http_probe, pod_security

STARTUP_PROBE_PERIOD = 10
ROLLOUT_MARGIN_SECONDS = 300
"""Added to the startup budget for Pulumi's wait: image pull and scheduling come first."""


def uses_legacy_token_flags(image: str) -> bool:
    """True for TGI images before 2.1, which call ``max-input-tokens`` ``max-input-length``."""
    match = re.search(r":(\d+)\.(\d+)(?:\.\d+)?(?:[-@]|$)", image)
    if not match:
        return False  # digest-only or unknown tag: assume a current release
    return (int(match.group(1)), int(match.group(2))) < (2, 1)


def token_limit_env(image: str, *, max_input: int, max_total: int, max_prefill: int) -> list[dict[str, str]]:
    input_var = "MAX_INPUT_LENGTH" if uses_legacy_token_flags(image) else "MAX_INPUT_TOKENS"
    return [
        {"name": input_var, "value": str(max_input)},
        {"name": "MAX_TOTAL_TOKENS", "value": str(max_total)},
        {"name": "MAX_BATCH_PREFILL_TOKENS", "value": str(max_prefill)},
    ]


def startup_failure_threshold(budget_seconds: int) -> int:
    """Startup-probe failures allowed so a replica gets its whole startup budget."""
    return max(1, math.ceil(budget_seconds / STARTUP_PROBE_PERIOD))


def rollout_timeout(budget_seconds: int) -> str:
    """Pulumi's wait for the Deployment: the startup budget plus scheduling and pull time."""
    return f"{budget_seconds + ROLLOUT_MARGIN_SECONDS}s"


@dataclass(frozen=True, kw_only=True)
class TgiServerArgs:
    """Inputs for TgiServer."""

    namespace: pulumi.Input[str]
    stack: str
    variant: str
    """``stable`` or ``canary``: the ``type`` pod label and the name suffix."""
    image: str
    """TGI image pinned by tag or digest."""
    dataset_name: str
    """Datashim Dataset mounted read-only at /mnt/datasets/<dataset_name>."""
    model_path: str
    """Directory of the staged weights inside the pod; becomes MODEL_ID."""
    replicas: int
    """Replicas of this variant (0 switches the variant off)."""
    gpus: int = 0
    """``nvidia.com/gpu`` limit per replica; 0 runs on CPU."""
    max_input_tokens: int = 512
    max_total_tokens: int = 1024
    max_batch_prefill_tokens: int = 1024
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """CPU/memory requests and limits (the GPU limit is added from ``gpus``)."""
    startup_budget_seconds: int = 1800
    shm_size: str = "1Gi"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, str]] = ()
    """Extra tolerations; the GPU taint is tolerated automatically when ``gpus`` > 0."""
    run_as_non_root: bool = False
    split_annotations: Mapping[str, str] = field(default_factory=dict)
    """The declared split (:func:`components.naming.split_annotations`) for the Deployment's own
    ``metadata.annotations``; never on the pod template, so a split change rolls no pods."""

    def __post_init__(self) -> None:
        if self.variant not in ("stable", "canary"):
            raise ValueError(f"variant must be stable or canary, got {self.variant!r}")
        if self.replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {self.replicas}")
        if self.gpus < 0:
            raise ValueError(f"gpus must be >= 0, got {self.gpus}")


def tgi_container(args: TgiServerArgs) -> dict[str, Any]:
    """The TGI container spec for one variant."""
    env = [
        {"name": "MODEL_ID", "value": args.model_path},
        {"name": "HF_HUB_OFFLINE", "value": "1"},  # the Rust router compares the string "1"
        {"name": "PORT", "value": str(TGI_PORT)},
        {"name": "HUGGINGFACE_HUB_CACHE", "value": "/data"},
        *token_limit_env(args.image, max_input=args.max_input_tokens, max_total=args.max_total_tokens,
                         max_prefill=args.max_batch_prefill_tokens),
    ]
    launcher_args: list[str] = []
    limits = dict(args.resources.get("limits", {}))
    if args.gpus > 0:
        limits[GPU_RESOURCE] = str(args.gpus)
        env.append({"name": "NUM_SHARD", "value": str(args.gpus)})
    else:
        # CPU: no custom CUDA kernels, one shard, and see no GPU even on a GPU node.
        launcher_args.append("--disable-custom-kernels")
        env += [{"name": "SHARDED", "value": "false"}, {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}]
    return {
        "name": "tgi",
        "image": args.image,
        "args": launcher_args,
        "env": env,
        "ports": [{"name": "http", "containerPort": TGI_PORT}],
        # The server listens only after download, load and warmup; the startup probe gives it the
        # whole budget, then readiness takes over. Liveness uses TCP: /health runs a forward pass.
        "startupProbe": http_probe("/health", "http", period=STARTUP_PROBE_PERIOD,
                                   failures=startup_failure_threshold(args.startup_budget_seconds)),
        "readinessProbe": http_probe("/health", "http", period=15, failures=3, timeout=10),
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 30, "failureThreshold": 4},
        "resources": {"requests": dict(args.resources.get("requests", {})), "limits": limits},
        "securityContext": container_security(read_only_root=False),
        "volumeMounts": [
            {"name": "shm", "mountPath": "/dev/shm"},
            {"name": "data", "mountPath": "/data"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def tgi_pod_spec(args: TgiServerArgs) -> dict[str, Any]:
    tolerations = [dict(t) for t in args.tolerations]
    if args.gpus > 0:
        tolerations += [t for t in gpu_tolerations() if t not in tolerations]
    spec: dict[str, Any] = {
        # Service links inject <SVC>_PORT variables that TGI's launcher would parse.
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "securityContext": pod_security(non_root=args.run_as_non_root),
        "terminationGracePeriodSeconds": 120,
        "containers": [tgi_container(args)],
        "volumes": [
            {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": args.shm_size}},
            {"name": "data", "emptyDir": {"sizeLimit": "10Gi"}},
            {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
        ],
    }
    if tolerations:
        spec["tolerations"] = tolerations
    if args.node_selector:
        spec["nodeSelector"] = dict(args.node_selector)
    return spec


class TgiServer(pulumi.ComponentResource):
    """A TGI Deployment and its per-variant ClusterIP Service."""

    deployment_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    url: pulumi.Output[str]
    """In-cluster URL of this variant alone."""
    replicas: pulumi.Output[int]

    def __init__(self, name: str, args: TgiServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:serving:TgiServer", name, None, opts)
        selector = tgi_selector(args.variant)
        labels = {**common_labels("inference", args.stack), "app.kubernetes.io/name": TGI_APP, **selector}
        timeout = rollout_timeout(args.startup_budget_seconds)
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deploy",
            metadata={"name": tgi_deployment_name(args.variant), "namespace": args.namespace, "labels": labels,
                      **({"annotations": dict(args.split_annotations)} if args.split_annotations else {})},
            spec={
                "replicas": args.replicas,
                "selector": {"matchLabels": selector},
                "progressDeadlineSeconds": args.startup_budget_seconds + ROLLOUT_MARGIN_SECONDS,
                # Bring a new replica up before taking an old one down: capacity is the experiment.
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": {**labels, **dataset_labels(args.dataset_name)}},
                    "spec": tgi_pod_spec(args),
                },
            },
            # LLMs outlast Pulumi's 10-minute default wait.
            opts=pulumi.ResourceOptions(
                parent=self, custom_timeouts=pulumi.CustomTimeouts(create=timeout, update=timeout)),
        )
        service = k8s.core.v1.Service(
            f"{name}-svc",
            metadata={"name": tgi_deployment_name(args.variant), "namespace": args.namespace, "labels": labels},
            spec={
                "type": "ClusterIP",
                "selector": selector,
                "ports": [{"name": "http", "port": TGI_PORT, "targetPort": "http"}],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.deployment = deployment
        self.deployment_name = deployment.metadata.name
        self.service_name = service.metadata.name
        self.url = pulumi.Output.all(service.metadata.name, args.namespace).apply(
            lambda v: service_url(v[0], v[1], TGI_PORT))
        self.replicas = pulumi.Output.from_input(args.replicas)
        self.register_outputs({
            "deployment_name": self.deployment_name,
            "service_name": self.service_name,
            "url": self.url,
            "replicas": self.replicas,
        })
