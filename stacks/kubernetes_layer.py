"""The Kubernetes layer every platform deploys: namespace, weights store, Dataset, TGI pair, split.

Platforms differ only in what they hand in through :class:`PlatformContext` (the Kubernetes
provider, GPU node placement, S3 access); the wiring and the order are the same everywhere:
namespace -> MinIO + bucket -> staging Jobs and Dataset -> TGI stable/canary -> traffic Service.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi

from components.datashim import NAMESPACE_OPT_IN_LABELS, DatashimDataset, DatashimDatasetArgs
from components.minio import MinioStore, MinioStoreArgs
from components.modelmesh import NAMESPACE_OPT_IN_LABELS as MODELMESH_OPT_IN_LABELS
from components.namespace import ExperimentNamespace, ExperimentNamespaceArgs
from components.naming import model_mount_path, split_annotations
from components.staging import ModelStaging, ModelStagingArgs, StagedModel
from components.tgi import TgiServer, TgiServerArgs
from components.traffic import TrafficSplit, TrafficSplitArgs
from stacks.modelmesh_settings import enabled_modelmesh
from stacks.settings import Settings, Variant


@dataclass(frozen=True, kw_only=True)
class S3Access:
    """An external S3 bucket (``storage.kind: s3``) and how pods get at it without static keys."""

    endpoint: pulumi.Input[str]
    bucket: pulumi.Input[str]
    staging_service_account: pulumi.Input[str] | None = None
    staging_service_account_annotations: Mapping[str, pulumi.Input[str]] = field(default_factory=dict)
    """When set, the layer creates ``staging_service_account`` with these annotations (IRSA's
    ``eks.amazonaws.com/role-arn``) in the experiment's namespace."""
    region: str | None = None
    """The bucket's AWS region, for the staging Jobs' S3 client."""
    dataset_access_key_id: pulumi.Input[str] | None = None
    dataset_secret_access_key: pulumi.Input[str] | None = None


@dataclass(frozen=True, kw_only=True)
class PlatformContext:
    """What a platform provides to the Kubernetes layer."""

    provider: pulumi.ProviderResource | None = None
    """Explicit Kubernetes provider; None uses the ambient kubeconfig (``local``)."""
    gpu_node_selector: Mapping[str, str] = field(default_factory=dict)
    """Where GPU replicas must land (e.g. the GPU pool's label on eks)."""
    s3: S3Access | None = None
    depends_on: Sequence[pulumi.Resource] = ()
    """Resources the whole layer waits for (e.g. node groups, the device plugin)."""


@dataclass
class KubernetesLayer:
    """Handles to the components, for later wiring (smoke tests, ModelMesh) and outputs."""

    namespace: ExperimentNamespace
    store: MinioStore | None
    dataset: DatashimDataset
    staging: ModelStaging | None
    tgi: dict[Variant, TgiServer]
    traffic: TrafficSplit
    s3_endpoint: pulumi.Output[str]
    bucket: pulumi.Output[str]
    outputs: dict[str, Any] = field(default_factory=dict)
    """Outputs extensions add (by top-level stack output name)."""
    extra_resources: list[pulumi.Resource] = field(default_factory=list)
    """Serving resources extensions add, which the smoke tests must wait for (e.g. ModelMesh)."""


# Hooks optional features use to add to the layer (ModelMesh, smoke tests); each gets the layer
# and returns outputs to export.
LayerExtension = Callable[[Settings, "KubernetesLayer", pulumi.ResourceOptions], Mapping[str, Any]]


def namespace_labels(settings: Settings) -> dict[str, str]:
    """Opt-in labels of the namespace: Datashim's webhook, and ModelMesh's controller when enabled."""
    labels = dict(NAMESPACE_OPT_IN_LABELS)
    if enabled_modelmesh(settings) is not None:
        labels.update(MODELMESH_OPT_IN_LABELS)
    return labels


def component_opts(ctx: PlatformContext, *, depends_on: Sequence[pulumi.Resource] = ()) -> pulumi.ResourceOptions:
    return pulumi.ResourceOptions(
        providers=[ctx.provider] if ctx.provider is not None else None,
        depends_on=[*ctx.depends_on, *depends_on],
    )


