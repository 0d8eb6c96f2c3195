"""Per-platform composition: ``build(settings)`` stands up the stack and returns its outputs.

No resources are created on import; ``__main__.py`` is the only caller that exports.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from stacks.kubernetes_layer import KubernetesLayer, LayerExtension, PlatformContext, build_kubernetes_layer
from stacks.modelmesh_layer import modelmesh_extension
from stacks.settings import Platform, Settings, Variant
from stacks.smoke_layer import smoke_extension

# Stack output names (shared with tests, the smoke CLI wrapper and the README).
OUT_NAMESPACE = "namespace"
OUT_TRAFFIC_URL = "trafficUrl"
OUT_STABLE_URL = "stableUrl"
OUT_CANARY_URL = "canaryUrl"
OUT_SPLIT = "split"
OUT_REPLICAS = "replicas"
OUT_GPUS = "gpus"
OUT_MODELS = "models"
OUT_DATASET = "dataset"
OUT_BUCKET = "bucket"
OUT_S3_ENDPOINT = "s3Endpoint"
OUT_MINIO_ROOT_USER = "minioRootUser"
OUT_MINIO_ROOT_PASSWORD = "minioRootPassword"
OUT_CREDENTIAL_GENERATOR = "credentialGenerator"
"""What generated the deployed credentials; the deploy driver compares it with the config (deploy/credentials.py)."""


def gpus_per_variant(settings: Settings) -> dict[str, int]:
    """GPUs each variant holds at the planned replica counts."""
    return {v.value: settings.replicas(v) * settings.tgi.gpus_per_replica for v in Variant}


def layer_outputs(settings: Settings, layer: KubernetesLayer) -> dict[str, Any]:
    """Stack outputs of the Kubernetes layer; credentials only as secrets."""
    outputs: dict[str, Any] = {
        OUT_NAMESPACE: layer.namespace.name,
        OUT_TRAFFIC_URL: layer.traffic.url,
        OUT_STABLE_URL: layer.tgi[Variant.STABLE].url,
        OUT_CANARY_URL: layer.tgi[Variant.CANARY].url,
        OUT_SPLIT: layer.traffic.split,
        OUT_REPLICAS: {v.value: settings.replicas(v) for v in Variant},
        OUT_GPUS: gpus_per_variant(settings),
        OUT_MODELS: {v.value: {"id": settings.model(v).id, "revision": settings.model(v).revision}
                     for v in Variant},
        OUT_DATASET: layer.dataset.dataset_name,
        OUT_BUCKET: layer.bucket,
        OUT_S3_ENDPOINT: layer.s3_endpoint,
    }
    if layer.store is not None:
        outputs[OUT_MINIO_ROOT_USER] = pulumi.Output.secret(layer.store.root_user)
        outputs[OUT_MINIO_ROOT_PASSWORD] = pulumi.Output.secret(layer.store.root_password)
        outputs[OUT_CREDENTIAL_GENERATOR] = settings.credentials.generator.value
    outputs.update(layer.outputs)
    return outputs


def extensions() -> list[LayerExtension]:
    """Optional features wired onto the Kubernetes layer, in order (the smoke gate waits for ModelMesh);
    each decides from the settings whether it creates anything."""
    return [modelmesh_extension, smoke_extension]


def build(settings: Settings) -> Mapping[str, Any]:
    """Create every resource of the stack for its platform; returns the stack outputs."""
    if settings.platform is Platform.EKS:
        from stacks.eks import build_eks  # pulumi_aws is only needed on eks

        return build_eks(settings, extensions())
    layer = build_kubernetes_layer(settings, PlatformContext(), extensions())
    return layer_outputs(settings, layer)
