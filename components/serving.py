"""One variant (stable or canary) of the A/B experiment, served by any engine.

:class:`ModelServer` is the same for every engine: the Deployment (rollout strategy, the startup
budget as probe threshold and Pulumi wait, the declared-split annotations), the per-variant
ClusterIP Service, the GPU limit, toleration and placement, ``/dev/shm`` and the scratch volumes,
the security context. The engine (:mod:`components.engines`) fills in the container's image,
arguments and environment and names its health and metrics paths. Every engine listens on
:data:`components.naming.TGI_PORT` behind the port name ``http``, so the traffic Service, the
NetworkPolicy and the smoke gate don't know which engine a variant runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.engines import Engine, ServingContext
from components.naming import (
    TGI_APP,
    TGI_PORT,
    common_labels,
    dataset_labels,
    service_url,
    tgi_deployment_name,
    tgi_selector,
)
from components.podspec import (
    GPU_RESOURCE,
    container_security,
    gpu_tolerations,
    http_probe,
    pod_security,
    with_ephemeral_storage,
)

SERVER_TYPE = "llmab:serving:TgiServer"
"""The component's type token. Kept from when TGI was the only engine: a new token would change the
URN of every serving resource of a deployed stack (a replacement of its Deployments)."""
SERVING_PORT = TGI_PORT
STARTUP_PROBE_PERIOD = 10
ROLLOUT_MARGIN_SECONDS = 300
"""Added to the startup budget for Pulumi's wait: image pull and scheduling come first."""


def startup_failure_threshold(budget_seconds: int) -> int:
    """Startup-probe failures allowed so a replica gets its whole startup budget."""
    return max(1, math.ceil(budget_seconds / STARTUP_PROBE_PERIOD))


def rollout_timeout(budget_seconds: int) -> str:
    """Pulumi's wait for the Deployment: the startup budget plus scheduling and pull time."""
    return f"{budget_seconds + ROLLOUT_MARGIN_SECONDS}s"


@dataclass(frozen=True, kw_only=True)
class ModelServerArgs:
    """Inputs for ModelServer."""

    namespace: pulumi.Input[str]
    stack: str
    variant: str
    """``stable`` or ``canary``: the ``type`` pod label and the name suffix."""
    engine: Engine
    """The engine serving this variant, with its engine-specific settings."""
    dataset_name: str
    """Datashim Dataset mounted read-only at /mnt/datasets/<dataset_name>."""
    model_path: str
    """Directory of the staged weights inside the pod."""
    model_id: str = ""
    """The model's Hugging Face repo id (the name the engine serves it under, where it has one)."""
    replicas: int | None
    """Replicas of this variant (0 switches the variant off); None leaves ``spec.replicas`` to an HPA."""
    max_replicas: int | None = None
    """The most replicas the variant runs (an HPA's ``maxReplicas``); None: ``replicas``. Above one it gets a
    PodDisruptionBudget (:func:`disruption_budget_spec`)."""
    gpus: int = 0
    """``nvidia.com/gpu`` limit per replica; 0 runs on CPU."""
    resources: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    """CPU/memory requests and limits (the GPU limit is added from ``gpus``)."""
    startup_budget_seconds: int = 1800
    shm_size: str = "1Gi"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    tolerations: Sequence[Mapping[str, str]] = ()
    """Extra tolerations; the GPU taint is tolerated automatically when ``gpus`` > 0."""
    run_as_non_root: bool = True
    """Run as uid/gid 1000 (fsGroup 1000) with a read-only root file system; False for images that need root."""
    split_annotations: Mapping[str, str] = field(default_factory=dict)
    """The declared split (:func:`components.naming.split_annotations`) for the Deployment's own
    ``metadata.annotations``; never on the pod template, so a split change rolls no pods."""

    def __post_init__(self) -> None:
        if self.variant not in ("stable", "canary"):
            raise ValueError(f"variant must be stable or canary, got {self.variant!r}")
        if self.replicas is not None and self.replicas < 0:
            raise ValueError(f"replicas must be >= 0, got {self.replicas}")
        if self.gpus < 0:
            raise ValueError(f"gpus must be >= 0, got {self.gpus}")
        if self.max_replicas is not None and self.max_replicas < (self.replicas or 0):
            raise ValueError(f"max_replicas must be >= replicas ({self.replicas}), got {self.max_replicas}")

    @property
    def most_replicas(self) -> int:
        """The most replicas this variant ever runs."""
        return self.max_replicas if self.max_replicas is not None else (self.replicas or 0)

    @property
    def context(self) -> ServingContext:
        return ServingContext(model_path=self.model_path, model_id=self.model_id, gpus=self.gpus,
                              port=SERVING_PORT)


WRITABLE_HOME = "/tmp"
"""HOME of the serving container: an emptyDir, so ``~/.cache`` (torch, triton, huggingface) is writable when the
server runs as a user the image has no home for."""


def with_writable_home(env: list[dict[str, str]]) -> list[dict[str, str]]:
    """The engine's environment, plus ``HOME`` on the scratch volume unless the engine sets one."""
    if any(e.get("name") == "HOME" for e in env):
        return env
    return [*env, {"name": "HOME", "value": WRITABLE_HOME}]


