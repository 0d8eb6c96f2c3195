"""The one typed settings loader: stack config -> frozen Settings, validated before any resource.

This is the only module that reads ``pulumi.Config`` (in :func:`load_settings`). Parsing itself is
:func:`parse_settings`, a pure function over a plain mapping so it is tested without Pulumi.
Defaults live here and are mirrored in ``Pulumi.yaml``; a test keeps the two in step.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import Enum
from pathlib import Path
from typing import Any

from components.credentials import CredentialGenerator
from components.split import SplitError, SplitPlan, plan_split
from stacks.config_reader import PROJECT, ConfigError, Section, is_dns_label, show

REPO_ROOT = Path(__file__).resolve().parent.parent

# Top-level config keys, in the order the README documents them.
TOP_LEVEL_KEYS = (
    "namespace", "platform", "split", "models", "tgi", "storage", "datashim", "staging",
    "traffic", "smoke", "credentials", "modelmesh", "gpu", "eks", "aws",
)

_PINNED_IMAGE = re.compile(
    r"^(?P<repo>[a-z0-9]+([._/-][a-z0-9]+)*(:[0-9]+)?(/[a-z0-9]+([._-][a-z0-9]+)*)*)"
    r"(?:(?::(?P<tag>[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}))?(?:@(?P<digest>sha256:[a-f0-9]{64}))?)$"
)
_FLOATING_TAGS = {"latest", "main", "master", "stable", "edge", "nightly", "dev"}
_COMMIT_SHA = re.compile(r"^[0-9a-f]{40}$")
_HF_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_OBJECT_PREFIX = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")


class Platform(str, Enum):
    """Where the stack runs: any existing cluster (``local``) or an EKS cluster it creates."""

    LOCAL = "local"
    EKS = "eks"


class Variant(str, Enum):
    """Experiment variant; also the value of the tutorial's ``type`` pod label."""

    STABLE = "stable"
    CANARY = "canary"


def image_is_pinned(image: str) -> bool:
    """True when ``image`` names an exact version tag or a digest (never latest or no tag)."""
    match = _PINNED_IMAGE.match(image)
    if not match:
        return False
    if match.group("digest"):
        return True
    tag = match.group("tag")
    return bool(tag) and tag.lower() not in _FLOATING_TAGS


def image_tag(image: str) -> str | None:
    """The tag of a pinned image reference, or None for digest-only references."""
    match = _PINNED_IMAGE.match(image)
    return match.group("tag") if match else None


def pinned_image(section: Section, name: str, default: str) -> str:
    value = section.string(name, default)
    if not image_is_pinned(value):
        raise ConfigError(
            section.key(name),
            f"must be an image pinned by an exact version tag or a digest (e.g. repo:1.3.4 or "
            f"repo@sha256:...), never latest or untagged, got {show(value)}",
        )
    return value


@dataclass(frozen=True, kw_only=True)
class SplitSettings:
    """Declared traffic split between the two TGI variants."""

    canary_percent: float = 50.0
    """Share of requests for the canary, 0-100."""
    replicas: int = 2
    """Total TGI replicas over both variants."""
    tolerance: float = 5.0
    """Maximum percentage points between the declared and the effective split."""


@dataclass(frozen=True, kw_only=True)
class ModelSettings:
    """One model revision, staged into the bucket under ``path/revision``."""

    id: str
    """Hugging Face repo id, e.g. google/flan-t5-small."""
    revision: str
    """Pinned commit (40 hex characters)."""
    path: str
    """Prefix in the bucket; weights land under ``<path>/<revision>/``."""

    @property
    def object_prefix(self) -> str:
        return f"{self.path}/{self.revision}"


@dataclass(frozen=True, kw_only=True)
class Resources:
    """CPU and memory requests and limits of a container."""

    cpu_request: str
    memory_request: str
    cpu_limit: str
    memory_limit: str

    def to_k8s(self, extra_limits: Mapping[str, str] | None = None) -> dict[str, dict[str, str]]:
        limits = {"cpu": self.cpu_limit, "memory": self.memory_limit, **(extra_limits or {})}
        return {"requests": {"cpu": self.cpu_request, "memory": self.memory_request}, "limits": limits}


@dataclass(frozen=True, kw_only=True)
class TgiSettings:
    """Text Generation Inference server settings shared by both variants."""

    image: str = "ghcr.io/huggingface/text-generation-inference:1.3.4"
    gpus_per_replica: int = 0
    max_input_tokens: int = 512
    max_total_tokens: int = 1024
    max_batch_prefill_tokens: int = 1024
    resources: Resources = field(default_factory=lambda: Resources(
        cpu_request="2", memory_request="4Gi", cpu_limit="4", memory_limit="8Gi"))
    startup_budget_seconds: int = 1800
    """How long a replica may take to download, load and warm up before it is declared failed."""
    shm_size: str = "1Gi"
    node_selector: Mapping[str, str] = field(default_factory=dict)
    run_as_non_root: bool = False
    """The upstream image runs as root (its entrypoint runs ldconfig); enable for images that don't."""


