"""The ``modelmesh`` config object: a ModelMesh runtime with primary and candidate models.

Registered by :func:`stacks.settings._feature_parsers`; the result lands in
``settings.extras["modelmesh"]``. Defaults live here and are mirrored in ``Pulumi.yaml``. Like the
core parsers this is a pure function over plain config, and every error names its key, e.g.
``llm-ab:modelmesh.runtime.serverType must be one of mlserver, triton, ovms, torchserve, got 'tgi'``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from components.modelmesh import MM_GRPC_PORT, SERVER_TYPES, isvc_name
from stacks.config_reader import ConfigError, Section, show
from stacks.settings import Resources, Settings, pinned_image

KEY = "modelmesh"
ROOT = Path(__file__).resolve().parent.parent

_APP = re.compile(r"^[a-z]([-a-z0-9]*[a-z0-9])?$")
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
_HF_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_OBJECT_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
_LABEL_VALUE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9._-]{0,61}[A-Za-z0-9])?$")

FORMAT_WEIGHTS: dict[str, tuple[str, ...]] = {
    "sklearn": ("*.joblib", "*.pkl", "*.pickle"),
    "xgboost": ("*.json", "*.bst", "*.ubj"),
    "lightgbm": ("*.bst", "*.txt"),
    "onnx": ("*.onnx",),
    "keras": ("*.h5", "*.keras"),
    "pytorch": ("*.pt", "*.pth"),
    "tensorflow": ("*.pb",),
    "tensorrt": ("*.plan",),
    "openvino_ir": ("*.xml", "*.bin"),
    "pytorch-mar": ("*.mar",),
}
"""Files that hold a model of each format: what the staging Job must find (``--weights``)."""


@dataclass(frozen=True, kw_only=True)
class MeshModel:
    """One predictive model: a pinned Hub revision staged into the bucket, and how ModelMesh loads it."""

    repo: str
    """Hugging Face repo id, e.g. julien-c/wine-quality."""
    revision: str
    """Pinned commit (40 hex characters)."""
    file: str | None
    """The model file in the repo (e.g. sklearn_model.joblib); None: the whole staged directory."""
    format: str
    """ModelMesh model format (``modelFormat.name``), one the runtime supports."""
    path: str
    """Prefix in the bucket; the revision lands under ``<path>/<revision>/``."""
    version: str
    """``app.kubernetes.io/version`` of the InferenceService (default: the revision's first 7 characters)."""

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


@dataclass(frozen=True, kw_only=True)
class RuntimeSettings:
    """The ServingRuntime: one built-in server type and its container."""

    name: str = "llm-ab-mlserver"
    server_type: str = "mlserver"
    image: str = SERVER_TYPES["mlserver"].image
    supported_model_formats: tuple[str, ...] = SERVER_TYPES["mlserver"].default_formats
    grpc_port: int = MM_GRPC_PORT
    """The model-mesh SPI endpoint (``grpcEndpoint``)."""
    data_port: int = SERVER_TYPES["mlserver"].data_port
    """The server's inference port (``grpcDataEndpoint``)."""
    management_port: int = SERVER_TYPES["mlserver"].data_port
    """``builtInAdapter.runtimeManagementPort``."""
    replicas: int = 1
    """Runtime pods (overrides ModelMesh's podsPerRuntime, 2 by default)."""
    resources: Resources = field(default_factory=lambda: Resources(
        cpu_request="500m", memory_request="1Gi", cpu_limit="5", memory_limit="1Gi"))


@dataclass(frozen=True, kw_only=True)
class ModelMeshSettings:
    """Everything ``modelmesh`` declares, validated."""

    enabled: bool = False
    install: bool = False
    """Always false: ModelMesh Serving is a platform prerequisite (see README, ModelMesh track)."""
    app: str = "backend"
    """Base name: InferenceServices ``<app>-0`` (primary) and ``<app>-1`` (candidate)."""
    routemap: bool = False
    """Also create Iter8's routemap ConfigMap ``<app>``."""
    runtime: RuntimeSettings = field(default_factory=RuntimeSettings)
    primary: MeshModel | None = None
    candidate: MeshModel | None = None
    smoke_cases: tuple[str, ...] = ()
    """V2 smoke case files (``kind: v2``, ``model: <app>-0``) the smoke gate runs against the primary."""

    @property
    def primary_name(self) -> str:
        return isvc_name(self.app, 0)

    @property
    def candidate_name(self) -> str:
        return isvc_name(self.app, 1)

    def models(self) -> dict[str, MeshModel]:
        """The configured models by role (``primary``, ``candidate``)."""
        found = {"primary": self.primary, "candidate": self.candidate}
        return {role: model for role, model in found.items() if model is not None}


# --- parsing ------------------------------------------------------------------------------


def _port(s: Section, name: str, default: int) -> int:
    return s.integer(name, default, lo=1, hi=65535)


def _parse_runtime(s: Section) -> RuntimeSettings:
    server_type = s.choice("serverType", "mlserver", SERVER_TYPES)
    known = SERVER_TYPES[server_type]
    name = s.dns_label("name", f"llm-ab-{server_type}")
    image = pinned_image(s, "image", known.image)
    formats = s.string_list("supportedModelFormats", known.default_formats)
    if not formats:
        raise ConfigError(s.key("supportedModelFormats"), f"must list at least one of {', '.join(known.formats)}")
    for fmt in formats:
        if fmt not in known.formats:
            raise ConfigError(
                s.key("supportedModelFormats"),
                f"must list formats the {server_type} runtime serves ({', '.join(known.formats)}), got {show(fmt)}",
            )
    ports = s.section("ports")
    grpc_port = _port(ports, "grpc", MM_GRPC_PORT)
    data_port = _port(ports, "grpcData", known.data_port)
    management_port = _port(ports, "runtimeManagement", known.management_port or data_port)
    ports.done()
    if known.fixed_ports and (data_port, management_port) != (known.data_port, known.management_port):
        raise ConfigError(
            ports.key("grpcData"),
            f"cannot be changed for {server_type}: its adapter writes the server's ports "
            f"(grpcData {known.data_port}, runtimeManagement {known.management_port})",
        )
    if known.management_port is None and management_port != data_port:
        raise ConfigError(
            ports.key("runtimeManagement"),
            f"must equal ports.grpcData ({data_port}) for {server_type}: one gRPC server serves both, "
            f"got {management_port}",
        )
    if grpc_port in (data_port, management_port):
        raise ConfigError(ports.key("grpc"), f"must differ from the server's ports, got {grpc_port}")
    d = RuntimeSettings()
    resources_section = s.section("resources")
    requests, limits = resources_section.section("requests"), resources_section.section("limits")
    resources = Resources(
        cpu_request=requests.quantity("cpu", d.resources.cpu_request),
        memory_request=requests.quantity("memory", d.resources.memory_request),
        cpu_limit=limits.quantity("cpu", d.resources.cpu_limit),
        memory_limit=limits.quantity("memory", d.resources.memory_limit),
    )
    requests.done()
    limits.done()
    resources_section.done()
    runtime = RuntimeSettings(
        name=name, server_type=server_type, image=image, supported_model_formats=formats,
        grpc_port=grpc_port, data_port=data_port, management_port=management_port,
        replicas=s.integer("replicas", d.replicas, lo=1, hi=100), resources=resources,
    )
    s.done()
    return runtime


def _parse_model(s: Section, runtime: RuntimeSettings) -> MeshModel:
    repo = s.string("repo", pattern=_HF_REPO_ID, allowed="a Hugging Face repo id such as julien-c/wine-quality")
    revision = s.string("revision", pattern=_COMMIT_SHA,
                        allowed="a pinned commit: 40 lower-case hex characters (branches and tags move)")
    file = s.optional_string("file")
    if file is not None and not _OBJECT_PREFIX.match(file):
        raise ConfigError(s.key("file"), f"must be a file path in the repo such as model.joblib, got {show(file)}")
    model_format = s.string("format", "sklearn")
    if model_format not in runtime.supported_model_formats:
        raise ConfigError(
            s.key("format"),
            f"must be a format the runtime {runtime.name} ({runtime.server_type}) supports: "
            f"{', '.join(runtime.supported_model_formats)}; got {show(model_format)}",
        )
    if model_format not in FORMAT_WEIGHTS:  # pragma: no cover - every server-type format is listed
        raise ConfigError(s.key("format"), f"has no known model files, got {show(model_format)}")
    path = s.string("path", repo.split("/")[-1].lower(), pattern=_OBJECT_PREFIX,
                    allowed="an object prefix such as wine-quality (letters, digits, '.', '_', '-', '/')")
    version = s.string("version", revision[:7], pattern=_LABEL_VALUE,
                       allowed="a label value such as v1 (letters, digits, '.', '_', '-'; at most 63)")
    s.done()
    return MeshModel(repo=repo, revision=revision, file=file, format=model_format, path=path, version=version)


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


def _check_smoke_cases(s: Section, mm: ModelMeshSettings, settings: Settings) -> None:
    if not (mm.enabled and settings.smoke.enabled):
        return
    key = s.key("smokeCases")
    if not mm.smoke_cases:
        raise ConfigError(
            key,
            f"must list at least one V2 smoke case file (kind: v2, model: {mm.primary_name}) while smoke.enabled "
            f"is true: the smoke gate calls {mm.primary_name} through ModelMesh (or set smoke.enabled to false)",
        )
    for path in mm.smoke_cases:
        kind, model = _smoke_case_model(path)
        if kind is None:
            raise ConfigError(key, f"must list readable YAML case files, got {show(path)}")
        if kind != "v2" or model != mm.primary_name:
            raise ConfigError(key, f"must list V2 case files for {mm.primary_name} (kind: v2, model: "
                                   f"{mm.primary_name}), got {show(path)} (kind {show(kind)}, model {show(model)})")


def _check_prefixes(models: Section, mm: ModelMeshSettings, settings: Settings) -> None:
    """Staging owns each prefix: two different snapshots must never share one."""
    for role, model in mm.models().items():
        for tgi_role, tgi_model in (("stable", settings.stable), ("canary", settings.canary)):
            if model.object_prefix == tgi_model.object_prefix:
                raise ConfigError(models.key(f"{role}.path"), f"must differ from models.{tgi_role}.path "
                                                              f"(the TGI model's prefix), got {show(model.path)}")
    if mm.primary and mm.candidate and mm.primary.object_prefix == mm.candidate.object_prefix \
            and mm.primary.staging_identity() != mm.candidate.staging_identity():
        raise ConfigError(models.key("candidate.path"),
                          f"must differ from models.primary.path unless both stage the same repo, revision and "
                          f"file, got {show(mm.candidate.path)}")


def parse_modelmesh(raw: Mapping[str, Any], settings: Settings) -> ModelMeshSettings:
    """Validate ``raw["modelmesh"]`` (raw is the whole stack config without the project prefix)."""
    s = Section(KEY, raw.get(KEY))
    enabled = s.boolean("enabled", False)
    install = s.boolean("install", False)
    if install:
        raise ConfigError(
            s.key("install"),
            "is not supported: ModelMesh Serving installs through an imperative script (kustomize edits, an etcd "
            "secret, a self-signed webhook CA, an env patch; components-api §4.6) and its CRDs conflict with a "
            "full KServe install. Install it on the cluster as a platform prerequisite (cluster scope) and keep "
            "modelmesh.install false",
        )
    app = s.string("app", "backend", pattern=_APP,
                   allowed="a DNS-1035 label such as backend (lower-case letters, digits, '-', starting with a letter)")
    if len(isvc_name(app, 1)) > 63:
        raise ConfigError(s.key("app"), f"must be at most 61 characters (InferenceService {app}-1), got {show(app)}")
    routemap = s.boolean("routemap", False)
    runtime = _parse_runtime(s.section("runtime"))

    models = s.section("models")
    primary = _parse_model(models.section("primary"), runtime) if models.has("primary") else None
    candidate = _parse_model(models.section("candidate"), runtime) if models.has("candidate") else None
    models.raw("primary")
    models.raw("candidate")
    models.done()
    if candidate is not None and primary is None:
        raise ConfigError(models.key("primary"),
                          "is required when models.candidate is set: the candidate is compared with a primary")
    if enabled and primary is None:
        raise ConfigError(models.key("primary"),
                          "is required when modelmesh.enabled is true: {repo, revision, file, format, path, version}")
    smoke_cases = s.string_list("smokeCases")
    s.done()

    mm = ModelMeshSettings(enabled=enabled, install=install, app=app, routemap=routemap, runtime=runtime,
                           primary=primary, candidate=candidate, smoke_cases=smoke_cases)
    if enabled and settings.storage.kind != "minio":
        raise ConfigError(s.key("enabled"),
                          f"needs storage.kind minio: the storage-config entry is built from MinIO's generated "
                          f"read-only user, got storage.kind {show(settings.storage.kind)}")
    _check_prefixes(models, mm, settings)
    _check_smoke_cases(s, mm, settings)
    return mm


def enabled_modelmesh(settings: Settings) -> ModelMeshSettings | None:
    """The stack's ModelMesh settings when the track is on, else None."""
    mm: ModelMeshSettings | None = settings.extras.get(KEY)
    return mm if mm is not None and mm.enabled else None