def serving_container(args: ModelServerArgs) -> dict[str, Any]:
    """The serving container of one variant: the engine's image, arguments and environment in the
    container every engine shares."""
    engine, ctx = args.engine, args.context
    limits = dict(args.resources.get("limits", {}))
    if args.gpus > 0:
        limits[GPU_RESOURCE] = str(args.gpus)
    command = engine.container_command(ctx)
    return {
        "name": engine.container_name,
        "image": engine.image,
        **({"command": command} if command is not None else {}),
        "args": engine.container_args(ctx),
        "env": with_writable_home(engine.container_env(ctx)),
        "ports": [{"name": "http", "containerPort": SERVING_PORT}],
        # The server listens only after download, load and warmup; the startup probe gives it the
        # whole budget, then readiness takes over. Liveness uses TCP: TGI's /health runs a forward pass.
        "startupProbe": http_probe(engine.health_path, "http", period=STARTUP_PROBE_PERIOD,
                                   failures=startup_failure_threshold(args.startup_budget_seconds)),
        "readinessProbe": http_probe(engine.health_path, "http", period=15, failures=3, timeout=10),
        "livenessProbe": {"tcpSocket": {"port": "http"}, "periodSeconds": 30, "failureThreshold": 4},
        "resources": with_ephemeral_storage({"requests": dict(args.resources.get("requests", {})), "limits": limits},
                                            serving_volumes(args)),
        # As a non-root user the root file system is read-only too: what the server writes goes to the
        # emptyDirs below (README: Serving as non-root). A root image is left writable: it may write anywhere.
        "securityContext": container_security(read_only_root=args.run_as_non_root),
        "volumeMounts": [
            {"name": "shm", "mountPath": "/dev/shm"},
            {"name": "data", "mountPath": "/data"},
            {"name": "tmp", "mountPath": "/tmp"},
        ],
    }


def disruption_budget_spec(selector: Mapping[str, str], most_replicas: int) -> dict[str, Any] | None:
    """``spec`` of the variant's PodDisruptionBudget, or None for a variant that never runs more than one
    replica.

    ``maxUnavailable: 1``, not ``minAvailable: 1``: a drain (node upgrade, scale-in) evicts one replica of the
    variant at a time and waits for it to be back, so a variant of several replicas keeps serving and the
    replica split stays near its ratio; yet a variant an HPA has scaled down to one replica can still be
    drained (``minAvailable: 1`` would then block every voluntary eviction, and with it the node's upgrade).
    One replica gets no budget: it can't keep serving through its own eviction whatever the budget says.
    """
    if most_replicas <= 1:
        return None
    return {"maxUnavailable": 1, "selector": {"matchLabels": dict(selector)}}


def serving_volumes(args: ModelServerArgs) -> list[dict[str, Any]]:
    """``/dev/shm`` (memory), the engine's ``/data`` (caches) and ``/tmp``: the container's disk request is theirs."""
    return [
        {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": args.shm_size}},
        {"name": "data", "emptyDir": {"sizeLimit": "10Gi"}},
        {"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}},
    ]


def serving_pod_spec(args: ModelServerArgs) -> dict[str, Any]:
    tolerations = [dict(t) for t in args.tolerations]
    if args.gpus > 0:
        tolerations += [t for t in gpu_tolerations() if t not in tolerations]
    spec: dict[str, Any] = {
        # Service links inject <SVC>_PORT variables that TGI's launcher would parse.
        "enableServiceLinks": False,
        "automountServiceAccountToken": False,
        "securityContext": pod_security(non_root=args.run_as_non_root),
        "terminationGracePeriodSeconds": 120,
        "containers": [serving_container(args)],
        "volumes": serving_volumes(args),
    }
    if tolerations:
        spec["tolerations"] = tolerations
    if args.node_selector:
        spec["nodeSelector"] = dict(args.node_selector)
    return spec


class ModelServer(pulumi.ComponentResource):
    """A serving Deployment and its per-variant ClusterIP Service, for any engine."""

    deployment: k8s.apps.v1.Deployment
    deployment_name: pulumi.Output[str]
    service_name: pulumi.Output[str]
    url: pulumi.Output[str]
    """In-cluster URL of this variant alone."""
    replicas: pulumi.Output[int | None]
    engine: Engine

    def __init__(self, name: str, args: ModelServerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__(SERVER_TYPE, name, None, opts)
        selector = tgi_selector(args.variant)
        labels = {**common_labels("inference", args.stack), "app.kubernetes.io/name": TGI_APP, **selector}
        timeout = rollout_timeout(args.startup_budget_seconds)
        deployment = k8s.apps.v1.Deployment(
            f"{name}-deploy",
            metadata={"name": tgi_deployment_name(args.variant), "namespace": args.namespace, "labels": labels,
                      **({"annotations": dict(args.split_annotations)} if args.split_annotations else {})},
            spec={
                # Under an HPA the field is left out, so `pulumi up` never resets what the HPA chose.
                **({"replicas": args.replicas} if args.replicas is not None else {}),
                "selector": {"matchLabels": selector},
                "progressDeadlineSeconds": args.startup_budget_seconds + ROLLOUT_MARGIN_SECONDS,
                # Bring a new replica up before taking an old one down: capacity is the experiment.
                "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 0, "maxSurge": 1}},
                "template": {
                    "metadata": {"labels": {**labels, **dataset_labels(args.dataset_name)}},
                    "spec": serving_pod_spec(args),
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
                "ports": [{"name": "http", "port": SERVING_PORT, "targetPort": "http"}],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        budget = disruption_budget_spec(selector, args.most_replicas)
        if budget is not None:
            k8s.policy.v1.PodDisruptionBudget(
                f"{name}-pdb",
                metadata={"namespace": args.namespace, "labels": labels},
                spec=budget,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.engine = args.engine
        self.deployment = deployment
        self.deployment_name = deployment.metadata.name
        self.service_name = service.metadata.name
        self.url = pulumi.Output.all(service.metadata.name, args.namespace).apply(
            lambda v: service_url(v[0], v[1], SERVING_PORT))
        self.replicas = pulumi.Output.from_input(args.replicas)
        self.register_outputs({
            "deployment_name": self.deployment_name,
            "service_name": self.service_name,
            "url": self.url,
            "replicas": self.replicas,
        })
