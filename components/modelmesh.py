"""KServe ModelMesh serving: a ServingRuntime, the storage-config Secret and primary/candidate
InferenceServices over the weights bucket, Iter8-style (``<app>-0`` primary, ``<app>-1`` candidate).

Facts this relies on:

- ``serverType`` must be a built-in type (mlserver, triton, ovms, torchserve) and the runtime
  container must be named exactly like it; ``multiModel: true``, ``grpcEndpoint`` is the
  model-mesh SPI port (8085), ``grpcDataEndpoint`` the server's inference port.
- InferenceServices need the annotation ``serving.kserve.io/deploymentMode: ModelMesh``.
- The ``storage-config`` Secret holds one JSON string per storage key; the S3 puller requires
  ``access_key_id``, ``secret_access_key``, ``endpoint_url`` and ``region``; the bucket key is
  ``bucket``.
- The controller creates the ``modelmesh-serving`` Service (REST 8008, gRPC 8033), selecting the
  runtime pods by ``modelmesh-service: modelmesh-serving``; the REST proxy only answers
  ``POST /v2/models/<isvc>/infer``.
- ModelMesh Serving itself (controller, CRDs, etcd) is a platform prerequisite: its install is an
  imperative script, so this component never installs it. In cluster scope the
  controller serves namespaces labelled ``modelmesh-enabled: "true"``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.modelmesh_catalogue import ETCD_NAMESPACE, ETCD_PORT, MM_GRPC_PORT, SERVER_TYPES, isvc_name
from components.naming import INFERENCE_CLIENT_LABEL, S3_PORT, common_labels, service_url
from components.netpol import Spec, egress_to, ingress_from, namespace_peer, pods_peer, tcp
from components.podspec import container_security, placed, with_ephemeral_storage

RUNTIME_API_VERSION = "serving.kserve.io/v1alpha1"
ISVC_API_VERSION = "serving.kserve.io/v1beta1"
STORAGE_SECRET = "storage-config"
"""Name the ModelMesh controller reads storage locations from (its ``storageSecretName`` default)."""
STORAGE_KEY = "llm-ab-minio"
"""Our entry in ``storage-config``: the weights bucket on the stack's MinIO."""
S3_REGION = "us-east-1"
"""The puller requires a region; MinIO accepts any."""
MODELMESH_SERVICE = "modelmesh-serving"
MODELMESH_REST_PORT = 8008
MODELMESH_GRPC_PORT = 8033
"""The controller's Service: V2 gRPC inference (and model-mesh's routing between its pods)."""
MODELMESH_LITELINKS_PORT = 8080
"""model-mesh's internal port between runtime pods (upstream's ``config/rbac/networkpolicy-runtimes.yaml``)."""
MODELMESH_POD_LABELS = {"modelmesh-service": MODELMESH_SERVICE}
"""Labels of every ModelMesh runtime pod (the selector of the controller's Service)."""
NAMESPACE_OPT_IN_LABELS = {"modelmesh-enabled": "true"}
"""Namespace label a cluster-scope ModelMesh controller serves."""
DEPLOYMENT_MODE_ANNOTATION = "serving.kserve.io/deploymentMode"
SECRET_KEY_ANNOTATION = "serving.kserve.io/secretKey"
MEM_BUFFER_BYTES = 134217728
MODEL_LOADING_TIMEOUT_MILLIS = 90000


def rest_base_url(namespace: str) -> str:
    """V2 REST base URL of ModelMesh in ``namespace`` (the REST proxy behind the controller's Service)."""
    return service_url(MODELMESH_SERVICE, namespace, MODELMESH_REST_PORT)


def infer_url(namespace: str, model: str) -> str:
    """The only REST route the proxy answers for a model."""
    return f"{rest_base_url(namespace)}/v2/models/{model}/infer"


def storage_config_entry(*, endpoint: str, bucket: str, access_key_id: str, secret_access_key: str,
                         region: str = S3_REGION) -> str:
    """One ``storage-config`` value: a JSON string the ModelMesh S3 puller reads."""
    return json.dumps({
        "type": "s3",
        "access_key_id": access_key_id,
        "secret_access_key": secret_access_key,
        "endpoint_url": endpoint,
        "bucket": bucket,
        "region": region,
    }, sort_keys=True)