@dataclass(frozen=True, kw_only=True)
class StorageSettings:
    """Where the weights live: in-cluster MinIO (default) or S3 on eks."""

    kind: str = "minio"
    bucket: str = "model-weights"
    size: str = "20Gi"
    minio_image: str = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
    storage_class: str | None = None
    protect: bool = True
    """Keep the weights (volume, bucket) when the stack is destroyed."""


@dataclass(frozen=True, kw_only=True)
class DatashimSettings:
    """The Datashim Dataset that mounts the bucket into TGI pods."""

    install: bool = False
    """Install the Datashim operator from its pinned release (usually the platform team's job)."""
    version: str = "0.4.1"
    dataset_name: str = "model-weights"
    operator_namespace: str = "dlf"
    await_provision: bool = True
    """Wait for the Dataset's volume to be provisioned (needs the operator running)."""


@dataclass(frozen=True, kw_only=True)
class StagingSettings:
    """The Jobs that copy pinned model revisions from the Hub into the bucket."""

    enabled: bool = True
    image: str = "python:3.11.11-slim-bookworm"
    timeout_seconds: int = 3600


@dataclass(frozen=True, kw_only=True)
class TrafficSettings:
    """Who may reach TGI (NetworkPolicy)."""

    allowed_namespaces: tuple[str, ...] = ()
    """Namespaces besides the experiment's own whose pods may call TGI."""


@dataclass(frozen=True, kw_only=True)
class SmokeSettings:
    """The post-deploy smoke-test Job that gates ``pulumi up``."""

    enabled: bool = True
    image: str = "python:3.11.11-slim-bookworm"
    cases: tuple[str, ...] = ("smoke/cases/flan-t5-small.yaml", "smoke/cases/flan-t5-base.yaml")
    samples: int = 400
    timeout_seconds: int = 900


