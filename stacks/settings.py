"""The settings schema: stack config -> one validated, immutable :class:`Settings`, before any resource.

One declarative schema (pydantic v2, blocks in :mod:`stacks.config_types`): a section class per
config object, with the defaults (this is where they live: ``Pulumi.yaml``'s ``config:`` block and
the README's configuration reference are generated from it, ``python -m stacks.config_docs``),
the bounds, the camelCase keys and the rules across fields. :func:`parse_settings` is pure (tests
call it on plain mappings); :func:`load_settings` is the only reader of ``pulumi.Config``.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping, Sequence
from enum import Enum
from pathlib import Path
from typing import Annotated, Any, Protocol

from pydantic import BeforeValidator, Field, ValidationInfo, model_validator

from analysis.thresholds import CONFIG_KEYS, past_gate_limits
from components.engines.tgi import DTYPES as TGI_DTYPES
from components.engines.tgi import QUANTIZATIONS as TGI_QUANTIZATIONS
from components.naming import DATASHIM_POD_LABELS
from components.weights_volume import WeightsKeep, weights_keep
from smoke.plan import MIN_JOB_DEADLINE_SECONDS
from smoke.power import DEFAULT_ALPHA, DEFAULT_DELTA, MIN_CAP_POWER, min_samples
from stacks.analysis_settings import AnalysisSettings
from stacks.autoscaling_settings import AutoscalingSettings, check_autoscaling
from stacks.config_types import (
    COMMIT_SHA,
    HF_REPO_ID,
    OBJECT_PREFIX,
    PINNED_COMMIT,
    PROJECT,
    Bool,
    Choice,
    ConfigError,
    DnsLabel,
    LabelMap,
    OneOf,
    OptionalChoice,
    OptionalDnsSubdomain,
    OptionalWholeNumber,
    PinnedImage,
    PositiveQuantity,
    PositiveQuantityUpTo,
    Resources,
    Section,
    StringList,
    Text,
    WholeNumber,
    given,
    is_dns_label,
    problem,
    resources,
    show,
    validate,
)
from stacks.eks_settings import EksSettings, GpuSettings, check_eks_platform
from stacks.local_settings import LocalSettings, check_local
from stacks.modelmesh_settings import ModelMeshSettings, check_modelmesh
from stacks.network_settings import NetworkSettings, check_network
from stacks.observability_settings import ObservabilitySettings
from stacks.split_settings import SplitSettings, check_gateway_namespace
from stacks.vllm_settings import DEFAULT_ENGINE, ENGINES, VllmSettings, check_engines

REPO_ROOT = Path(__file__).resolve().parent.parent


class Platform(str, Enum):
    """Where the stack runs: any existing cluster (``local``) or an EKS cluster it creates."""

    LOCAL = "local"
    EKS = "eks"


class Variant(str, Enum):
    """Experiment variant; also the value of the tutorial's ``type`` pod label."""

    STABLE = "stable"
    CANARY = "canary"


class ModelSettings(Section):
    """One model revision, staged into the bucket under ``path/revision``."""

    id: Annotated[str, Text(HF_REPO_ID, "a Hugging Face repo id such as google/flan-t5-small")]
    """Hugging Face repo id of the model, e.g. `google/flan-t5-small`"""
    revision: Annotated[str, Text(COMMIT_SHA, PINNED_COMMIT)]
    """Pinned commit (40 hex characters)"""
    path: Annotated[str, Text(OBJECT_PREFIX, "an object prefix such as flan-t5-small (letters, digits, '.', '_', "
                              "'-', '/')")]
    """Prefix in the bucket; weights land under `<path>/<revision>/`"""
    engine: Annotated[str, OneOf(ENGINES)] = DEFAULT_ENGINE
    """Serving engine of this variant: `tgi` (settings `tgi.*`) or `vllm` (settings `vllm.*`)"""

    @model_validator(mode="before")
    @classmethod
    def _path_defaults_to_the_repo_name(cls, data: Any) -> Any:
        if isinstance(data, Mapping) and not given(data, "path") and isinstance(data.get("id"), str):
            return {**data, "path": data["id"].split("/")[-1].lower()}
        return data

    @property
    def object_prefix(self) -> str:
        return f"{self.path}/{self.revision}"

    def staging_identity(self) -> tuple[str, str, tuple[str, ...]]:
        """What its staging Job puts under :attr:`object_prefix`: the repo, the revision, the engine's files."""
        return self.id, self.revision, ()


class StagedPrefix(Protocol):
    """What the bucket prefix rule needs of a staged model (a variant's, or a ModelMesh model's)."""

    @property
    def path(self) -> str: ...

    @property
    def object_prefix(self) -> str: ...

    def staging_identity(self) -> tuple[str, str, tuple[str, ...]]: ...


