"""The ModelMesh track, when ``modelmesh.enabled``: staging of the predictive models, then a
ServingRuntime with the primary (``<app>-0``) and candidate (``<app>-1``) InferenceServices, in the
experiment's namespace and over its MinIO (the settings require ``storage.kind: minio``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from components.modelmesh import (
    NAMESPACE_OPT_IN_LABELS,
    ModelMeshServing,
    ModelMeshServingArgs,
    Predictor,
    infer_url,
    rest_base_url,
)
from components.namespace import ExperimentNamespace
from components.staging import ModelStaging, ModelStagingArgs, StagedModel
from stacks import outputs as OUT
from stacks.local_settings import Part
from stacks.modelmesh_settings import MeshModel, ModelMeshSettings
from stacks.platform import Platform, WeightsStore
from stacks.settings import Settings


@dataclass(frozen=True, kw_only=True)
class ModelMeshTrack:
    """What the track deployed, for the gates and the outputs."""

    serving: ModelMeshServing
    outputs: dict[str, Any]


def namespace_labels(settings: Settings) -> dict[str, str]:
    """What the namespace needs for ModelMesh: the cluster-scope controller's opt-in, when enabled."""
    return dict(NAMESPACE_OPT_IN_LABELS) if settings.enabled_modelmesh else {}


def staged_models(mm: ModelMeshSettings) -> list[StagedModel]:
    """One staging Job per distinct prefix: a candidate identical to the primary is staged once."""
    out: list[StagedModel] = []
    seen: set[str] = set()
    for role, model in mm.models_by_role().items():
        if model.object_prefix in seen:
            continue
        seen.add(model.object_prefix)
        out.append(StagedModel(
            role=role, repo_id=model.repo, revision=model.revision, prefix=model.object_prefix,
            # Not TGI weights: copy only the model file (or the revision) and check for this format.
            extra_args=("--allow-patterns", ",".join(model.allow_patterns), "--weights", ",".join(model.weights)),
        ))
    return out


def predictor(name: str, model: MeshModel) -> Predictor:
    return Predictor(name=name, version=model.version, model_format=model.format, storage_path=model.storage_path)


def model_summary(name: str, model: MeshModel) -> dict[str, str]:
    return {"name": name, "repo": model.repo, "revision": model.revision, "version": model.version,
            "format": model.format, "storagePath": model.storage_path}


def modelmesh_outputs(settings: Settings, mm: ModelMeshSettings, primary: MeshModel) -> dict[str, Any]:
    """The ``modelmesh`` stack output (also read by `make smoke`)."""
    ns = settings.namespace
    return {
        "app": mm.app,
        "runtime": mm.runtime.name,
        "serverType": mm.runtime.server_type,
        "primary": model_summary(mm.primary_name, primary),
        "candidate": model_summary(mm.candidate_name, mm.candidate) if mm.candidate else None,
        "v2Url": rest_base_url(ns),
        "v2Model": mm.primary_name,
        "inferUrl": infer_url(ns, mm.primary_name),
        "v2Cases": list(mm.smoke_cases),
    }


def build_modelmesh(settings: Settings, mm: ModelMeshSettings, platform: Platform, namespace: ExperimentNamespace,
                    weights: WeightsStore) -> ModelMeshTrack:
    """Stage the models and serve them; ``mm`` is the enabled track (so it has a primary)."""
    primary = mm.primary
    assert primary is not None, "the settings schema requires a primary while modelmesh.enabled"
    staging: ModelStaging | None = None
    if settings.staging.enabled:
        staging = ModelStaging(
            "modelmesh-staging",
            ModelStagingArgs(
                namespace=namespace.name, stack=settings.stack, image=settings.staging.image,
                endpoint=weights.endpoint, bucket=settings.storage.bucket, credentials_secret=weights.writer_secret,
                timeout_seconds=settings.staging.timeout_seconds, models=staged_models(mm),
                volume_id=weights.volume_id, placement=platform.placement(Part.STAGING),
            ),
            opts=platform.opts(depends_on=weights.ready),
        )

    runtime = mm.runtime
    serving = ModelMeshServing(
        "modelmesh",
        ModelMeshServingArgs(
            namespace=namespace.name, stack=settings.stack, app=mm.app,
            runtime_name=runtime.name, server_type=runtime.server_type, image=runtime.image,
            model_formats=runtime.supported_model_formats, resources=runtime.resources.to_k8s(),
            replicas=runtime.replicas, grpc_port=runtime.grpc_port, data_port=runtime.data_port,
            management_port=runtime.management_port,
            primary=predictor(mm.primary_name, primary),
            candidate=predictor(mm.candidate_name, mm.candidate) if mm.candidate else None,
            s3_endpoint=weights.endpoint, bucket=weights.bucket,
            access_key_id=weights.reader_access_key, secret_access_key=weights.reader_secret_key,
            s3_server_selector=weights.server_selector,
            allowed_namespaces=settings.traffic.allowed_namespaces,
            etcd_namespace=mm.etcd.namespace, etcd_port=mm.etcd.port,
            routemap=mm.routemap,
            models_ready=[staging] if staging else [],
            placement=platform.placement(Part.SERVING),
        ),
        opts=platform.opts(),
    )
    return ModelMeshTrack(serving=serving, outputs={OUT.MODELMESH: modelmesh_outputs(settings, mm, primary)})
