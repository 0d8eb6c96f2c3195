"""The ``modelmesh`` section of the settings schema: a ModelMesh runtime with primary and candidate
models. Off by default; every error names its key, e.g. ``llm-ab:modelmesh.runtime.serverType must
be one of mlserver, triton, ovms, torchserve, got 'tgi'``. Server-type facts come from the pure
:mod:`components.modelmesh_catalogue`.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any

from pydantic import Field, model_validator

from components.modelmesh_catalogue import (
    ETCD_NAMESPACE,
    ETCD_PORT,
    FORMAT_WEIGHTS,
    MM_GRPC_PORT,
    SERVER_TYPES,
    isvc_name,
)
from stacks.config_types import (
    COMMIT_SHA,
    HF_REPO_ID,
    LABEL_VALUE,
    OBJECT_PREFIX,
    PINNED_COMMIT,
    Bool,
    DnsLabel,
    OneOf,
    OptionalText,
    PinnedImage,
    Resources,
    Section,
    StringList,
    Text,
    WholeNumber,
    given,
    problem,
    resources,
    show,
)

ROOT = Path(__file__).resolve().parent.parent
APP = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
MLSERVER = SERVER_TYPES["mlserver"]

Port = Annotated[int, WholeNumber(1, 65535)]


class RuntimePorts(Section):
    """The runtime's ports (``modelmesh.runtime.ports``)."""

    grpc: Port = MM_GRPC_PORT
    """Model-mesh SPI endpoint (`grpcEndpoint`)"""
    grpc_data: Port = MLSERVER.data_port
    """The server's inference port (`grpcDataEndpoint`; torchserve: 7070, fixed)"""
    runtime_management: Port = MLSERVER.data_port
    """`builtInAdapter.runtimeManagementPort` (mlserver, triton: = grpcData; ovms 8888; torchserve 7071)"""


RUNTIME_RESOURCES_RULE, RUNTIME_RESOURCES = resources(requests=("500m", "1Gi"), limits=("5", "1Gi"))