def prefix_problem(model: StagedPrefix, other_key: str, other: StagedPrefix, key: str) -> str | None:
    """Why ``model`` (at ``key``) and ``other`` (at ``other_key``, both ``section.models.role``) cannot share the
    bucket, or None. Each staging Job owns its prefix: it lists it recursively and deletes every object it did not
    stage. So two prefixes may be equal only for the very same snapshot, and never nest."""
    mine, theirs = model.object_prefix, other.object_prefix
    if mine == theirs:
        if model.staging_identity() == other.staging_identity():
            return None  # the same snapshot (e.g. after `make promote`): one Job stages it
        return (f"must differ from {other_key}.path ({show(other.path)}) for a different model: both would be staged "
                f"under {show(mine)}, and each staging Job deletes what the other uploaded, got {show(model.path)}")
    if not (mine.startswith(f"{theirs}/") or theirs.startswith(f"{mine}/")):
        return None
    (outer_key, outer), (inner_key, inner) = sorted([(key, model), (other_key, other)],
                                                    key=lambda kv: len(kv[1].object_prefix))
    return (f"must not nest with {other_key}.path ({show(other.path)}): {inner_key} is staged under "
            f"{show(inner.object_prefix)}, inside {outer_key}'s {show(outer.object_prefix)}, and staging {outer_key} "
            f"deletes every object under its prefix that it did not stage; give each model a path of its own (one "
            f"no other path starts with), got {show(model.path)}")


def check_bucket_prefixes(models: Mapping[str, StagedPrefix]) -> None:
    """No two staged models (``key`` -> model, in config order) share or nest their bucket prefixes; the error is
    at the later key's ``path`` and names both keys and values."""
    seen: list[tuple[str, StagedPrefix]] = []
    for key, model in models.items():
        for other_key, other in seen:
            why = prefix_problem(model, other_key, other, key)
            if why is not None:
                raise problem(why, at=f"{key}.path")
        seen.append((key, model))


class ModelsSettings(Section):
    """The A/B pair."""

    stable: ModelSettings
    canary: ModelSettings

    @model_validator(mode="before")
    @classmethod
    def _both_required(cls, data: Any) -> Any:
        for role in ("stable", "canary"):
            if isinstance(data, Mapping) and not given(data, role):
                raise problem("is required: {id, revision, path} of the model", at=role)
        return data


SERVING_RESOURCES_RULE, SERVING_RESOURCES = resources(requests=("2", "4Gi"), limits=("4", "8Gi"))


class ServingSettings(Section):
    """The serving pod of both variants, whatever their engines: GPUs, resources, startup budget, placement."""

    gpus_per_replica: Annotated[int, WholeNumber(0, 16)] = 0
    """`nvidia.com/gpu` per replica (and the engines' tensor parallelism); > 0 adds the GPU toleration and node
    placement"""
    resources: Annotated[Resources, SERVING_RESOURCES_RULE] = SERVING_RESOURCES
    """`{requests, limits}` × `{cpu, memory}` of each serving container"""
    startup_budget_seconds: Annotated[int, WholeNumber(60, 86400)] = 1800
    """Time a replica may take to load and warm up; sets the startup probe and Pulumi's wait"""
    shm_size: PositiveQuantity = "1Gi"
    """Size of the memory-backed `/dev/shm`"""
    node_selector: LabelMap = Field(default_factory=dict)
    """Node selector of the serving pods; on local with GPUs, empty selects `nvidia.com/gpu.present: "true"`
    (GPU Feature Discovery's label)"""
    run_as_non_root: Bool = True
    """Run as uid 1000 with a read-only root file system (TGI images up to 3.0, vLLM; TGI 3.1+ needs `false`:
    see Security defaults)"""


SERVING_KEYS = tuple(ServingSettings.keys())
"""The ``serving`` keys, which ``tgi`` held before vLLM (``tgi.gpusPerReplica``, ...)."""


class TgiSettings(Section):
    """Text Generation Inference settings, for the variants whose engine is tgi."""

    image: PinnedImage = "ghcr.io/huggingface/text-generation-inference:1.3.4"
    """TGI image, pinned by exact tag or digest"""
    max_input_tokens: Annotated[int, WholeNumber(1)] = 512
    """Max input tokens (sent as `MAX_INPUT_LENGTH` to TGI < 2.1)"""
    max_total_tokens: Annotated[int, WholeNumber(2)] = 1024
    """Max input + generated tokens; must exceed `maxInputTokens`"""
    max_batch_prefill_tokens: Annotated[int, WholeNumber(1)] = 1024
    """Prefill budget; small values keep CPU warmup short"""
    dtype: Annotated[str | None, OptionalChoice(TGI_DTYPES)] = None
    """`DTYPE` (float16, bfloat16; empty: the model's); not with `quantize`"""
    quantize: Annotated[str | None, OptionalChoice(TGI_QUANTIZATIONS)] = None
    """`QUANTIZE` (awq, gptq, bitsandbytes, eetq, fp8, ...; empty: none); needs GPUs"""
    max_batch_size: Annotated[int | None, OptionalWholeNumber(1, 4096)] = None
    """`MAX_BATCH_SIZE`: max requests per batch (empty: TGI sizes batches by the token budgets)"""

    @model_validator(mode="after")
    def _token_budgets(self) -> TgiSettings:
        if self.max_total_tokens <= self.max_input_tokens:
            raise problem(f"must be greater than tgi.maxInputTokens ({self.max_input_tokens}), "
                          f"got {self.max_total_tokens}", at="maxTotalTokens")
        if self.max_batch_prefill_tokens < self.max_input_tokens:
            raise problem(f"must be at least tgi.maxInputTokens ({self.max_input_tokens}), "
                          f"got {self.max_batch_prefill_tokens}", at="maxBatchPrefillTokens")
        return self


