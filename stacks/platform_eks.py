"""The eks platform: VPC, EKS cluster, GPU node pools, add-ons, and the S3 weights bucket.

:func:`provision` creates (with pulumi-aws, through one explicit AWS provider for ``eks.region``) the
network, the cluster and its system node group, one managed node group per ``gpu.nodePools``
entry, and the S3 bucket when ``storage.kind`` is s3. One Kubernetes provider made from the
cluster's kubeconfig then deploys the cluster add-ons (NVIDIA device plugin, a default EBS
StorageClass); the rest of the stack goes through that provider, with TGI placed on the TGI pool's
nodes. The preview shows what the GPUs cost (outputs ``gpuPools`` and ``gpuCost``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi
import pulumi_aws as aws
import pulumi_kubernetes as k8s

from components.cluster_addons import EbsStorageClass, EbsStorageClassArgs, NvidiaDevicePlugin, NvidiaDevicePluginArgs
from components.eks_cluster import EksCluster, EksClusterArgs, SystemNodeGroupArgs
from components.eks_network import EksNetwork, EksNetworkArgs
from components.gpu_node_pool import GpuNodePool, GpuNodePoolArgs
from components.s3_store import S3WeightsBucket, S3WeightsBucketArgs
from stacks import outputs as OUT
from stacks.eks_settings import GpuPoolSettings
from stacks.gpu_capacity import PoolShape, pool_estimate, price_table, replica_cost, replicas_per_node
from stacks.platform import Platform, WeightsStore
from stacks.settings import Settings, Variant

STAGING_SERVICE_ACCOUNT = "model-staging"
"""Service account of the staging Jobs on S3; the IRSA role trusts exactly this name."""
IRSA_ROLE_ANNOTATION = "eks.amazonaws.com/role-arn"
HOURS_PER_MONTH = 730


def aws_tags(settings: Settings) -> dict[str, str]:
    """Tags on every AWS resource (the provider's default tags)."""
    return {"project": "llm-ab", "stack": settings.stack, "managed-by": "pulumi"}


def pool_shape(pool: GpuPoolSettings) -> PoolShape:
    return PoolShape(name=pool.name, instance_types=pool.instance_types, capacity_type=pool.capacity_type.value,
                     min_size=pool.min_size, desired_size=pool.desired_size, max_size=pool.max_size)


def capacity_outputs(settings: Settings) -> dict[str, Any]:
    """``gpuPools`` and ``gpuCost``: plain values, so every preview shows them (pure)."""
    eks, gpu = settings.eks, settings.gpu
    table = price_table()
    pools = {pool.name: pool_estimate(pool_shape(pool), table) for pool in gpu.node_pools}
    per_hour = round(sum(p["usdPerHour"] for p in pools.values()), 2)
    cost: dict[str, Any] = {
        "usdPerHour": per_hour,
        "usdPerMonth": round(per_hour * HOURS_PER_MONTH, 2),
        "usdPerHourAtMax": round(sum(p["usdPerHourAtMax"] for p in pools.values()), 2),
        "prices": table.describe(),
    }
    serving_pool = gpu.serving_pool
    gpus = settings.serving.gpus_per_replica
    if serving_pool is not None and gpus > 0:
        replicas = {v.value: settings.replicas(v) for v in Variant}
        cost["servingPool"] = serving_pool.name
        cost["servingReplicasUsdPerHour"] = replica_cost(replicas, gpus, serving_pool.instance_types, table)
        per_node = replicas_per_node(serving_pool.instance_types, gpus, table)
        pools[serving_pool.name]["servingReplicaSlots"] = serving_pool.desired_size * per_node
    if eks.region != table.region:
        cost["note"] = f"list prices of {table.region}; {eks.region} prices differ"
    return {OUT.GPU_POOLS: pools, OUT.GPU_COST: cost}


def capacity_warnings(settings: Settings) -> list[str]:
    """Things a reviewer should know that are not errors (pure)."""
    warnings: list[str] = []
    gpus, pools = settings.serving.gpus_per_replica, settings.gpu.node_pools
    if gpus == 0 and pools:
        warnings.append("serving.gpusPerReplica is 0: the model servers run on the system node group and the GPU pools "
                        f"({', '.join(p.name for p in pools)}) only cost money")
    pool = settings.gpu.serving_pool
    total = settings.split.replicas
    if gpus > 0 and pool is not None:
        slots = pool.desired_size * replicas_per_node(pool.instance_types, gpus)
        if slots <= total:
            warnings.append(
                f"GPU pool {pool.name!r} has no spare serving slot ({slots} for {total} replicas): "
                "rolling updates surge one replica and will wait; raise its desiredSize by one")
    return warnings


def provision(settings: Settings) -> Platform:
    """Create the EKS platform: network, cluster, GPU pools, add-ons and (``storage.kind: s3``) the bucket."""
    eks, gpu = settings.eks, settings.gpu
    for warning in capacity_warnings(settings):
        pulumi.log.warn(warning)

    aws_provider = aws.Provider("aws", region=eks.region,
                                default_tags=aws.ProviderDefaultTagsArgs(tags=aws_tags(settings)))
    on_aws = pulumi.ResourceOptions(providers=[aws_provider])

    if eks.vpc.creates_vpc:
        network = EksNetwork(
            "network", EksNetworkArgs(cidr=eks.vpc.cidr, availability_zones=eks.vpc.availability_zones), opts=on_aws)
        subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]] = network.private_subnet_ids
    else:
        subnet_ids = list(eks.vpc.subnet_ids)

    system = eks.system_node_group
    cluster = EksCluster(
        "eks",
        EksClusterArgs(
            cluster_name=eks.cluster_name_of(settings.stack), kubernetes_version=eks.kubernetes_version,
            region=eks.region,
            subnet_ids=subnet_ids, endpoint_public_access_cidrs=eks.endpoint_public_access_cidrs,
            system_node_group=SystemNodeGroupArgs(
                instance_types=system.instance_types, min_size=system.min_size, desired_size=system.desired_size,
                max_size=system.max_size, disk_size_gib=system.disk_size_gib),
            # MinIO's volume needs the EBS CSI driver; S3 doesn't.
            ebs_csi_driver=settings.storage.kind == "minio",
        ),
        opts=on_aws,
    )
    pools = [
        GpuNodePool(
            f"gpu-{pool.name}",
            GpuNodePoolArgs(
                pool=pool.name, cluster_name=cluster.cluster_name, node_role_arn=cluster.node_role_arn,
                subnet_ids=subnet_ids, instance_types=pool.instance_types, ami_type=pool.ami_type.value,
                capacity_type=pool.capacity_type.value, min_size=pool.min_size, desired_size=pool.desired_size,
                max_size=pool.max_size, disk_size_gib=pool.disk_size_gib, labels=pool.labels,
                kubernetes_version=cluster.kubernetes_version,
                wait_for=cluster.node_prerequisites,
            ),
            opts=on_aws,
        )
        for pool in gpu.node_pools
    ]

    # Every Kubernetes object below goes to this cluster, never to the ambient kube context.
    k8s_provider = k8s.Provider("eks-k8s", kubeconfig=cluster.kubeconfig)
    on_cluster = pulumi.ResourceOptions(providers=[k8s_provider])
    ready: list[pulumi.Resource] = [cluster.system_node_group, *cluster.addons, *pools]
    plugin_pools = [p.name for p in gpu.device_plugin_pools]
    if plugin_pools:
        ready.append(NvidiaDevicePlugin(
            "nvidia-device-plugin", NvidiaDevicePluginArgs(image=gpu.device_plugin.image, pools=plugin_pools),
            opts=on_cluster))

    weights: WeightsStore | None = None
    if settings.storage.kind == "s3":
        bucket = S3WeightsBucket(
            "weights-s3",
            S3WeightsBucketArgs(bucket=settings.storage.bucket, oidc_provider_arn=cluster.oidc_provider_arn,
                                oidc_issuer=cluster.oidc_issuer, namespace=settings.namespace,
                                staging_service_account=STAGING_SERVICE_ACCOUNT, protect=settings.storage.protect),
            opts=on_aws,
        )
        weights = WeightsStore(
            endpoint=pulumi.Output.from_input(eks.s3_endpoint), bucket=bucket.bucket_name, region=eks.region,
            reader_access_key=bucket.reader_access_key_id, reader_secret_key=bucket.reader_secret_access_key,
            writer_service_account=STAGING_SERVICE_ACCOUNT,
            writer_service_account_annotations={IRSA_ROLE_ANNOTATION: bucket.staging_role_arn},
        )
        ready.append(bucket)  # the Jobs need the bucket and their role's policy before they start
    else:
        ready.append(EbsStorageClass("ebs-gp3", EbsStorageClassArgs(retain=settings.storage.protect),
                                     opts=on_cluster))

    serving_pool = gpu.serving_pool
    return Platform(
        provider=k8s_provider,
        gpu_node_selector=serving_pool.node_selector if serving_pool is not None else {},
        ready=ready,
        weights=weights,
        outputs={
            OUT.CLUSTER: {"name": cluster.cluster_name, "region": eks.region,
                          "kubernetesVersion": eks.kubernetes_version, "endpoint": cluster.endpoint},
            OUT.KUBECONFIG: cluster.kubeconfig,
            **capacity_outputs(settings),
        },
    )