class RuntimeSettings(Section):
    """The ServingRuntime: one built-in server type and its container. Unset fields take the server
    type's upstream defaults."""

    name: DnsLabel = "llm-ab-mlserver"
    """Name of the ServingRuntime the InferenceServices name"""
    server_type: Annotated[str, OneOf(tuple(SERVER_TYPES))] = "mlserver"
    """Built-in server: `mlserver`, `triton`, `ovms` or `torchserve` (the container is named like it)"""
    image: PinnedImage = MLSERVER.image
    """Server image, pinned (default: what ModelMesh 0.12 pins for the server type)"""
    supported_model_formats: StringList = MLSERVER.default_formats
    """Formats the runtime declares; must be ones the server type serves"""
    ports: RuntimePorts = RuntimePorts()
    replicas: Annotated[int, WholeNumber(1, 100)] = 1
    """Runtime pods (ModelMesh's own default is 2)"""
    resources: Annotated[Resources, RUNTIME_RESOURCES_RULE] = RUNTIME_RESOURCES
    """`{requests, limits}` × `{cpu, memory}` of the server container"""

    @model_validator(mode="before")
    @classmethod
    def _server_type_defaults(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        server_type = data.get("serverType", "mlserver")
        known = SERVER_TYPES.get(server_type) if isinstance(server_type, str) else None
        if known is None:
            return data  # the field says what is wrong
        out = dict(data)
        out.setdefault("name", f"llm-ab-{known.name}")
        out.setdefault("image", known.image)
        out.setdefault("supportedModelFormats", list(known.default_formats))
        ports = out.get("ports")
        if ports is None or isinstance(ports, Mapping):
            ports = dict(ports or {})
            ports.setdefault("grpcData", known.data_port)
            ports.setdefault("runtimeManagement", known.management_port or ports["grpcData"])
            out["ports"] = ports
        return out

    @model_validator(mode="after")
    def _what_the_server_type_allows(self) -> RuntimeSettings:
        known = SERVER_TYPES[self.server_type]
        if not self.supported_model_formats:
            raise problem(f"must list at least one of {', '.join(known.formats)}", at="supportedModelFormats")
        for fmt in self.supported_model_formats:
            if fmt not in known.formats:
                raise problem(f"must list formats the {self.server_type} runtime serves "
                              f"({', '.join(known.formats)}), got {show(fmt)}", at="supportedModelFormats")
        data, management = self.data_port, self.management_port
        if known.fixed_ports and (data, management) != (known.data_port, known.management_port):
            raise problem(f"cannot be changed for {self.server_type}: its adapter writes the server's ports "
                          f"(grpcData {known.data_port}, runtimeManagement {known.management_port})",
                          at="ports.grpcData")
        if known.management_port is None and management != data:
            raise problem(f"must equal ports.grpcData ({data}) for {self.server_type}: one gRPC server serves "
                          f"both, got {management}", at="ports.runtimeManagement")
        if self.grpc_port in (data, management):
            raise problem(f"must differ from the server's ports, got {self.grpc_port}", at="ports.grpc")
        return self

    @property
    def grpc_port(self) -> int:
        return self.ports.grpc

    @property
    def data_port(self) -> int:
        return self.ports.grpc_data

    @property
    def management_port(self) -> int:
        return self.ports.runtime_management


class MeshModel(Section):
    """One predictive model: a pinned Hub revision staged into the bucket, and how ModelMesh loads it."""

    repo: Annotated[str, Text(HF_REPO_ID, "a Hugging Face repo id such as julien-c/wine-quality")]
    """Hugging Face repo id, e.g. julien-c/wine-quality."""
    revision: Annotated[str, Text(COMMIT_SHA, PINNED_COMMIT)]
    """Pinned commit (40 hex characters)."""
    file: OptionalText = None
    """The model file in the repo (e.g. sklearn_model.joblib); None: the whole staged directory."""
    format: Annotated[str, Text()] = "sklearn"
    """ModelMesh model format (``modelFormat.name``), one the runtime supports."""
    path: Annotated[str, Text(OBJECT_PREFIX,
                              "an object prefix such as wine-quality (letters, digits, '.', '_', '-', '/')")]
    """Prefix in the bucket; the revision lands under ``<path>/<revision>/``. Default: the repo's name."""
    version: Annotated[str, Text(LABEL_VALUE, "a label value such as v1 (letters, digits, '.', '_', '-'; at most 63)")]
    """``app.kubernetes.io/version`` of the InferenceService (default: the revision's first 7 characters)."""

    @model_validator(mode="before")
    @classmethod
    def _defaults_from_the_repo(cls, data: Any) -> Any:
        if not isinstance(data, Mapping):
            return data
        out = dict(data)
        if not given(out, "path") and isinstance(out.get("repo"), str):
            out["path"] = out["repo"].split("/")[-1].lower()
        if not given(out, "version") and isinstance(out.get("revision"), str):
            out["version"] = out["revision"][:7]
        return out

    @model_validator(mode="after")
    def _a_file_path(self) -> MeshModel:
        if self.file is not None and not OBJECT_PREFIX.match(self.file):
            raise problem(f"must be a file path in the repo such as model.joblib, got {show(self.file)}", at="file")
        return self

    @property
    def object_prefix(self) -> str:
        return f"{self.path}/{self.revision}"

    @property
    def storage_path(self) -> str:
        """What the InferenceService loads: the file itself, or the staged directory."""
        return f"{self.object_prefix}/{self.file}" if self.file else self.object_prefix

    @property
    def allow_patterns(self) -> tuple[str, ...]:
        """What the staging Job copies: just the model file, or the whole revision."""
        return (self.file,) if self.file else ("*",)

    @property
    def weights(self) -> tuple[str, ...]:
        """Globs of which at least one staged file must match (the staging tool checks)."""
        return (self.file,) if self.file else FORMAT_WEIGHTS[self.format]

    def staging_identity(self) -> tuple[str, str, tuple[str, ...]]:
        return self.repo, self.revision, self.allow_patterns


class MeshModels(Section):
    """``modelmesh.models``: the primary and, while one is being tried, the candidate."""

    primary: MeshModel | None = None
    candidate: MeshModel | None = None


INSTALL_UNSUPPORTED = (
    "is not supported: ModelMesh Serving installs through an imperative script (kustomize edits, an etcd "
    "secret, a self-signed webhook CA, an env patch) and its CRDs conflict with a full KServe install. Install "
    "it on the cluster as a platform prerequisite (cluster scope) and keep modelmesh.install false"
)


class EtcdSettings(Section):
    """Where the platform's ModelMesh install runs etcd (``modelmesh.etcd``): the runtime pods' egress."""

    namespace: DnsLabel = ETCD_NAMESPACE
    """Namespace of ModelMesh's etcd (its install's controller namespace; the runtime pods may reach it)"""
    port: Port = ETCD_PORT
    """etcd's client port"""


class ModelMeshSettings(Section):
    """Everything ``modelmesh`` declares, validated."""

    enabled: Bool = False
    """Deploy the ModelMesh track (needs ModelMesh Serving on the cluster and `storage.kind: minio`)"""
    install: Bool = False
    """Must stay `false`: ModelMesh Serving is installed by the platform team (see ModelMesh track)"""
    app: Annotated[str, Text(APP, "a DNS-1035 label such as backend (lower-case letters, digits, '-', starting with "
                             "a letter)")] = "backend"
    """Base name: InferenceServices `<app>-0` (primary) and `<app>-1` (candidate)"""
    routemap: Bool = False
    """Also create Iter8's routemap ConfigMap `<app>` and label the InferenceServices for Iter8"""
    runtime: RuntimeSettings = RuntimeSettings()
    models: MeshModels = MeshModels()
    """`primary` (required when enabled) and optional `candidate`, each `{repo, revision, file, format, path,
    version}` (see ModelMesh track)"""
    smoke_cases: StringList = Field(default=())
    """V2 smoke case files (`kind: v2`, `model: <app>-0`); required while `smoke.enabled`"""
    etcd: EtcdSettings = EtcdSettings()

    @model_validator(mode="after")
    def _consistent(self) -> ModelMeshSettings:
        if self.install:
            raise problem(INSTALL_UNSUPPORTED, at="install")
        if len(isvc_name(self.app, 1)) > 63:
            raise problem(f"must be at most 61 characters (InferenceService {self.app}-1), got {show(self.app)}",
                          at="app")
        runtime = self.runtime
        for role, model in self.models_by_role().items():
            if model.format not in runtime.supported_model_formats:
                raise problem(f"must be a format the runtime {runtime.name} ({runtime.server_type}) supports: "
                              f"{', '.join(runtime.supported_model_formats)}; got {show(model.format)}",
                              at=f"models.{role}.format")
        if self.candidate is not None and self.primary is None:
            raise problem("is required when models.candidate is set: the candidate is compared with a primary",
                          at="models.primary")
        if self.enabled and self.primary is None:
            raise problem("is required when modelmesh.enabled is true: {repo, revision, file, format, path, version}",
                          at="models.primary")
        return self

    @property
    def primary(self) -> MeshModel | None:
        return self.models.primary

    @property
    def candidate(self) -> MeshModel | None:
        return self.models.candidate

    @property
    def primary_name(self) -> str:
        return isvc_name(self.app, 0)

    @property
    def candidate_name(self) -> str:
        return isvc_name(self.app, 1)

    def models_by_role(self) -> dict[str, MeshModel]:
        """The configured models by role (``primary``, ``candidate``)."""
        found = {"primary": self.primary, "candidate": self.candidate}
        return {role: model for role, model in found.items() if model is not None}


def check_modelmesh(mm: ModelMeshSettings, *, storage_kind: str, smoke_enabled: bool) -> None:
    """Rules between ``modelmesh`` and the rest of the stack (run by the root schema; the models' bucket
    prefixes are checked with every other staged model's there, :func:`stacks.settings.check_bucket_prefixes`)."""
    if mm.enabled and storage_kind != "minio":
        raise problem(f"needs storage.kind minio: the storage-config entry is built from MinIO's generated "
                      f"read-only user, got storage.kind {show(storage_kind)}", at="modelmesh.enabled")
    if mm.enabled and smoke_enabled:
        _check_smoke_cases(mm)


def _smoke_case_model(path: str) -> tuple[str | None, str | None]:
    """``(kind, model)`` of a smoke case file, or (None, None) when it cannot be read."""
    import yaml

    file = Path(path) if Path(path).is_absolute() else ROOT / path
    try:
        document = yaml.safe_load(file.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError):
        return None, None
    if not isinstance(document, Mapping):
        return None, None
    return document.get("kind"), document.get("model")


def _check_smoke_cases(mm: ModelMeshSettings) -> None:
    key, name = "modelmesh.smokeCases", mm.primary_name
    if not mm.smoke_cases:
        raise problem(f"must list at least one V2 smoke case file (kind: v2, model: {name}) while smoke.enabled "
                      f"is true: the smoke gate calls {name} through ModelMesh (or set smoke.enabled to false)",
                      at=key)
    from smoke.cases import case_file_problem  # jsonschema and PyYAML: loaded only to check cases

    names = (name, *([mm.candidate_name] if mm.candidate else ()))
    models = []
    for i, path in enumerate(mm.smoke_cases):
        kind, model = _smoke_case_model(path)
        if kind is None:
            raise problem(f"must list readable YAML case files, got {show(path)}", at=f"{key}[{i}]")
        if kind != "v2" or model not in names:
            raise problem(f"must list V2 case files for {' or '.join(names)} (kind: v2, model: {name}), got "
                          f"{show(path)} (kind {show(kind)}, model {show(model)})", at=f"{key}[{i}]")
        invalid = case_file_problem(Path(path) if Path(path).is_absolute() else ROOT / path)
        if invalid is not None:
            raise problem(f"must list valid V2 case files, got {show(path)}: {invalid}", at=f"{key}[{i}]")
        models.append(model)
    if name not in models:
        raise problem(f"must list a V2 case file for the primary {name} (kind: v2, model: {name}); the "
                      f"candidate is checked with its inputs", at=key)
