"""Jobs that stage pinned model revisions from the Hugging Face Hub into the weights bucket.

The tool is ours (the ``staging`` package: huggingface_hub to download, boto3 to upload,
idempotent and verified). It is shipped flat to a pinned python image by ConfigMap and run as
``python -m staging``, so no custom image has to be built or trusted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.joblock import LOCK_NAME
from components.naming import HTTPS_EGRESS_LABEL, S3_CLIENT_LABEL, WEIGHTS_VOLUME_ANNOTATION, common_labels
from components.podspec import (
    container_security,
    pip_then_python,
    placed,
    pod_security,
    tmp_volume,
    with_ephemeral_storage,
)
from staging.common import FATAL_EXIT_CODES

TOOL_DIR = Path(__file__).resolve().parent.parent / "staging"
MOUNT = "/opt/staging/staging"
STAGING_SCRATCH = "50Gi"
"""``/tmp`` of a staging Job: a model snapshot is downloaded there before upload (requested as node disk)."""
"""Where the package's files appear in the Job (``python -m staging`` finds it on /opt/staging)."""


def read_tool_files(directory: Path = TOOL_DIR) -> dict[str, str]:
    """ConfigMap data: the staging package, flat (one key per file), and its hash-locked requirements."""
    files = {p.name: p.read_text() for p in sorted(directory.glob("*.py"))}
    files[LOCK_NAME] = (directory / LOCK_NAME).read_text()
    return files


def staging_command() -> list[str]:
    return pip_then_python(f"{MOUNT}/{LOCK_NAME}", "-m staging", name="stage-model", pythonpath="/opt/staging")


IRSA_GRACE_SECONDS = 120
"""How long the tool retries AccessDenied when the Jobs write through a just-created IAM role (IRSA):
IAM is eventually consistent, and AccessDenied is otherwise a permanent error that fails the Job."""


def staging_args(*, repo_id: str, revision: str, bucket: str, prefix: str, irsa: bool = False) -> list[str]:
    return ["--repo-id", repo_id, "--revision", revision, "--bucket", bucket, "--prefix", prefix,
            "--endpoint-url", "$(S3_ENDPOINT)", "--json",
            *(["--auth-grace-seconds", str(IRSA_GRACE_SECONDS)] if irsa else [])]


@dataclass(frozen=True, kw_only=True)
class StagedModel:
    """One model to stage: a role name (``stable``, ``canary``, ...) and its pinned revision."""

    role: str
    repo_id: str
    revision: str
    prefix: str
    """Object prefix in the bucket (``<path>/<revision>``)."""
    extra_args: tuple[str, ...] = ()
    """More flags of the tool for this model, e.g. ``--allow-patterns`` for a non-TGI model."""


def one_job_per_prefix(models: Sequence[StagedModel]) -> list[tuple[StagedModel, tuple[str, ...]]]:
    """Each distinct prefix once, with every role it serves: when both variants name the same revision
    (after ``make promote``), one Job stages it instead of two racing on one prefix. Two models that
    share a prefix but not what is staged there can't both be right: ValueError."""
    out: dict[str, tuple[StagedModel, list[str]]] = {}
    for model in models:
        first = out.get(model.prefix)
        if first is None:
            out[model.prefix] = (model, [model.role])
            continue
        kept = first[0]
        if (kept.repo_id, kept.revision, kept.extra_args) != (model.repo_id, model.revision, model.extra_args):
            raise ValueError(
                f"models {kept.role} ({kept.repo_id}@{kept.revision}) and {model.role} ({model.repo_id}@"
                f"{model.revision}) share the bucket prefix {model.prefix!r}: give one of them its own path")
        first[1].append(model.role)
    return [(model, tuple(roles)) for model, roles in out.values()]


@dataclass(frozen=True, kw_only=True)
class ModelStagingArgs:
    """Inputs for ModelStaging."""

    namespace: pulumi.Input[str]
    stack: str
    image: str
    """Pinned python image the tool runs on."""
    endpoint: pulumi.Input[str]
    bucket: str
    credentials_secret: pulumi.Input[str]
    """Secret with AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY of a user that may write the bucket.
    Empty on platforms that grant access through the service account (IRSA)."""
    models: Sequence[StagedModel]
    timeout_seconds: int = 3600
    service_account: pulumi.Input[str] | None = None
    """Service account of the Jobs (for IRSA / Pod Identity on EKS)."""
    service_account_annotations: Mapping[str, pulumi.Input[str]] | None = None
    """When set, the component creates ``service_account`` with these annotations (IRSA's
    ``eks.amazonaws.com/role-arn``); otherwise the account must exist."""
    region: str | None = None
    """AWS region of the bucket (``AWS_REGION`` of the Jobs: SigV4 signs for it); None for MinIO."""
    volume_id: pulumi.Input[str] | None = None
    """Identity of the volume under the bucket (the MinIO claim's uid): part of each Job's pod template,
    so a new volume means new Jobs and the models are staged into it again. None for S3."""
    placement: Mapping[str, Any] = field(default_factory=dict)
    """Pod placement (``nodeSelector``, ``tolerations``) of the Jobs' pods, e.g. the local cluster's simulated
    nodes; empty: wherever the scheduler puts them."""