@dataclass(frozen=True, kw_only=True)
class CredentialSettings:
    """What generates the stack's credentials (components/credentials.py)."""

    generator: CredentialGenerator = CredentialGenerator.RANDOM


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything a stack declares, validated."""

    stack: str
    namespace: str = "llm-ab"
    platform: Platform = Platform.LOCAL
    split: SplitSettings = field(default_factory=SplitSettings)
    plan: SplitPlan
    stable: ModelSettings
    canary: ModelSettings
    tgi: TgiSettings = field(default_factory=TgiSettings)
    storage: StorageSettings = field(default_factory=StorageSettings)
    datashim: DatashimSettings = field(default_factory=DatashimSettings)
    staging: StagingSettings = field(default_factory=StagingSettings)
    traffic: TrafficSettings = field(default_factory=TrafficSettings)
    smoke: SmokeSettings = field(default_factory=SmokeSettings)
    credentials: CredentialSettings = field(default_factory=CredentialSettings)
    extras: Mapping[str, Any] = field(default_factory=dict)
    """Parsed settings of optional features (modelmesh, eks), keyed by top-level config key."""

    def model(self, variant: Variant) -> ModelSettings:
        return self.stable if variant is Variant.STABLE else self.canary

    def replicas(self, variant: Variant) -> int:
        return self.plan.stable_replicas if variant is Variant.STABLE else self.plan.canary_replicas


# --- parsing ------------------------------------------------------------------------------


def _parse_split(s: Section) -> tuple[SplitSettings, SplitPlan]:
    d = SplitSettings()
    split = SplitSettings(
        canary_percent=s.number("canaryPercent", d.canary_percent, lo=0, hi=100),
        replicas=s.integer("replicas", d.replicas, lo=1, hi=1000),
        tolerance=s.number("tolerance", d.tolerance, lo=0, hi=100),
    )
    s.done()
    try:
        plan = plan_split(split.canary_percent, split.replicas, split.tolerance)
    except SplitError as err:
        raise ConfigError(s.key("replicas"), f"cannot realise the declared split: {err}") from None
    return split, plan


def _parse_model(s: Section, default_path: str | None = None) -> ModelSettings:
    model_id = s.string("id", pattern=_HF_REPO_ID, allowed="a Hugging Face repo id such as google/flan-t5-small")
    revision = s.string(
        "revision", pattern=_COMMIT_SHA,
        allowed="a pinned commit: 40 lower-case hex characters (branches and tags move)",
    )
    path = s.string(
        "path", default_path or model_id.split("/")[-1].lower(), pattern=_OBJECT_PREFIX,
        allowed="an object prefix such as flan-t5-small (letters, digits, '.', '_', '-', '/')",
    )
    s.done()
    return ModelSettings(id=model_id, revision=revision, path=path)


def _parse_resources(s: Section, d: Resources) -> Resources:
    requests, limits = s.section("requests"), s.section("limits")
    res = Resources(
        cpu_request=requests.quantity("cpu", d.cpu_request),
        memory_request=requests.quantity("memory", d.memory_request),
        cpu_limit=limits.quantity("cpu", d.cpu_limit),
        memory_limit=limits.quantity("memory", d.memory_limit),
    )
    requests.done()
    limits.done()
    s.done()
    return res


def _parse_tgi(s: Section) -> TgiSettings:
    d = TgiSettings()
    tgi = TgiSettings(
        image=pinned_image(s, "image", d.image),
        gpus_per_replica=s.integer("gpusPerReplica", d.gpus_per_replica, lo=0, hi=16),
        max_input_tokens=s.integer("maxInputTokens", d.max_input_tokens, lo=1),
        max_total_tokens=s.integer("maxTotalTokens", d.max_total_tokens, lo=2),
        max_batch_prefill_tokens=s.integer("maxBatchPrefillTokens", d.max_batch_prefill_tokens, lo=1),
        resources=_parse_resources(s.section("resources"), d.resources),
        startup_budget_seconds=s.integer("startupBudgetSeconds", d.startup_budget_seconds, lo=60, hi=86400),
        shm_size=s.quantity("shmSize", d.shm_size),
        node_selector=s.string_map("nodeSelector"),
        run_as_non_root=s.boolean("runAsNonRoot", d.run_as_non_root),
    )
    s.done()
    if tgi.max_total_tokens <= tgi.max_input_tokens:
        raise ConfigError(
            s.key("maxTotalTokens"),
            f"must be greater than tgi.maxInputTokens ({tgi.max_input_tokens}), got {tgi.max_total_tokens}",
        )
    if tgi.max_batch_prefill_tokens < tgi.max_input_tokens:
        raise ConfigError(
            s.key("maxBatchPrefillTokens"),
            f"must be at least tgi.maxInputTokens ({tgi.max_input_tokens}), got {tgi.max_batch_prefill_tokens}",
        )
    return tgi


def _parse_storage(s: Section, platform: Platform) -> StorageSettings:
    d = StorageSettings()
    kinds = ("minio", "s3") if platform is Platform.EKS else ("minio",)
    storage = StorageSettings(
        kind=s.choice("kind", d.kind, kinds),
        bucket=s.string("bucket", d.bucket, pattern=_BUCKET,
                        allowed="an S3 bucket name (3-63 lower-case letters, digits, '.', '-')"),
        size=s.quantity("size", d.size),
        minio_image=pinned_image(s, "minioImage", d.minio_image),
        storage_class=s.optional_string("storageClass"),
        protect=s.boolean("protect", d.protect),
    )
    s.done()
    return storage


def _parse_datashim(s: Section) -> DatashimSettings:
    d = DatashimSettings()
    ds = DatashimSettings(
        install=s.boolean("install", d.install),
        version=s.string("version", d.version, pattern=re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$"),
                         allowed="a release version such as 0.4.1"),
        dataset_name=s.dns_label("datasetName", d.dataset_name),
        operator_namespace=s.dns_label("operatorNamespace", d.operator_namespace),
        await_provision=s.boolean("awaitProvision", d.await_provision),
    )
    s.done()
    return ds


def _parse_staging(s: Section) -> StagingSettings:
    d = StagingSettings()
    st = StagingSettings(
        enabled=s.boolean("enabled", d.enabled),
        image=pinned_image(s, "image", d.image),
        timeout_seconds=s.integer("timeoutSeconds", d.timeout_seconds, lo=60, hi=86400),
    )
    s.done()
    return st


def _parse_traffic(s: Section) -> TrafficSettings:
    names = s.string_list("allowedNamespaces")
    for name in names:
        if not is_dns_label(name):
            raise ConfigError(s.key("allowedNamespaces"), f"must list namespace names, got {show(name)}")
    s.done()
    return TrafficSettings(allowed_namespaces=names)


def _parse_smoke(s: Section) -> SmokeSettings:
    d = SmokeSettings()
    sm = SmokeSettings(
        enabled=s.boolean("enabled", d.enabled),
        image=pinned_image(s, "image", d.image),
        cases=s.string_list("cases", d.cases),
        samples=s.integer("samples", d.samples, lo=10, hi=100000),
        timeout_seconds=s.integer("timeoutSeconds", d.timeout_seconds, lo=120, hi=86400),
    )
    s.done()
    names: set[str] = set()
    for i, case in enumerate(sm.cases):
        path = REPO_ROOT / case
        if not path.is_file() or REPO_ROOT not in path.resolve().parents:
            raise ConfigError(f"{s.key('cases')}[{i}]",
                              f"must name a case file inside the repository, got {show(case)} (not found)")
        if path.name in names:
            raise ConfigError(f"{s.key('cases')}[{i}]", f"must have a file name unlike the others, got {show(case)}")
        names.add(path.name)
    return sm


def _parse_credentials(s: Section) -> CredentialSettings:
    d = CredentialSettings()
    generator = CredentialGenerator(s.choice("generator", d.generator.value, [g.value for g in CredentialGenerator]))
    s.done()
    return CredentialSettings(generator=generator)


# Optional features parse their own keys: key -> (raw config, core settings) -> parsed value, stored
# in ``Settings.extras[key]``; each raises ConfigError naming the key, like the core parsers. The
# import is inside the function only because those modules import this one.
def _feature_parsers() -> dict[str, Any]:
    from stacks.eks_settings import parse_eks
    from stacks.modelmesh_settings import parse_modelmesh

    return {"modelmesh": parse_modelmesh, "eks": parse_eks}


def parse_settings(raw: Mapping[str, Any], *, stack: str = "dev") -> Settings:
    """Validate raw config (keys without the ``llm-ab:`` prefix) into :class:`Settings`."""
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        head = unknown[0].split(".", 1)[0]
        if "." in unknown[0] and head in TOP_LEVEL_KEYS:
            # `pulumi config set split.canaryPercent 10` (without --path) makes a flat key.
            raise ConfigError(unknown[0], f"is not a known setting: {head} is an object, so set its field with "
                                          f"`pulumi config set --path {unknown[0]} {show(raw[unknown[0]])}`")
        raise ConfigError(unknown[0], f"is not a known setting (known: {', '.join(TOP_LEVEL_KEYS)})")
    root = Section("", raw)
    namespace = root.dns_label("namespace", "llm-ab")
    platform = Platform(root.choice("platform", Platform.LOCAL.value, [p.value for p in Platform]))
    split, plan = _parse_split(root.section("split"))

    models = root.section("models")
    if not models.has("stable") or not models.has("canary"):
        missing = "stable" if not models.has("stable") else "canary"
        raise ConfigError(models.key(missing), "is required: {id, revision, path} of the model")
    stable = _parse_model(models.section("stable"))
    canary = _parse_model(models.section("canary"))
    models.done()
    if stable.object_prefix == canary.object_prefix and stable.id != canary.id:
        raise ConfigError(models.key("canary.path"),
                          f"must differ from models.stable.path for a different model, got {show(canary.path)}")

    settings = Settings(
        stack=stack,
        namespace=namespace,
        platform=platform,
        split=split,
        plan=plan,
        stable=stable,
        canary=canary,
        tgi=_parse_tgi(root.section("tgi")),
        storage=_parse_storage(root.section("storage"), platform),
        datashim=_parse_datashim(root.section("datashim")),
        staging=_parse_staging(root.section("staging")),
        traffic=_parse_traffic(root.section("traffic")),
        smoke=_parse_smoke(root.section("smoke")),
        credentials=_parse_credentials(root.section("credentials")),
    )
    extras = {key: parser(raw, settings) for key, parser in _feature_parsers().items()}
    return replace(settings, extras=extras)


def load_settings() -> Settings:
    """Read this stack's ``llm-ab:*`` config through Pulumi and validate it."""
    import pulumi

    cfg = pulumi.Config(PROJECT)
    raw: dict[str, Any] = {}
    for key in TOP_LEVEL_KEYS:
        value = cfg.get_object(key) if key not in ("namespace", "platform") else cfg.get(key)
        if value is not None:
            raw[key] = value
    # Keys we don't know would otherwise be silently ignored; surface them too.
    for full_key in _stack_config_keys():
        name = full_key.split(":", 1)[1]
        if full_key.startswith(f"{PROJECT}:") and name not in TOP_LEVEL_KEYS:
            raw[name] = cfg.get(name)
    return parse_settings(raw, stack=pulumi.get_stack())


def _stack_config_keys() -> list[str]:
    import pulumi.runtime.config as runtime_config

    return sorted({*runtime_config.CONFIG.get().keys(), *runtime_config.get_config_env().keys()})