BUCKET_LABELS = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?(\.[a-z0-9]([a-z0-9-]*[a-z0-9])?)*$")
BUCKET_RESERVED_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
BUCKET_RESERVED_SUFFIXES = ("-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3")
BUCKET_ALLOWED = ("an S3 bucket name: 3-63 lower-case letters, digits, '.' and '-', in dot-separated parts that start "
                  "and end with a letter or digit (so no '..'), not an IP address, not starting with "
                  f"{', '.join(BUCKET_RESERVED_PREFIXES)} nor ending with {', '.join(BUCKET_RESERVED_SUFFIXES)}")
DEFAULT_BUCKET = "model-weights"


def is_bucket_name(name: str) -> bool:
    """S3's naming rules for general-purpose buckets, which MinIO's strict check shares: the API refuses any other
    name only when the bucket is created (S3) or staged into (MinIO)."""
    if not 3 <= len(name) <= 63 or not BUCKET_LABELS.match(name):
        return False
    if name.startswith(BUCKET_RESERVED_PREFIXES) or name.endswith(BUCKET_RESERVED_SUFFIXES):
        return False
    try:
        ipaddress.IPv4Address(name)
    except ValueError:
        return True
    return False


MAX_VOLUME_SIZE = "64Ti"
"""The largest MinIO volume the schema accepts: the largest single block volume the clouds offer (EBS io2 Block
Express), far above any model's weights; a larger claim stays Pending at ``up``."""


class StorageSettings(Section):
    """Where the weights live: in-cluster MinIO (default) or S3 on eks."""

    kind: Annotated[str, OneOf(("minio", "s3"))] = "minio"
    """`minio` (in-cluster) or, on eks, `s3`"""
    bucket: Annotated[str, Text(is_bucket_name, BUCKET_ALLOWED)] = DEFAULT_BUCKET
    """Bucket of the weights"""
    size: Annotated[str, PositiveQuantityUpTo(MAX_VOLUME_SIZE, "the largest single cloud block volume")] = "20Gi"
    """MinIO data volume size"""
    minio_image: PinnedImage = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"
    """MinIO image (pinned; it also ships `mc`)"""
    storage_class: OptionalDnsSubdomain = None
    """Storage class of the volume (empty: the cluster default)"""
    protect: Bool = True
    """Keep the weights volume (and its namespace) or bucket on `pulumi destroy`"""
    volume_generation: Annotated[int, WholeNumber(1, 999)] = 1
    """MinIO claim `minio-data` (1) or `minio-data-<n>`; raising it (with `allowReplace`) moves the weights
    to a new, empty volume"""
    allow_replace: Bool = False
    """Let this update replace the weights claim (new generation or namespace, or leaving MinIO; the old claim
    is kept, and so is its namespace); set it back after (after leaving MinIO: once the kept claim is deleted)"""


RESERVED_NAMESPACES = ("default", "kube-node-lease", "kube-public", "kube-system")
"""Kubernetes' own namespaces: never the experiment's (it labels, locks down and retains its namespace)."""


def _own_namespace(value: Any) -> Any:
    if value in RESERVED_NAMESPACES:
        raise problem(f"must be a namespace of the experiment's own, not one of Kubernetes' "
                      f"({', '.join(RESERVED_NAMESPACES)}): the stack labels it, denies all traffic in it but what "
                      f"its policies allow and keeps it on destroy, got {show(value)}")
    return value


class AdoptSettings(Section):
    """What the stack may take over from the cluster instead of creating it."""

    namespace: Bool = False
    """Take over `namespace` although it exists already and this stack did not create it (the deploy driver
    refuses otherwise): it is then labelled and locked down like the stack's own (default-deny
    NetworkPolicies: its other pods lose their traffic) and never deleted, by `destroy` either"""


def _not_kube_system(value: Any) -> Any:
    if value == "kube-system":
        raise problem("must be a namespace of Datashim's own such as dlf, not kube-system: its install labels the "
                      "namespace privileged and MinIO admits every pod in it, got 'kube-system'")
    return value


def _some_labels(value: Any) -> Any:
    if isinstance(value, Mapping) and not value:
        raise problem(f"must name at least one pod label of Datashim's pods (default "
                      f"{', '.join(f'{k}: {v}' for k, v in DATASHIM_POD_LABELS.items())}): an empty selector would "
                      f"let every pod of datashim.operatorNamespace reach MinIO, got {{}}")
    return value


class DatashimSettings(Section):
    """The Datashim Dataset that mounts the bucket into TGI pods."""

    install: Bool = False
    """Install the Datashim operator from its pinned release (usually the platform team's job)"""
    version: Annotated[str, Text(re.compile(r"^[0-9]+\.[0-9]+\.[0-9]+$"), "a release version such as 0.4.1")] = "0.4.1"
    """Datashim release to install"""
    dataset_name: DnsLabel = "model-weights"
    """Name of the Dataset (pods mount it at `/mnt/datasets/<name>`)"""
    operator_namespace: Annotated[DnsLabel, BeforeValidator(_not_kube_system)] = "dlf"
    """Namespace of the Datashim operator"""
    operator_pod_labels: Annotated[LabelMap, BeforeValidator(_some_labels)] = Field(
        default_factory=lambda: dict(DATASHIM_POD_LABELS))
    """Labels of the Datashim pods in `operatorNamespace` allowed to reach MinIO (its csi-s3 node plugin and
    provisioner mount and check the bucket); never empty, which would admit every pod of that namespace"""
    await_provision: Bool = True
    """Wait for the Dataset's volume (needs the operator)"""