class ModelStaging(pulumi.ComponentResource):
    """One Job per bucket prefix (a model revision), each idempotent: re-running a staged revision is a
    no-op; a new weights volume (``volume_id``) replaces them, so they stage into it."""

    job_names: pulumi.Output[list[str]]

    def __init__(self, name: str, args: ModelStagingArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:storage:ModelStaging", name, None, opts)
        labels = common_labels("model-staging", args.stack)
        tool = k8s.core.v1.ConfigMap(
            f"{name}-tool",
            metadata={"namespace": args.namespace, "labels": labels},
            data=read_tool_files(),
            opts=pulumi.ResourceOptions(parent=self),
        )
        service_account = args.service_account
        if args.service_account is not None and args.service_account_annotations:
            account = k8s.core.v1.ServiceAccount(
                f"{name}-sa",
                metadata={"name": args.service_account, "namespace": args.namespace, "labels": labels,
                          "annotations": dict(args.service_account_annotations)},
                opts=pulumi.ResourceOptions(parent=self),
            )
            service_account = account.metadata.name  # the Jobs wait for the account
        self.jobs: dict[str, k8s.batch.v1.Job] = {}
        for model, roles in one_job_per_prefix(args.models):
            env: list[dict[str, Any]] = [
                {"name": "S3_ENDPOINT", "value": args.endpoint},
                *([{"name": "AWS_REGION", "value": args.region}] if args.region else []),
                {"name": "HOME", "value": "/tmp"},
                {"name": "HF_HOME", "value": "/tmp/hf"},
                {"name": "HF_HUB_DISABLE_TELEMETRY", "value": "1"},
                {"name": "PIP_CACHE_DIR", "value": "/tmp/pip"},
            ]
            env_from = [{"secretRef": {"name": args.credentials_secret}}] if args.credentials_secret else []
            # Model snapshots are downloaded to /tmp before upload: size the scratch space for them.
            volumes = [{"name": "tool", "configMap": {"name": tool.metadata.name}}, tmp_volume(size=STAGING_SCRATCH)]
            pod_spec: dict[str, object] = {
                "restartPolicy": "Never",
                "securityContext": pod_security(),
                "enableServiceLinks": False,
                "automountServiceAccountToken": args.service_account is not None,
                "containers": [{
                    "name": "stage",
                    "image": args.image,
                    "command": staging_command(),
                    "args": [*staging_args(repo_id=model.repo_id, revision=model.revision,
                                           bucket=args.bucket, prefix=model.prefix,
                                           irsa=bool(args.service_account_annotations)), *model.extra_args],
                    "env": env,
                    "envFrom": env_from,
                    # Requests the scratch disk too: a node without 50Gi free would evict the Job mid-download.
                    "resources": with_ephemeral_storage({"requests": {"cpu": "250m", "memory": "512Mi"},
                                                         "limits": {"cpu": "2", "memory": "2Gi"}}, volumes),
                    "securityContext": container_security(),
                    "volumeMounts": [{"name": "tool", "mountPath": MOUNT, "readOnly": True},
                                     {"name": "tmp", "mountPath": "/tmp"}],
                }],
                "volumes": volumes,
            }
            if service_account is not None:
                pod_spec["serviceAccountName"] = service_account
            pod_spec = placed(pod_spec, args.placement)
            # S3 (MinIO) and HTTPS to the internet (the Hub, PyPI); nothing else.
            template_meta: dict[str, Any] = {
                "labels": {**labels, S3_CLIENT_LABEL: "true", HTTPS_EGRESS_LABEL: "true",
                           "llm-ab/model-role": model.role}}
            if len(roles) > 1:
                template_meta["annotations"] = {"llm-ab/model-roles": ",".join(roles)}
            if args.volume_id is not None:
                template_meta["annotations"] = {**template_meta.get("annotations", {}),
                                                WEIGHTS_VOLUME_ANNOTATION: args.volume_id}
            self.jobs[model.role] = k8s.batch.v1.Job(
                f"{name}-{model.role}",
                metadata={"namespace": args.namespace,
                          "labels": {**labels, "llm-ab/model-role": model.role}},
                spec={
                    "backoffLimit": 3,
                    # The tool's permanent errors (usage, a wrong source, failed verification, S3
                    # refusing us) won't heal on a retry: fail the Job at once. Its other failures
                    # (S3 or the Hub unreachable, the prefix busy) are retried.
                    "podFailurePolicy": {"rules": [{
                        "action": "FailJob",
                        "onExitCodes": {"containerName": "stage", "operator": "In",
                                        "values": sorted(FATAL_EXIT_CODES)},
                    }]},
                    "activeDeadlineSeconds": args.timeout_seconds,
                    "template": {
                        "metadata": template_meta,
                        "spec": pod_spec,
                    },
                },
                # A first download of a large model outlasts Pulumi's 10-minute default.
                opts=pulumi.ResourceOptions(
                    parent=self,
                    custom_timeouts=pulumi.CustomTimeouts(create=f"{args.timeout_seconds + 300}s",
                                                          update=f"{args.timeout_seconds + 300}s"),
                ),
            )
        self.job_names = pulumi.Output.all(*[job.metadata.name for job in self.jobs.values()])
        self.register_outputs({"job_names": self.job_names})
