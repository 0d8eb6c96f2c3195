"""The experiment every platform deploys: namespace, weights store (MinIO unless the platform brings
one), staging Jobs and Dataset, the TGI stable/canary pair and the traffic Service.

It knows the platform only through :class:`stacks.platform.Platform` and no optional feature at all:
what a feature needs of the namespace (its opt-in labels) is handed in.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi

from components.credentials import CredentialGenerator
from components.datashim import NAMESPACE_OPT_IN_LABELS, DatashimDataset, DatashimDatasetArgs
from components.engines import Engine
from components.engines.tgi import TgiEngine
from components.engines.vllm import VllmEngine
from components.minio import MinioStore, MinioStoreArgs
from components.namespace import ExperimentNamespace, ExperimentNamespaceArgs
from components.naming import minio_selector, model_mount_path, split_annotations
from components.netpol import pods_peer
from components.route import GatewayRef
from components.serving import ModelServer, ModelServerArgs
from components.split import split_cost
from components.staging import ModelStaging, ModelStagingArgs, StagedModel
from components.traffic import GatewaySplit, TrafficSplit, TrafficSplitArgs
from stacks import outputs as OUT
from stacks.local_settings import Part
from stacks.platform import Platform, WeightsStore
from stacks.settings import Settings, Variant


@dataclass(frozen=True, kw_only=True)
class Experiment:
    """Handles to the experiment's components, for the features and gates built on it."""

    namespace: ExperimentNamespace
    weights: WeightsStore
    dataset: DatashimDataset
    staging: ModelStaging | None
    servers: Mapping[Variant, ModelServer]
    """Both variants, each with its engine (``servers[v].engine``) and Deployment."""
    traffic: TrafficSplit

    @property
    def serving(self) -> list[pulumi.Resource]:
        """What serves requests: both variants and the traffic Service."""
        return [*self.servers.values(), self.traffic]


def experiment_namespace(settings: Settings, platform: Platform,
                         feature_labels: Mapping[str, str]) -> ExperimentNamespace:
    """The namespace, opted in to Datashim's webhook and to whatever ``feature_labels`` add."""
    return ExperimentNamespace(
        "experiment",
        ExperimentNamespaceArgs(name=settings.namespace, stack=settings.stack,
                                labels={**NAMESPACE_OPT_IN_LABELS, **feature_labels},
                                adopted=settings.adopt.namespace, keep=settings.weights_keep.namespace,
                                internal_cidrs=settings.network.internal_cidrs),
        opts=platform.opts(),
    )


def minio_weights(settings: Settings, platform: Platform, namespace: ExperimentNamespace) -> WeightsStore:
    """MinIO in the experiment's namespace as the weights store."""
    store = MinioStore(
        "weights",
        MinioStoreArgs(
            namespace=namespace.name, stack=settings.stack, image=settings.storage.minio_image,
            bucket=settings.storage.bucket, size=settings.storage.size,
            storage_class=settings.storage.storage_class, protect=settings.storage.protect,
            volume_generation=settings.storage.volume_generation, allow_replace=settings.storage.allow_replace,
            credential_generator=CredentialGenerator(settings.credentials.generator),
            # Datashim's csi-s3 node plugin does the mounting, from the operator's namespace: its pods, by their
            # labels, and no other pod of that namespace.
            extra_ingress_from=[pods_peer(settings.datashim.operator_pod_labels,
                                          settings.datashim.operator_namespace)],
        ),
        opts=platform.opts(),
    )
    return WeightsStore(
        endpoint=store.endpoint, bucket=store.bucket,
        reader_access_key=store.reader_access_key, reader_secret_key=store.reader_secret_key,
        writer_secret=store.writer_secret_name, ready=[store.bucket_job], volume_id=store.volume_id,
        server_selector=minio_selector(settings.stack),
        outputs={OUT.MINIO_ROOT_USER: pulumi.Output.secret(store.root_user),
                 OUT.MINIO_ROOT_PASSWORD: pulumi.Output.secret(store.root_password),
                 OUT.CREDENTIAL_GENERATOR: settings.credentials.generator},
    )