class StagingSettings(Section):
    """The Jobs that copy pinned model revisions from the Hub into the bucket."""

    enabled: Bool = True
    """Run the staging Jobs"""
    image: PinnedImage = "python:3.11.11-slim-bookworm"
    """Pinned python image the staging tool runs on"""
    timeout_seconds: Annotated[int, WholeNumber(60, 86400)] = 3600
    """Deadline of one staging Job"""


def _namespace_names(value: Any) -> Any:
    if isinstance(value, list):
        for name in value:
            if isinstance(name, str) and name and not is_dns_label(name):
                raise problem(f"must list namespace names, got {show(name)}")
    return value


class TrafficSettings(Section):
    """Who may reach TGI (NetworkPolicy)."""

    allowed_namespaces: Annotated[StringList, BeforeValidator(_namespace_names)] = ()
    """Namespaces whose pods may call TGI (in the experiment's own, pods labelled `llm-ab/inference-client: "true"`)"""


DEFAULT_SMOKE_CASES = ("smoke/cases/flan-t5-small.yaml", "smoke/cases/flan-t5-base.yaml")
"""The tutorial pair's case files: the one default case list (the smoke gate's output lists it)."""


class SmokeSettings(Section):
    """The post-deploy smoke-test Job that gates ``pulumi up``."""

    enabled: Bool = True
    """Run the smoke-test Job after every `pulumi up`"""
    image: PinnedImage = "python:3.11.11-slim-bookworm"
    """Pinned python image of the smoke Job"""
    cases: StringList = DEFAULT_SMOKE_CASES
    """Case files (YAML, in the repo) the smoke Job runs"""
    allow_generic_cases: Bool = False
    """Let a variant whose model no case file in `cases` names be checked by the built-in generic case only (any
    non-empty text passes; the analysis scores no golden case for it); without it such a stack fails at preview,
    with it every preview warns"""
    samples: Annotated[int, WholeNumber(10, 100000)] = 400
    """Upper bound of requests for the split check; at least what it needs to tell the expected share from one
    10 points off (327 at a 50% canary, 164 at 10%)"""
    timeout_seconds: Annotated[int, WholeNumber(MIN_JOB_DEADLINE_SECONDS, 86400)] = 900
    """Deadline of the smoke Job; its checks get this minus 200 s (pod start, pip install, the report)"""

    @model_validator(mode="after")
    def _case_files_in_the_repository(self) -> SmokeSettings:
        names: set[str] = set()
        for i, case in enumerate(self.cases):
            path = REPO_ROOT / case
            if not path.is_file() or REPO_ROOT not in path.resolve().parents:
                raise problem(f"must name a case file inside the repository, got {show(case)} (not found)",
                              at=f"cases[{i}]")
            if path.name in names:
                raise problem(f"must have a file name unlike the others, got {show(case)}", at=f"cases[{i}]")
            names.add(path.name)
            from smoke.cases import case_file_problem  # jsonschema and PyYAML: loaded only to check cases

            invalid = case_file_problem(path)
            if invalid is not None:
                raise problem(f"must name a valid smoke case file, got {show(case)}: {invalid}", at=f"cases[{i}]")
        return self


CASES_DIR = "smoke/cases"
"""Where the repository's case files live."""


def case_coverage(cases: Sequence[str], models: Mapping[Variant, str]) -> dict[Variant, str]:
    """The variants (with their model) that no case file of ``cases`` (repository paths) names: what the gates
    would check with the built-in generic case alone (:func:`smoke.cases.files_naming`)."""
    from smoke.cases import files_naming, load_case_files  # jsonschema and PyYAML: loaded only to check cases

    files, _ = load_case_files(str(REPO_ROOT / case) for case in cases)
    return {variant: model for variant, model in models.items() if not files_naming(files, model)}


def files_in_the_repository_naming(model: str) -> list[str]:
    """The valid ``kind: tgi`` case files under :data:`CASES_DIR` that name ``model`` (to suggest one)."""
    from smoke.cases import CaseFileError, TgiCaseFile, files_naming, load_case_file

    found: list[str] = []
    for path in sorted((REPO_ROOT / CASES_DIR).rglob("*.y*ml")):
        try:
            loaded = load_case_file(path)
        except CaseFileError:
            continue
        if isinstance(loaded, TgiCaseFile) and files_naming([loaded], model):
            found.append(str(path.relative_to(REPO_ROOT)))
    return found