def runtime_container(server_type: str, image: str, *, data_port: int, management_port: int,
                      resources: Mapping[str, Mapping[str, str]]) -> dict[str, Any]:
    """The server container of a built-in runtime, as upstream's ``config/runtimes`` defines it.

    Named exactly like ``server_type`` (the built-in adapter finds it by that name). The servers
    listen on 127.0.0.1 only; ModelMesh's own containers in the pod talk to them.
    """
    container: dict[str, Any] = {
        "name": server_type,
        "image": image,
        # No volume of ours: ModelMesh's controller adds the pod's; the request covers logs and the writable root.
        "resources": with_ephemeral_storage(resources, []),
        # The upstream images write caches and model links at run time: no read-only root.
        "securityContext": container_security(read_only_root=False),
    }
    if server_type == "mlserver":
        container["env"] = [
            {"name": "MLSERVER_MODELS_DIR", "value": "/models/_mlserver_models/"},
            {"name": "MLSERVER_GRPC_PORT", "value": str(data_port)},
            # MLServer's default HTTP port (8080) is ModelMesh's litelinks port.
            {"name": "MLSERVER_HTTP_PORT", "value": "8002"},
            {"name": "MLSERVER_LOAD_MODELS_AT_STARTUP", "value": "false"},
            # Without a model name MLServer errors on RepositoryIndex while no model is loaded.
            {"name": "MLSERVER_MODEL_NAME", "value": "dummy-model-fixme"},
            {"name": "MLSERVER_HOST", "value": "127.0.0.1"},
            # Unlimited here; ModelMesh enforces its own limit.
            {"name": "MLSERVER_GRPC_MAX_MESSAGE_LENGTH", "value": "-1"},
        ]
    elif server_type == "triton":
        container["command"] = ["/bin/sh"]
        container["args"] = [
            "-c",
            "mkdir -p /models/_triton_models; chmod 777 /models/_triton_models; exec tritonserver"
            ' "--model-repository=/models/_triton_models" "--model-control-mode=explicit"'
            ' "--strict-model-config=false" "--strict-readiness=false" "--allow-http=true"'
            f' "--allow-sagemaker=false" "--grpc-port={data_port}"',
        ]
        # Triton listens on localhost only, so the probe runs inside the container.
        container["livenessProbe"] = {
            "exec": {"command": ["curl", "--fail", "--silent", "--show-error", "--max-time", "9",
                                 "http://localhost:8000/v2/health/live"]},
            "initialDelaySeconds": 5, "periodSeconds": 30, "timeoutSeconds": 10,
        }
    elif server_type == "ovms":
        container["args"] = [
            f"--port={data_port}",
            f"--rest_port={management_port}",
            "--config_path=/models/model_config_list.json",  # the ovms adapter's default
            "--file_system_poll_wait_seconds=0",  # the adapter triggers reloads itself
            "--grpc_bind_address=127.0.0.1",
            "--rest_bind_address=127.0.0.1",
        ]
    elif server_type == "torchserve":
        container["args"] = [
            'while [ ! -e "$TS_CONFIG_FILE" ]; do echo "waiting for config file..."; sleep 1; done;',
            "exec", "torchserve", "--start", "--foreground",
        ]
        container["env"] = [{"name": "TS_CONFIG_FILE", "value": "/models/_torchserve_models/mmconfig.properties"}]
    else:
        raise ValueError(f"unknown ModelMesh server type {server_type!r} (known: {', '.join(SERVER_TYPES)})")
    return container


