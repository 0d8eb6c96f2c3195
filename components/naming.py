"""Names, labels and in-cluster URLs shared by components (pure; creates no resources)."""

from __future__ import annotations

from policy.contract import (
    COMPONENT_LABEL,
    DECLARED_PERCENT_ANNOTATION,
    RUN_LABEL,
    SPLIT_TOLERANCE_ANNOTATION,
    TGI_APP,
    VARIANT_LABEL,
)

__all__ = ["ADOPTED_ANNOTATION", "DATASET_MOUNT_ROOT", "DATASHIM_POD_LABELS", "DECLARED_PERCENT_ANNOTATION",
           "GATE_CLIENT_LABELS", "HTTPS_EGRESS_LABEL", "INFERENCE_CLIENT_LABEL", "MINIO_SERVICE", "PART_OF",
           "S3_CLIENT_LABEL", "S3_PORT", "SPLIT_TOLERANCE_ANNOTATION",
           "WEIGHTS_VOLUME_ANNOTATION", "TGI_APP", "TGI_PORT", "common_labels", "dataset_labels",
           "minio_selector", "model_mount_path", "service_url", "split_annotations", "tgi_deployment_name",
           "tgi_selector", "tgi_traffic_selector"]

PART_OF = "llm-ab"

TGI_PORT = 8080
"""TGI serving port; the image default (80) would need root."""
S3_PORT = 9000
MINIO_SERVICE = "minio"

S3_CLIENT_LABEL = "llm-ab/s3-client"
"""Pods carrying this label (value "true") may reach MinIO through its NetworkPolicies."""
INFERENCE_CLIENT_LABEL = "llm-ab/inference-client"
"""Pods of the experiment's namespace carrying this label (value "true") may call the serving pods of both
variants (and ModelMesh); other namespaces' pods need ``traffic.allowedNamespaces``."""
HTTPS_EGRESS_LABEL = "llm-ab/https-egress"
"""Pods carrying this label (value "true") may open HTTPS connections outside the cluster: the staging Jobs
(the Hugging Face Hub) and every Job that installs its pinned packages from PyPI at run time."""
GATE_CLIENT_LABELS = {INFERENCE_CLIENT_LABEL: "true", HTTPS_EGRESS_LABEL: "true"}
"""Pod labels of every post-deploy gate Job (the smoke Job, the analysis Job): they call both variants
and ModelMesh, and install their packages from PyPI."""
WEIGHTS_VOLUME_ANNOTATION = "llm-ab/weights-volume"
"""Pod-template annotation of the bucket and staging Jobs: the uid of the weights claim they set up,
so a new volume replaces them (components/minio.py, components/staging.py)."""

ADOPTED_ANNOTATION = "llm-ab/adopted"
"""Namespace annotation: it existed before the stack, which took it over on purpose (``adopt.namespace``)."""
DATASHIM_POD_LABELS = {"app.kubernetes.io/name": "datashim"}
"""The label every pod of Datashim's release manifest and chart carries (operator, csi-s3 node plugin,
provisioner, attacher): what MinIO admits from Datashim's namespace, not that namespace's every pod."""
DATASET_MOUNT_ROOT = "/mnt/datasets"
"""Where Datashim's webhook mounts a Dataset (``/mnt/datasets/<dataset>``)."""



def common_labels(component: str, stack: str) -> dict[str, str]:
    """The standard ``app.kubernetes.io`` labels of everything a stack deploys."""
    return {
        "app.kubernetes.io/part-of": PART_OF,
        COMPONENT_LABEL: component,
        "app.kubernetes.io/instance": stack,
        "app.kubernetes.io/managed-by": "pulumi",
    }


def tgi_selector(variant: str) -> dict[str, str]:
    """Pod labels that select one TGI variant (the tutorial's ``run`` and ``type``)."""
    return {RUN_LABEL: TGI_APP, VARIANT_LABEL: variant}


def tgi_traffic_selector() -> dict[str, str]:
    """The traffic Service selects both variants, so the split follows the replica counts."""
    return {RUN_LABEL: TGI_APP}


def minio_selector(stack: str) -> dict[str, str]:
    """The labels that select a stack's MinIO pods (its Deployment, Service and NetworkPolicies)."""
    return {"app.kubernetes.io/name": "minio", "app.kubernetes.io/instance": stack}


def dataset_labels(dataset: str) -> dict[str, str]:
    """Pod labels that make Datashim's webhook mount ``dataset`` at /mnt/datasets/<dataset>."""
    return {"dataset.0.id": dataset, "dataset.0.useas": "mount"}


def split_annotations(declared_percent: float, tolerance: float | None) -> dict[str, str]:
    """The declared split, for both TGI Deployments' ``metadata.annotations`` (not the pod template, so
    a new split changes only the replica counts and rolls no pods); the policy pack checks it against
    the replica counts. A None tolerance is left out."""
    annotations = {DECLARED_PERCENT_ANNOTATION: f"{declared_percent:g}"}
    if tolerance is not None:
        annotations[SPLIT_TOLERANCE_ANNOTATION] = f"{tolerance:g}"
    return annotations


def tgi_deployment_name(variant: str) -> str:
    return f"{TGI_APP}-{variant}"


def model_mount_path(dataset: str, object_prefix: str) -> str:
    """Where a staged model appears inside TGI pods."""
    return f"{DATASET_MOUNT_ROOT}/{dataset}/{object_prefix}"


def service_url(service: str, namespace: str, port: int) -> str:
    return f"http://{service}.{namespace}.svc.cluster.local:{port}"