def generic_cases_problem(cases: Sequence[str], uncovered: Mapping[Variant, str]) -> str:
    """Why ``cases`` leave the ``uncovered`` variants to the generic case, and what to do (``smoke.cases``' error)."""
    from smoke.cases import load_case_files

    files, _ = load_case_files(str(REPO_ROOT / case) for case in cases)
    named = list(dict.fromkeys(f.model for f in files if f.model is not None))
    which = " nor ".join(f"the {variant.value}'s model {model} (models.{variant.value}.id)"
                         for variant, model in uncovered.items())
    hints = [f"{', '.join(found)} names {model}: list it in smoke.cases"
             for model in dict.fromkeys(uncovered.values()) if (found := files_in_the_repository_naming(model))]
    it = "it" if len(uncovered) == 1 else "them"
    return (f"names no case file for {which}: the gates would check {it} only with the built-in generic case, which "
            f"any non-empty text passes. The listed files name {', '.join(named) or 'no model'}. "
            + "".join(f"{hint}. " for hint in hints)
            + f"Add a case file for {it} (YAML, kind: tgi, model: <its repo id>; the repository's are under "
            f"{CASES_DIR}/) to smoke.cases, or set smoke.allowGenericCases: true to accept the generic case, "
            f"got {show(list(cases))}")


def check_split_samples(samples: int, canary_percent: float) -> None:
    """``smoke.samples`` lets the split check tell the share it expects (``canary_percent``) from one
    :data:`~smoke.power.DEFAULT_DELTA` off: at least :func:`smoke.power.min_samples`. With fewer, a run still
    undecided at the cap falls back to a binomial test too weak to fail, and a wrong split passes (10 samples
    passed a 20 % canary as a 50 % one 58 % of the time)."""
    least = min_samples(canary_percent / 100)
    if samples < least:
        raise problem(f"must be at least {least} for the split check of a {canary_percent:.4g}% canary: with fewer, "
                      f"the binomial test at the cap cannot tell that share from one {DEFAULT_DELTA * 100:g} points "
                      f"off ({MIN_CAP_POWER:.0%} power at alpha {DEFAULT_ALPHA:g}), so a wrong split could pass, "
                      f"got {samples}", at="smoke.samples")


CREDENTIAL_GENERATORS = ("random", "builtin")
"""The values of :class:`components.credentials.CredentialGenerator` (that module creates resources, so the
schema names them here; a test keeps the two equal)."""


class CredentialSettings(Section):
    """What generates the stack's credentials (components/credentials.py)."""

    generator: Annotated[str, OneOf(CREDENTIAL_GENERATORS)] = "random"
    """`random` (pulumi-random, needs its plugin) or `builtin` (llm-ab's dynamic resource); changing it on a
    deployed stack rotates every credential"""