def serving_engine(settings: Settings, variant: Variant) -> Engine:
    """The engine that serves ``variant`` (``models.<variant>.engine``), with its settings."""
    if settings.model(variant).engine == "vllm":
        v = settings.vllm
        return VllmEngine(image=v.image, max_model_len=v.max_model_len, dtype=v.dtype,
                          gpu_memory_utilization=v.gpu_memory_utilization, max_num_seqs=v.max_num_seqs,
                          quantization=v.quantization, cpu_kv_cache_gib=v.cpu_kv_cache_gib, extra_args=v.extra_args)
    tgi = settings.tgi
    return TgiEngine(image=tgi.image, max_input_tokens=tgi.max_input_tokens, max_total_tokens=tgi.max_total_tokens,
                     max_batch_prefill_tokens=tgi.max_batch_prefill_tokens, dtype=tgi.dtype, quantize=tgi.quantize,
                     max_batch_size=tgi.max_batch_size)


def build_experiment(settings: Settings, platform: Platform, namespace: ExperimentNamespace,
                     weights: WeightsStore) -> Experiment:
    """Staging, Dataset, TGI pair and traffic split, in the namespace, over the weights store."""
    stack = settings.stack
    staging: ModelStaging | None = None
    if settings.staging.enabled:
        staging = ModelStaging(
            "staging",
            ModelStagingArgs(
                namespace=namespace.name, stack=stack, image=settings.staging.image, endpoint=weights.endpoint,
                bucket=settings.storage.bucket, credentials_secret=weights.writer_secret,
                service_account=weights.writer_service_account,
                service_account_annotations=weights.writer_service_account_annotations,
                region=weights.region, timeout_seconds=settings.staging.timeout_seconds, volume_id=weights.volume_id,
                models=[StagedModel(role=v.value, repo_id=settings.model(v).id, revision=settings.model(v).revision,
                                    prefix=settings.model(v).object_prefix) for v in Variant],
                placement=platform.placement(Part.STAGING),
            ),
            opts=platform.opts(depends_on=weights.ready),
        )

    dataset = DatashimDataset(
        "dataset",
        DatashimDatasetArgs(
            namespace=namespace.name, stack=stack, dataset_name=settings.datashim.dataset_name,
            endpoint=weights.endpoint, bucket=weights.bucket, access_key_id=weights.reader_access_key,
            secret_access_key=weights.reader_secret_key, await_provision=settings.datashim.await_provision,
            install=settings.datashim.install, version=settings.datashim.version,
            operator_namespace=settings.datashim.operator_namespace,
        ),
        opts=platform.opts(depends_on=weights.ready),
    )

    # TGI starts only once its weights are in the bucket and the Dataset exists: Datashim's webhook
    # rejects pods that name a missing Dataset, and TGI treats a missing path as a Hub repo id.
    weights_in_place: list[pulumi.Resource] = [dataset, *([staging] if staging else [])]
    pod = settings.serving
    # A simulated GPU replica keeps its GPU selector and toleration: it lands on the simulated GPU node.
    placement = platform.placement(Part.SERVING)
    node_selector = {**pod.node_selector, **(platform.gpu_node_selector if pod.gpus_per_replica else {}),
                     **placement.get("nodeSelector", {})}
    # Both Deployments carry the declared split for the policy pack, so a new split.canaryPercent
    # changes only them (replicas and this annotation) and the traffic Service not at all.
    declared_split = split_annotations(settings.split.canary_percent, settings.split.tolerance)
    servers = {
        variant: ModelServer(
            f"tgi-{variant.value}",  # the logical names of the TGI-only days: existing stacks keep their URNs
            ModelServerArgs(
                namespace=namespace.name, stack=stack, variant=variant.value,
                engine=serving_engine(settings, variant), dataset_name=settings.datashim.dataset_name,
                model_path=model_mount_path(settings.datashim.dataset_name, settings.model(variant).object_prefix),
                model_id=settings.model(variant).id,
                replicas=None if settings.autoscaling.enabled else settings.replicas(variant),
                max_replicas=settings.max_replicas(variant),
                gpus=pod.gpus_per_replica, resources=pod.resources.to_k8s(),
                startup_budget_seconds=pod.startup_budget_seconds, shm_size=pod.shm_size,
                node_selector=node_selector, tolerations=placement.get("tolerations", ()),
                run_as_non_root=pod.run_as_non_root,
                split_annotations=declared_split,
            ),
            opts=platform.opts(depends_on=weights_in_place),
        )
        for variant in Variant
    }
    split = settings.split
    traffic = TrafficSplit(
        "traffic",
        TrafficSplitArgs(namespace=namespace.name, stack=stack,
                         plan=None if split.gateway_mode else split.plan(),
                         gateway=gateway_split(settings) if split.gateway_mode else None,
                         allowed_namespaces=settings.traffic.allowed_namespaces,
                         backends=list(servers.values()) if split.gateway_mode else ()),
        opts=platform.opts(),
    )
    return Experiment(namespace=namespace, weights=weights, dataset=dataset, staging=staging, servers=servers,
                      traffic=traffic)