def serving_runtime_spec(*, server_type: str, image: str, model_formats: Sequence[str],
                         resources: Mapping[str, Mapping[str, str]], replicas: int,
                         grpc_port: int = MM_GRPC_PORT, data_port: int | None = None,
                         management_port: int | None = None,
                         placement: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """``spec`` of a multi-model ServingRuntime with the built-in adapter for ``server_type``; ``placement``'s
    ``nodeSelector`` and ``tolerations`` go on the runtime pods (the controller copies the spec's own onto its
    Deployment: modelmesh-serving's ``addPassThroughPodFieldsToDeployment``)."""
    known = SERVER_TYPES[server_type]
    data = data_port if data_port is not None else known.data_port
    management = management_port if management_port is not None else (known.management_port or data)
    return placed({
        "supportedModelFormats": [{"name": f, "autoSelect": True} for f in model_formats],
        "multiModel": True,
        "grpcEndpoint": f"port:{grpc_port}",
        "grpcDataEndpoint": f"port:{data}",
        # Overrides the controller's podsPerRuntime (default 2, too many for small clusters).
        "replicas": replicas,
        "containers": [runtime_container(server_type, image, data_port=data, management_port=management,
                                         resources=resources)],
        "builtInAdapter": {
            "serverType": server_type,
            "runtimeManagementPort": management,
            "memBufferBytes": MEM_BUFFER_BYTES,
            "modelLoadingTimeoutMillis": MODEL_LOADING_TIMEOUT_MILLIS,
        },
    }, placement or {})


@dataclass(frozen=True, kw_only=True)
class Predictor:
    """One InferenceService: a model in the bucket, served by the runtime."""

    name: str
    """InferenceService name (``<app>-0`` or ``<app>-1``); the model name in V2 requests."""
    version: str
    """The ``app.kubernetes.io/version`` label (Iter8 reads it)."""
    model_format: str
    storage_path: str
    """Object path in the bucket: a model file or a directory the runtime understands."""


def inference_service_spec(*, predictor: Predictor, runtime: str, storage_key: str) -> dict[str, Any]:
    """``spec`` of a ModelMesh InferenceService, storage-spec form (key + path).

    The storage spec keeps the bucket in one place (the ``storage-config`` entry), and a promotion
    shows up in the preview as a change of ``storage.path`` alone. ``runtime`` is named explicitly,
    so a cluster-wide runtime that also auto-selects the format cannot take the model.
    """
    return {
        "predictor": {
            "model": {
                "modelFormat": {"name": predictor.model_format},
                "runtime": runtime,
                "storage": {"key": storage_key, "path": predictor.storage_path},
            },
        },
    }


def routemap_spec(app: str, namespace: str) -> str:
    """Iter8's routemap ``strSpec``: version 0 is ``<app>-0``, version 1 is ``<app>-1``.

    Both versions are always listed, as in the Iter8 tutorial: Iter8 treats a version whose
    InferenceService is missing as unavailable, so adding or removing the candidate needs no change.
    """
    lines = ["versions:"]
    for index in (0, 1):
        lines += ["- resources:", "  - gvrShort: isvc", f"    name: {isvc_name(app, index)}",
                  f"    namespace: {namespace}"]
    return "\n".join(lines) + "\n"


@dataclass(frozen=True, kw_only=True)
class ModelMeshServingArgs:
    """Inputs for ModelMeshServing."""

    namespace: pulumi.Input[str]
    """Namespace of every child; ModelMesh must serve it (cluster scope: the label is added here)."""
    stack: str
    app: str
    """Base name: InferenceServices ``<app>-0`` and ``<app>-1``, routemap ``<app>``."""
    runtime_name: str
    server_type: str
    image: str
    """Runtime server image, pinned."""
    model_formats: Sequence[str]
    resources: Mapping[str, Mapping[str, str]]
    primary: Predictor
    candidate: Predictor | None = None
    replicas: int = 1
    grpc_port: int = MM_GRPC_PORT
    data_port: int | None = None
    """None: the server type's default."""
    management_port: int | None = None
    s3_endpoint: pulumi.Input[str]
    bucket: pulumi.Input[str]
    access_key_id: pulumi.Input[str]
    """Read-only S3 credentials the puller uses (kept secret)."""
    secret_access_key: pulumi.Input[str]
    storage_key: str = STORAGE_KEY
    s3_server_selector: Mapping[str, str] | None = None
    """Pod labels of an in-cluster S3 server (MinIO) to open to the runtime pods; None: none."""
    s3_port: int = S3_PORT
    allowed_namespaces: Sequence[str] = ()
    """Namespaces besides this one whose pods may call ModelMesh (here: the pods labelled
    ``INFERENCE_CLIENT_LABEL``)."""
    etcd_namespace: str = ETCD_NAMESPACE
    """Namespace of ModelMesh's etcd (the runtime pods' egress); its port is ``etcd_port``."""
    etcd_port: int = ETCD_PORT
    routemap: bool = False
    """Also create Iter8's routemap ConfigMap ``<app>`` and label the InferenceServices for Iter8."""
    models_ready: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """What must finish before the InferenceServices exist (the staging Jobs)."""
    placement: Mapping[str, Any] = field(default_factory=dict)
    """Pod placement (``nodeSelector``, ``tolerations``) of the runtime pods, e.g. the local cluster's simulated
    nodes; empty: wherever the scheduler puts them."""

    def __post_init__(self) -> None:
        if self.server_type not in SERVER_TYPES:
            raise ValueError(f"server_type must be one of {', '.join(SERVER_TYPES)}, got {self.server_type!r}")
        known = SERVER_TYPES[self.server_type]
        unknown = [f for f in self.model_formats if f not in known.formats]
        if unknown or not self.model_formats:
            raise ValueError(f"model_formats must be some of {', '.join(known.formats)}, "
                             f"got {list(self.model_formats)}")
        for predictor in (self.primary, self.candidate):
            if predictor is not None and predictor.model_format not in self.model_formats:
                raise ValueError(f"{predictor.name}: format {predictor.model_format!r} is not one the runtime "
                                 f"supports ({', '.join(self.model_formats)})")
        if self.candidate is not None and self.candidate.name == self.primary.name:
            raise ValueError(f"primary and candidate share the name {self.primary.name!r}")


def modelmesh_policies(args: ModelMeshServingArgs) -> dict[str, Spec]:
    """The runtime pods' NetworkPolicies by name suffix: clients reach the REST and gRPC ports, the pods
    reach each other (model-mesh routes between them), etcd, MinIO and nothing else; the namespace's
    inference clients may call them."""
    mesh = dict(MODELMESH_POD_LABELS)
    mesh_ports = tcp(MODELMESH_GRPC_PORT, MODELMESH_LITELINKS_PORT)
    client_ports = tcp(MODELMESH_GRPC_PORT, MODELMESH_REST_PORT)
    clients = [pods_peer({INFERENCE_CLIENT_LABEL: "true"}), *[namespace_peer(ns) for ns in args.allowed_namespaces]]
    egress = egress_to(mesh, [pods_peer(mesh)], mesh_ports)
    egress["egress"].append({"to": [namespace_peer(args.etcd_namespace)], "ports": tcp(args.etcd_port)})
    if args.s3_server_selector is not None:
        egress["egress"].append({"to": [pods_peer(args.s3_server_selector)], "ports": tcp(args.s3_port)})
    return {
        "netpol": ingress_from(mesh, [([pods_peer(mesh)], mesh_ports), (clients, client_ports)]),
        "egress-netpol": egress,
        "clients-netpol": egress_to({INFERENCE_CLIENT_LABEL: "true"}, [pods_peer(mesh)], client_ports),
    }


class ModelMeshServing(pulumi.ComponentResource):
    """A ModelMesh runtime with primary and (optional) candidate InferenceServices from one bucket."""

    runtime_name: pulumi.Output[str]
    primary_name: pulumi.Output[str]
    candidate_name: pulumi.Output[str | None]
    """None when no candidate is deployed."""
    storage_secret_name: pulumi.Output[str]
    rest_url: pulumi.Output[str]
    """V2 REST base URL (``http://modelmesh-serving.<ns>.svc.cluster.local:8008``)."""
    infer_url: pulumi.Output[str]
    """V2 infer URL of the primary."""

    def __init__(self, name: str, args: ModelMeshServingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:serving:ModelMeshServing", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        labels = {**common_labels("modelmesh", args.stack), "app.kubernetes.io/name": args.app}
        namespace = pulumi.Output.from_input(args.namespace)

        entry: pulumi.Output[str] = pulumi.Output.secret(pulumi.Output.all(
            args.s3_endpoint, args.bucket, args.access_key_id, args.secret_access_key).apply(
            lambda v: storage_config_entry(endpoint=v[0], bucket=v[1], access_key_id=v[2], secret_access_key=v[3])))
        storage = k8s.core.v1.Secret(
            f"{name}-storage",
            metadata={"name": STORAGE_SECRET, "namespace": namespace, "labels": labels},
            string_data={args.storage_key: entry},
            opts=child,
        )

        runtime = k8s.apiextensions.CustomResource(
            f"{name}-runtime",
            api_version=RUNTIME_API_VERSION,
            kind="ServingRuntime",
            metadata={"name": args.runtime_name, "namespace": namespace, "labels": labels},
            spec=serving_runtime_spec(
                server_type=args.server_type, image=args.image, model_formats=args.model_formats,
                resources=args.resources, replicas=args.replicas, grpc_port=args.grpc_port,
                data_port=args.data_port, management_port=args.management_port, placement=args.placement),
            opts=child,
        )

        # The puller reads the Secret when it loads a model, and the runtime must exist first: the
        # names are plain strings, so the order is stated, not inferred.
        isvc_opts = pulumi.ResourceOptions(parent=self, depends_on=[storage, runtime, *args.models_ready])
        self.inference_services: dict[str, k8s.apiextensions.CustomResource] = {}
        for role, predictor in (("primary", args.primary), ("candidate", args.candidate)):
            if predictor is None:
                continue
            isvc_labels = {**labels, "app.kubernetes.io/version": predictor.version}
            if args.routemap:
                isvc_labels["iter8.tools/watch"] = "true"
            self.inference_services[role] = k8s.apiextensions.CustomResource(
                f"{name}-{role}",
                api_version=ISVC_API_VERSION,
                kind="InferenceService",
                metadata={
                    "name": predictor.name, "namespace": namespace, "labels": isvc_labels,
                    "annotations": {DEPLOYMENT_MODE_ANNOTATION: "ModelMesh",
                                    SECRET_KEY_ANNOTATION: args.storage_key},
                },
                spec=inference_service_spec(predictor=predictor, runtime=args.runtime_name,
                                            storage_key=args.storage_key),
                opts=isvc_opts,
            )

        if args.routemap:
            k8s.core.v1.ConfigMap(
                f"{name}-routemap",
                metadata={
                    "name": args.app, "namespace": namespace,
                    # Iter8 finds routemaps by these labels (Iter8 A/B tutorial, v0.17).
                    "labels": {**labels, "app.kubernetes.io/managed-by": "iter8",
                               "iter8.tools/kind": "routemap", "iter8.tools/version": "v0.17"},
                },
                immutable=True,
                data={"strSpec": namespace.apply(lambda ns: routemap_spec(args.app, ns))},
                opts=child,
            )

        # Default-deny in both directions is the namespace's rule: open ModelMesh's own ports only.
        for suffix, spec in modelmesh_policies(args).items():
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{suffix}", metadata={"namespace": namespace, "labels": labels}, spec=spec, opts=child)
        if args.s3_server_selector is not None:
            # Policies are additive: this one adds the runtime pods (their puller) to MinIO's clients.
            k8s.networking.v1.NetworkPolicy(
                f"{name}-s3-netpol",
                metadata={"namespace": namespace, "labels": labels},
                spec={
                    "podSelector": {"matchLabels": dict(args.s3_server_selector)},
                    "policyTypes": ["Ingress"],
                    "ingress": [{"from": [{"podSelector": {"matchLabels": dict(MODELMESH_POD_LABELS)}}],
                                 "ports": [{"protocol": "TCP", "port": args.s3_port}]}],
                },
                opts=child,
            )

        self.runtime_name = pulumi.Output.from_input(args.runtime_name)
        self.primary_name = pulumi.Output.from_input(args.primary.name)
        self.candidate_name = pulumi.Output.from_input(args.candidate.name if args.candidate else None)
        self.storage_secret_name = storage.metadata.name
        self.rest_url = namespace.apply(rest_base_url)
        self.infer_url = namespace.apply(lambda ns: infer_url(ns, args.primary.name))
        self.register_outputs({
            "runtime_name": self.runtime_name,
            "primary_name": self.primary_name,
            "candidate_name": self.candidate_name,
            "storage_secret_name": self.storage_secret_name,
            "rest_url": self.rest_url,
            "infer_url": self.infer_url,
        })