class Settings(Section):
    """Everything a stack declares, validated. Field order is the README's."""

    namespace: Annotated[DnsLabel, BeforeValidator(_own_namespace)] = "llm-ab"
    """Namespace of the experiment (a DNS label), created by the stack: an existing one is refused unless
    adopt.namespace. Protected and retained on destroy while it holds the weights claim and storage.protect is
    true."""
    adopt: AdoptSettings = AdoptSettings()
    """What the stack takes over instead of creating: namespace (an existing namespace of that name; refused
    otherwise, before the preview). Adopted, it is never deleted by destroy."""
    platform: Annotated[Platform, Choice(Platform)] = Platform.LOCAL
    """Where to deploy: local (any existing cluster, the current kube context) or eks (creates an EKS cluster
    with GPU node pools)."""
    split: SplitSettings = SplitSettings()
    """Traffic split. mode: replicas (a Service over both variants, the split is the replica ratio) or gateway (an
    HTTPRoute splits by weight); canaryPercent: canary share 0-100; replicas: total serving replicas over both
    variants (replicas mode); tolerance: max percentage points between declared and effective split; gateway
    mode: stableReplicas, canaryReplicas, gateway {name, namespace, sectionName, url} of the existing Gateway,
    canaryHeader and stableHeader ('name: value' matches that pin a request to one variant)."""
    models: ModelsSettings
    """The two models. stable and canary, each {id: Hugging Face repo id, revision: pinned 40-hex commit, path:
    prefix in the bucket}. Required; no default pair."""
    serving: ServingSettings = ServingSettings()
    """The serving pod of both variants, whatever their engines: gpusPerReplica, resources {requests, limits}
    {cpu, memory}, startupBudgetSeconds, shmSize, nodeSelector, runAsNonRoot (before vLLM these were tgi.*, which
    is still read, with a warning)."""
    tgi: TgiSettings = TgiSettings()
    """TGI settings for the variants with engine tgi: image (pinned tag or digest), maxInputTokens,
    maxTotalTokens, maxBatchPrefillTokens, dtype, quantize, maxBatchSize."""
    vllm: VllmSettings = VllmSettings()
    """vLLM settings for the variants with engine vllm: image (pinned), maxModelLen, dtype, gpuMemoryUtilization,
    maxNumSeqs, quantization, cpuKvCacheGib, extraArgs (allow-listed vllm serve flags)."""
    storage: StorageSettings = StorageSettings()
    """Weights storage: kind (minio, or s3 on eks), bucket, size of the MinIO volume, minioImage (pinned),
    storageClass (empty = cluster default), protect (keep volume and bucket on destroy)."""
    datashim: DatashimSettings = DatashimSettings()
    """Datashim: install (the operator from its pinned release; usually the platform team's), version,
    datasetName, operatorNamespace, operatorPodLabels (Datashim's pods there that may reach MinIO), awaitProvision (wait
    for the Dataset's volume; needs the operator)."""
    staging: StagingSettings = StagingSettings()
    """Model staging Jobs: enabled, image (pinned python), timeoutSeconds."""
    traffic: TrafficSettings = TrafficSettings()
    """Traffic: allowedNamespaces whose pods may call TGI besides the experiment's own namespace."""
    network: NetworkSettings = NetworkSettings()
    """NetworkPolicies: internalCidrs, the blocks the HTTPS egress to the internet (staging's Hub downloads,
    PyPI) never reaches (pod, Service, node and VPC networks, link-local)."""
    smoke: SmokeSettings = SmokeSettings()
    """Post-deploy smoke Job: enabled, image (pinned python), cases (YAML files in the repo; each variant's model
    needs one), allowGenericCases (the opt-out: a variant no case file names gets the built-in any-text case, with
    a warning), samples (upper bound for the split check, at least what it needs), timeoutSeconds."""
    analysis: AnalysisSettings = AnalysisSettings()
    """In-cluster A/B analysis gate, off by default: enabled, failOnHold (ROLLBACK always fails `pulumi up`; HOLD
    only with this), image (pinned python), mode (closed, open), concurrency, rate, requests, durationSeconds,
    requestTimeoutSeconds, readyTimeoutSeconds, maxNewTokens, looks, includeTraffic, and the decision thresholds
    (maxTtftP50RegressionPct, maxTtftP95RegressionPct, maxE2eP50RegressionPct, maxE2eP95RegressionPct,
    maxItlP50RegressionPct, maxTokensPerSecondDropPct, maxErrorRate, maxErrorRateIncrease, minCasePassRate,
    maxCasePassRateDrop, minSamples, confidence; see analysis/README.md), within the gate's limits unless
    unsafeThresholds (then a warning in every preview)."""
    observability: ObservabilitySettings = ObservabilitySettings()
    """Prometheus and Grafana, off by default: prometheus (PodMonitors per variant, a NetworkPolicy for the scrape and
    a Grafana dashboard ConfigMap; needs the Prometheus Operator's CRDs), prometheusNamespace, prometheusPodLabels,
    podMonitorLabels, scrapeInterval, dashboardNamespace."""
    credentials: CredentialSettings = CredentialSettings()
    """generator of the MinIO credentials: random (pulumi-random, needs its plugin) or builtin (llm-ab's dynamic
    resource). The deploy driver records builtin for a new stack where pulumi-random's plugin is not installed;
    changing it on a deployed stack rotates every credential."""
    modelmesh: ModelMeshSettings = ModelMeshSettings()
    """KServe ModelMesh track, off by default; ModelMesh Serving must already run on the cluster (cluster
    scope). enabled; install (must stay false: ModelMesh Serving is a platform prerequisite); app
    (InferenceServices <app>-0 primary, <app>-1 candidate); routemap (Iter8 routemap ConfigMap <app>); runtime
    {name, serverType (mlserver, triton, ovms, torchserve), image (pinned), supportedModelFormats, ports {grpc,
    grpcData, runtimeManagement}, replicas, resources {requests, limits} {cpu, memory}}; models {primary,
    candidate: each {repo, revision, file, format, path, version}}; smokeCases (V2 case files for <app>-0)."""
    local: LocalSettings = LocalSettings()
    """Platform local only (an error elsewhere): simulate, the parts (serving, staging, gates) whose pods go to the
    embedded cluster's simulated kwok nodes (faked Running; Jobs complete without running) instead of its real
    node; the stack output placement says which part is where."""
    eks: EksSettings = EksSettings()
    """Platform eks only (validated, but ignored, on local): region, clusterName (empty = llm-ab-<stack>),
    kubernetesVersion (a string: a minor EKS supports), endpointPublicAccessCidrs (who may reach the public API
    endpoint; required unless endpointPrivateOnly), endpointPrivateOnly, vpc
    {cidr (new VPC, two zones, one NAT), availabilityZones (two; empty = the first two available), subnetIds
    (existing private subnets instead of a new VPC)}, systemNodeGroup {instanceTypes, minSize, desiredSize,
    maxSize, diskSizeGiB} for everything but GPU work."""
    gpu: GpuSettings = GpuSettings()
    """Platform eks only (validated, but ignored, on local): nodePools, a list of GPU managed node groups, each
    {name, instanceTypes (g4dn, g5, g6, g6e, p4d, p5 sizes of stacks/gpu_prices.yaml), amiType
    (AL2023_x86_64_NVIDIA default, or BOTTLEROCKET_x86_64_NVIDIA), capacityType (ON_DEMAND default, or SPOT),
    minSize (0), desiredSize (1), maxSize (desiredSize), diskSizeGiB (100, also the minimum), labels}, tainted
    nvidia.com/gpu=true:NoSchedule and labelled llm-ab/gpu-pool=<name>; servingPool (the pool the model servers
    run on; empty = the first; tgiPool before vLLM); devicePlugin.image (pinned NVIDIA device plugin for AL2023
    pools)."""
    autoscaling: AutoscalingSettings = AutoscalingSettings()
    """An HPA (autoscaling/v2) per variant, split.mode gateway only: enabled, minReplicas, maxReplicas, metric
    (cpu, pods or external), cpuUtilization, metricName, averageValue, metricNameByEngine (tgi, vllm: the metric
    that engine's variants scale on instead), scaleUpPeriodSeconds, scaleDownStabilizationSeconds."""
    stack: str = Field("dev", exclude=True)
    """The stack's name (not a config key: from the engine)."""

    @model_validator(mode="before")
    @classmethod
    def _from_the_stack(cls, data: Any, info: ValidationInfo) -> Any:
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        if data.pop("aws", None) is not None:
            raise problem("is not used: set the AWS region with llm-ab:eks.region", at="aws")
        if data.get("models") is None:
            data["models"] = {}
        data["stack"] = (info.context or {}).get("stack", "dev")
        return data

    @model_validator(mode="after")
    def _rules_across_sections(self) -> Settings:
        if self.datashim.operator_namespace == self.namespace:
            raise problem(f"must differ from namespace ({show(self.namespace)}): the operator needs its own "
                          f"network and pod-security rules, got {show(self.datashim.operator_namespace)}",
                          at="datashim.operatorNamespace")
        if self.platform is not Platform.EKS and self.storage.kind != "minio":
            raise problem(f"must be one of minio, got {show(self.storage.kind)}", at="storage.kind")
        check_engines(self.vllm, engines=[self.models.stable.engine, self.models.canary.engine],
                      tgi_image=self.tgi.image, tgi_quantize=self.tgi.quantize, tgi_dtype=self.tgi.dtype,
                      gpus_per_replica=self.serving.gpus_per_replica, run_as_non_root=self.serving.run_as_non_root)
        check_bucket_prefixes({"models.stable": self.models.stable, "models.canary": self.models.canary,
                               **{f"modelmesh.models.{role}": model
                                  for role, model in self.modelmesh.models_by_role().items()}})
        check_modelmesh(self.modelmesh, storage_kind=self.storage.kind, smoke_enabled=self.smoke.enabled)
        check_gateway_namespace(self.split, self.namespace)
        check_local(self.local, platform=self.platform.value)
        uncovered = self.generic_case_variants
        if uncovered and not self.smoke.allow_generic_cases:
            raise problem(generic_cases_problem(self.smoke.cases, uncovered), at="smoke.cases")
        if self.smoke.enabled:
            check_split_samples(self.smoke.samples, self.split.effective_percent)
        check_autoscaling(self.autoscaling, gateway_mode=self.split.gateway_mode,
                          stable_replicas=self.split.stable_replicas, canary_replicas=self.split.canary_replicas,
                          default_replicas=SplitSettings.model_construct().stable_replicas,
                          engines={v.value: self.model(v).engine for v in Variant})
        if self.platform is Platform.EKS:
            check_eks_platform(self.gpu, gpus_per_replica=self.serving.gpus_per_replica,
                               replicas=self.max_total_replicas, replicas_key=self.replicas_key,
                               storage_kind=self.storage.kind,
                               bucket=self.storage.bucket, default_bucket=DEFAULT_BUCKET, eks=self.eks)
            check_network(self.network, vpc_cidr=self.eks.vpc.cidr if self.eks.vpc.creates_vpc else None)
        return self

    def model(self, variant: Variant) -> ModelSettings:
        return self.models.stable if variant is Variant.STABLE else self.models.canary

    def replicas(self, variant: Variant) -> int:
        """Replicas of ``variant``: from the replica split, gateway mode's own count, or the HPA's minimum."""
        if self.autoscaling.enabled:
            return self.autoscaling.min_replicas
        if self.split.gateway_mode:
            return self.split.stable_replicas if variant is Variant.STABLE else self.split.canary_replicas
        plan = self.split.plan()
        return plan.stable_replicas if variant is Variant.STABLE else plan.canary_replicas

    def max_replicas(self, variant: Variant) -> int:
        """The most replicas ``variant`` runs: the HPA's maximum, else its fixed count."""
        return self.autoscaling.max_replicas if self.autoscaling.enabled else self.replicas(variant)

    @property
    def max_total_replicas(self) -> int:
        """The most serving replicas the stack can run (what GPU pools must hold)."""
        return sum(self.max_replicas(v) for v in Variant)

    @property
    def replicas_key(self) -> str:
        """The config key that sets the replica counts, for messages."""
        if self.autoscaling.enabled:
            return "autoscaling.maxReplicas (per variant, both variants)"
        return "split.stableReplicas + split.canaryReplicas" if self.split.gateway_mode else "split.replicas"

    @property
    def generic_case_variants(self) -> dict[Variant, str]:
        """The variants (with their model) the gates would check with the built-in generic case alone, because no
        case file of ``smoke.cases`` names their model; none when no gate runs the cases."""
        if not (self.smoke.enabled or self.analysis.enabled):
            return {}
        return case_coverage(self.smoke.cases, {variant: self.model(variant).id for variant in Variant})

    @property
    def weights_keep(self) -> WeightsKeep:
        """How the weights claim and its namespace are kept: one decision from storage.protect,
        storage.allowReplace, storage.kind and adopt.namespace (the program and the deploy driver both ask)."""
        storage = self.storage
        return weights_keep(protect=storage.protect, allow_replace=storage.allow_replace,
                            minio=storage.kind == "minio", adopted=self.adopt.namespace)

    @property
    def enabled_modelmesh(self) -> ModelMeshSettings | None:
        """The ModelMesh settings when the track is on, else None."""
        return self.modelmesh if self.modelmesh.enabled else None