def gateway_split(settings: Settings) -> GatewaySplit:
    """Gateway mode's route: the Gateway, exact weights, header matches, and what the split costs."""
    split, autoscaling = settings.split, settings.autoscaling
    replicas: dict[str, int | str] = {
        v.value: (f"{autoscaling.min_replicas}-{autoscaling.max_replicas} (HPA)" if autoscaling.enabled
                  else settings.replicas(v)) for v in Variant}
    counts = {v: settings.replicas(v) for v in Variant}
    return GatewaySplit(
        gateway=GatewayRef(name=split.gateway.name or "", namespace=split.gateway.namespace,
                           section_name=split.gateway.section_name),
        weights=split.weights(), declared_percent=split.canary_percent, url=split.gateway.url or "",
        headers=split.headers(), replicas=replicas,
        cost=split_cost(split.canary_percent, split.tolerance, settings.serving.gpus_per_replica,
                        stable_replicas=counts[Variant.STABLE], canary_replicas=counts[Variant.CANARY]),
    )


def gpus_per_variant(settings: Settings) -> dict[str, int]:
    """GPUs each variant holds at the planned replica counts."""
    return {v.value: settings.replicas(v) * settings.serving.gpus_per_replica for v in Variant}


def experiment_outputs(settings: Settings, experiment: Experiment) -> dict[str, Any]:
    """Stack outputs of the experiment; credentials only as secrets."""
    return {
        OUT.NAMESPACE: experiment.namespace.name,
        OUT.TRAFFIC_URL: experiment.traffic.url,
        OUT.STABLE_URL: experiment.servers[Variant.STABLE].url,
        OUT.CANARY_URL: experiment.servers[Variant.CANARY].url,
        OUT.SPLIT: experiment.traffic.split,
        OUT.REPLICAS: {v.value: settings.replicas(v) for v in Variant},
        OUT.GPUS: gpus_per_variant(settings),
        # weights: the MODEL_ID each variant is given, which its /info reports (the smoke CLI checks it).
        OUT.MODELS: {v.value: {"id": settings.model(v).id, "revision": settings.model(v).revision,
                               "weights": model_mount_path(settings.datashim.dataset_name,
                                                           settings.model(v).object_prefix)}
                     for v in Variant},
        OUT.ENGINES: {v.value: {"engine": server.engine.name, "api": server.engine.api}
                      for v, server in experiment.servers.items()},
        OUT.DATASET: experiment.dataset.dataset_name,
        OUT.BUCKET: experiment.weights.bucket,
        OUT.S3_ENDPOINT: experiment.weights.endpoint,
        **experiment.weights.outputs,
    }
