"""Wires the ModelMesh track onto the Kubernetes layer: staging of the predictive models, then a
ServingRuntime with the primary (``<app>-0``) and candidate (``<app>-1``) InferenceServices.

Discovered by :func:`stacks.llm_ab.extensions`; with ``modelmesh.enabled`` false it creates nothing.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from components.modelmesh import ModelMeshServing, ModelMeshServingArgs, Predictor, infer_url, rest_base_url
from components.staging import ModelStaging, ModelStagingArgs, StagedModel
from stacks.kubernetes_layer import KubernetesLayer
from stacks.modelmesh_settings import MeshModel, ModelMeshSettings, enabled_modelmesh
from stacks.settings import Settings

OUT_MODELMESH = "modelmesh"


def minio_selector(stack: str) -> dict[str, str]:
    """The MinIO pods' labels (as :class:`components.minio.MinioStore` sets them)."""
    return {"app.kubernetes.io/name": "minio", "app.kubernetes.io/instance": stack}


def staged_models(mm: ModelMeshSettings) -> list[StagedModel]:
    """One staging Job per distinct prefix: a candidate identical to the primary is staged once."""
    out: list[StagedModel] = []
    seen: set[str] = set()
    for role, model in mm.models().items():
        if model.object_prefix in seen:
            continue
        seen.add(model.object_prefix)
        out.append(StagedModel(
            role=role, repo_id=model.repo, revision=model.revision, prefix=model.object_prefix,
            # Not TGI weights: copy only the model file (or the revision) and check for this format.
            extra_args=("--allow-patterns", ",".join(model.allow_patterns), "--weights", ",".join(model.weights)),
        ))
    return out


def predictor(mm: ModelMeshSettings, index: int, model: MeshModel) -> Predictor:
    name = mm.primary_name if index == 0 else mm.candidate_name
    return Predictor(name=name, version=model.version, model_format=model.format, storage_path=model.storage_path)


def model_summary(name: str, model: MeshModel) -> dict[str, str]:
    return {"name": name, "repo": model.repo, "revision": model.revision, "version": model.version,
            "format": model.format, "storagePath": model.storage_path}


def modelmesh_outputs(settings: Settings, mm: ModelMeshSettings) -> dict[str, Any]:
    """The ``modelmesh`` stack output (also read by `make smoke`)."""
    assert mm.primary is not None
    ns = settings.namespace
    return {
        "app": mm.app,
        "runtime": mm.runtime.name,
        "serverType": mm.runtime.server_type,
        "primary": model_summary(mm.primary_name, mm.primary),
        "candidate": model_summary(mm.candidate_name, mm.candidate) if mm.candidate else None,
        "v2Url": rest_base_url(ns),
        "v2Model": mm.primary_name,
        "inferUrl": infer_url(ns, mm.primary_name),
        "v2Cases": list(mm.smoke_cases),
    }


def modelmesh_extension(settings: Settings, layer: KubernetesLayer, opts: pulumi.ResourceOptions) -> Mapping[str, Any]:
    mm = enabled_modelmesh(settings)
    if mm is None:
        return {}
    if layer.store is None or mm.primary is None:  # the parser rejects both; kept for direct callers
        raise ValueError("the ModelMesh track needs the stack's MinIO and a primary model")

    staging: ModelStaging | None = None
    if settings.staging.enabled:
        staging = ModelStaging(
            "modelmesh-staging",
            ModelStagingArgs(
                namespace=layer.namespace.name, stack=settings.stack, image=settings.staging.image,
                endpoint=layer.s3_endpoint, bucket=settings.storage.bucket,
                credentials_secret=layer.store.writer_secret_name, timeout_seconds=settings.staging.timeout_seconds,
                models=staged_models(mm),
            ),
            opts=pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(depends_on=[layer.store.bucket_job])),
        )

    runtime = mm.runtime
    serving = ModelMeshServing(
        "modelmesh",
        ModelMeshServingArgs(
            namespace=layer.namespace.name, stack=settings.stack, app=mm.app,
            runtime_name=runtime.name, server_type=runtime.server_type, image=runtime.image,
            model_formats=runtime.supported_model_formats, resources=runtime.resources.to_k8s(),
            replicas=runtime.replicas, grpc_port=runtime.grpc_port, data_port=runtime.data_port,
            management_port=runtime.management_port,
            primary=predictor(mm, 0, mm.primary),
            candidate=predictor(mm, 1, mm.candidate) if mm.candidate else None,
            s3_endpoint=layer.s3_endpoint, bucket=layer.bucket,
            access_key_id=layer.store.reader_access_key, secret_access_key=layer.store.reader_secret_key,
            s3_server_selector=minio_selector(settings.stack),
            allowed_namespaces=settings.traffic.allowed_namespaces,
            routemap=mm.routemap,
            models_ready=[staging] if staging else [],
        ),
        opts=opts,
    )
    layer.extra_resources.append(serving)
    return {OUT_MODELMESH: modelmesh_outputs(settings, mm)}