def preview_warnings(settings: Settings) -> list[str]:
    """What the stack's explicit opt-outs let through, one message each: :func:`load_settings` shows them as
    warnings in every preview."""
    warnings: list[str] = []
    if settings.smoke.allow_generic_cases:
        warnings += [f"{PROJECT}:smoke.allowGenericCases is true and no case file in smoke.cases names the "
                     f"{variant.value}'s model {model}: the gates check it only with the built-in generic case "
                     f"(any non-empty text passes) and the analysis scores no golden case for it"
                     for variant, model in settings.generic_case_variants.items()]
    if settings.analysis.unsafe_thresholds:
        warnings += [f"{PROJECT}:analysis.unsafeThresholds is true and {PROJECT}:analysis.{CONFIG_KEYS[limit.name]} "
                     f"is {'none' if value is None else f'{value:g}'}, past the gate's limit of {limit.limit:g}: "
                     f"{limit.why} could be promoted"
                     for limit, value in past_gate_limits(settings.analysis.thresholds)]
    return warnings


TOP_LEVEL_KEYS = (*[f.alias or n for n, f in Settings.model_fields.items() if n != "stack"], "aws")
"""Every key the program reads (``aws`` only to say it is not used), in the README's order."""


RENAMED_KEYS: Mapping[str, str] = {
    **{f"tgi.{key}": f"serving.{key}" for key in SERVING_KEYS},
    "gpu.tgiPool": "gpu.servingPool",
}
"""Keys renamed when vLLM joined TGI, old -> new (``section.key``): an old name is still read, with a warning
(:func:`load_settings`); one key under both names is an error."""