def build_kubernetes_layer(settings: Settings, ctx: PlatformContext,
                           extensions: Sequence[LayerExtension] = ()) -> KubernetesLayer:
    stack = settings.stack
    opts = component_opts(ctx)
    ns = ExperimentNamespace(
        "experiment",
        ExperimentNamespaceArgs(name=settings.namespace, stack=stack, labels=namespace_labels(settings),
                                retain=settings.storage.protect and settings.storage.kind == "minio"),
        opts=opts,
    )

    store: MinioStore | None = None
    if settings.storage.kind == "minio":
        store = MinioStore(
            "weights",
            MinioStoreArgs(
                namespace=ns.name, stack=stack, image=settings.storage.minio_image,
                bucket=settings.storage.bucket, size=settings.storage.size,
                storage_class=settings.storage.storage_class, protect=settings.storage.protect,
                credential_generator=settings.credentials.generator,
                # Datashim's csi-s3 node plugin does the mounting, from the operator's namespace.
                extra_ingress_from=[{"namespaceSelector": {"matchLabels": {
                    "kubernetes.io/metadata.name": settings.datashim.operator_namespace}}}],
            ),
            opts=opts,
        )
        endpoint, bucket = store.endpoint, store.bucket
        dataset_key, dataset_secret = store.reader_access_key, store.reader_secret_key
        staging_secret: pulumi.Input[str] = store.writer_secret_name
        staging_sa = None
        staging_sa_annotations: Mapping[str, pulumi.Input[str]] | None = None
        bucket_ready: list[pulumi.Resource] = [store.bucket_job]
    else:
        if ctx.s3 is None:
            raise ValueError("storage.kind s3 needs the platform to provide S3 access")
        endpoint = pulumi.Output.from_input(ctx.s3.endpoint)
        bucket = pulumi.Output.from_input(ctx.s3.bucket)
        dataset_key = ctx.s3.dataset_access_key_id or ""
        dataset_secret = ctx.s3.dataset_secret_access_key or ""
        staging_secret = ""
        staging_sa = ctx.s3.staging_service_account
        staging_sa_annotations = dict(ctx.s3.staging_service_account_annotations) or None
        bucket_ready = []

    staging: ModelStaging | None = None
    if settings.staging.enabled:
        staging = ModelStaging(
            "staging",
            ModelStagingArgs(
                namespace=ns.name, stack=stack, image=settings.staging.image, endpoint=endpoint,
                bucket=settings.storage.bucket, credentials_secret=staging_secret,
                service_account=staging_sa, service_account_annotations=staging_sa_annotations,
                region=ctx.s3.region if ctx.s3 is not None else None,
                timeout_seconds=settings.staging.timeout_seconds,
                models=[StagedModel(role=v.value, repo_id=settings.model(v).id,
                                    revision=settings.model(v).revision,
                                    prefix=settings.model(v).object_prefix) for v in Variant],
            ),
            opts=component_opts(ctx, depends_on=bucket_ready),
        )

    dataset = DatashimDataset(
        "dataset",
        DatashimDatasetArgs(
            namespace=ns.name, stack=stack, dataset_name=settings.datashim.dataset_name,
            endpoint=endpoint, bucket=bucket, access_key_id=dataset_key, secret_access_key=dataset_secret,
            await_provision=settings.datashim.await_provision, install=settings.datashim.install,
            version=settings.datashim.version, operator_namespace=settings.datashim.operator_namespace,
        ),
        opts=component_opts(ctx, depends_on=bucket_ready),
    )

    # TGI starts only once its weights are in the bucket and the Dataset exists: Datashim's webhook
    # rejects pods that name a missing Dataset, and TGI treats a missing path as a Hub repo id.
    ready_for_tgi: list[pulumi.Resource] = [dataset, *([staging] if staging else [])]
    tgi_resources = settings.tgi.resources.to_k8s()
    node_selector = {**settings.tgi.node_selector, **(ctx.gpu_node_selector if settings.tgi.gpus_per_replica else {})}
    # Both Deployments carry the declared split for the policy pack, so a new split.canaryPercent
    # changes only them (replicas and this annotation) and the traffic Service not at all.
    declared_split = split_annotations(settings.split.canary_percent, settings.split.tolerance)
    servers = {
        variant: TgiServer(
            f"tgi-{variant.value}",
            TgiServerArgs(
                namespace=ns.name, stack=stack, variant=variant.value, image=settings.tgi.image,
                dataset_name=settings.datashim.dataset_name,
                model_path=model_mount_path(settings.datashim.dataset_name, settings.model(variant).object_prefix),
                replicas=settings.replicas(variant), gpus=settings.tgi.gpus_per_replica,
                max_input_tokens=settings.tgi.max_input_tokens, max_total_tokens=settings.tgi.max_total_tokens,
                max_batch_prefill_tokens=settings.tgi.max_batch_prefill_tokens, resources=tgi_resources,
                startup_budget_seconds=settings.tgi.startup_budget_seconds, shm_size=settings.tgi.shm_size,
                node_selector=node_selector, run_as_non_root=settings.tgi.run_as_non_root,
                split_annotations=declared_split,
            ),
            opts=component_opts(ctx, depends_on=ready_for_tgi),
        )
        for variant in Variant
    }
    traffic = TrafficSplit(
        "traffic",
        TrafficSplitArgs(namespace=ns.name, stack=stack, plan=settings.plan,
                         allowed_namespaces=settings.traffic.allowed_namespaces),
        opts=opts,
    )
    layer = KubernetesLayer(namespace=ns, store=store, dataset=dataset, staging=staging, tgi=servers,
                            traffic=traffic, s3_endpoint=endpoint, bucket=bucket)
    for extension in extensions:
        layer.outputs.update(extension(settings, layer, opts))
    return layer