def renamed_keys_in(raw: Mapping[str, Any]) -> list[tuple[str, str]]:
    """(old, new) of every renamed key ``raw`` still sets under its old name."""
    found = []
    for old, new in RENAMED_KEYS.items():
        section, key = old.split(".")
        if isinstance(raw.get(section), Mapping) and key in raw[section]:
            found.append((old, new))
    return found


def _schema_default(dotted: str) -> Any:
    """A key's default as the engine fills it in from Pulumi.yaml (an unset optional text is ``""`` there)."""
    section, key = dotted.split(".")
    model = Settings.model_fields[section].annotation
    if not (isinstance(model, type) and issubclass(model, Section)):
        raise TypeError(f"{section} is not a section of the settings")  # RENAMED_KEYS names section keys only
    default = model().model_dump(mode="json", by_alias=True).get(key)
    return "" if default is None else default


def with_renamed_keys(raw: Mapping[str, Any], renamed: Sequence[tuple[str, str]]) -> dict[str, Any]:
    """``raw`` with every old key name in ``renamed`` (:func:`renamed_keys_in`) read as its new one."""
    out = {name: dict(value) if isinstance(value, Mapping) else value for name, value in raw.items()}
    for old, new in renamed:
        old_section, old_key = old.split(".")
        new_section, new_key = new.split(".")
        target = out.get(new_section) or {}
        if not isinstance(target, dict):
            continue  # the section's own check names the key
        value = out[old_section].pop(old_key)
        # Under the engine an unset section arrives as Pulumi.yaml's default object: a default is not "set".
        if target.get(new_key) not in (None, _schema_default(new)):
            raise ConfigError(old, f"is {new}'s old name and {new} is set too: remove {old}, got {show(value)}")
        out[new_section] = {**target, new_key: value}
    return out


def _as_written(err: ConfigError, renamed: Sequence[tuple[str, str]]) -> ConfigError:
    """``err`` naming the key as the stack file spells it, when that is an old name."""
    for old, new in renamed:
        if err.key == new or err.key.startswith((f"{new}.", f"{new}[")):
            return ConfigError(old + err.key[len(new):], err.message)
    return err


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
    renamed = renamed_keys_in(raw)
    try:
        settings: Settings = validate(Settings, with_renamed_keys(raw, renamed), context={"stack": stack})
    except ConfigError as err:
        raise _as_written(err, renamed) from None
    return settings


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
    for old, new in renamed_keys_in(raw):
        pulumi.log.warn(f"{PROJECT}:{old} is now {PROJECT}:{new} (renamed when vLLM joined TGI); it is read from "
                        f"{old} for now: move it in Pulumi.{pulumi.get_stack()}.yaml")
    settings = parse_settings(raw, stack=pulumi.get_stack())
    for warning in preview_warnings(settings):
        pulumi.log.warn(warning)
    return settings


def _stack_config_keys() -> list[str]:
    import pulumi.runtime.config as runtime_config

    return sorted({*runtime_config.CONFIG.get().keys(), *runtime_config.get_config_env().keys()})
