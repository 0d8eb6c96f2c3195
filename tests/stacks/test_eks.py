"""The eks platform: settings, and the whole staging program (__main__.py, Pulumi.staging.yaml) under mocks."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

import pulumi
import pytest

from components.eks_cluster import irsa_trust_policy, render_kubeconfig
from components.eks_network import split_vpc_cidr
from stacks.config_types import ConfigError
from stacks.eks_settings import AmiType, CapacityType
from stacks.settings import parse_settings
from tests.harness import MOCK_ISSUER, RecordingMocks, is_secret_value, raw_config, unsecret
from tests.samples import staging_config

K8S_PROVIDER = "pulumi:providers:kubernetes::eks-k8s::"
AWS_PROVIDER = "pulumi:providers:aws::aws::"


def staging_with(**changes: Any) -> dict[str, Any]:
    """The staging config with ``changes`` applied: ``{"gpu.nodePools[0].maxSize": 1}`` style paths
    given as keyword names with ``__`` for ``.`` (``gpu__servingPool``), or whole keys (``storage``)."""
    config = copy.deepcopy(staging_config())
    for dotted, value in changes.items():
        path = dotted.split("__")
        node = config.setdefault(f"llm-ab:{path[0]}", {})
        for part in path[1:-1]:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if len(path) == 1:
            config[f"llm-ab:{path[0]}"] = value
        elif isinstance(node, list):
            node[int(path[-1])] = value
        else:
            node[path[-1]] = value
    return config


def parse(config: dict[str, Any]):
    return parse_settings(raw_config(config), stack="staging")


def pool(**overrides: Any) -> dict[str, Any]:
    base = copy.deepcopy(staging_config()["llm-ab:gpu"]["nodePools"][0])
    base.update(overrides)
    return base


@pytest.fixture
def staging(run_main, pulumi_mocks: RecordingMocks):
    exported = run_main(staging_config())
    return pulumi_mocks, exported


def run_with(run_main, pulumi_mocks, config) -> tuple[RecordingMocks, dict[str, Any]]:
    return pulumi_mocks, run_main(config)


def one(mocks: RecordingMocks, typ: str):
    found = mocks.of_type(typ)
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def tgi_pod(mocks: RecordingMocks, variant: str) -> dict[str, Any]:
    deploy = mocks.k8s_named("apps/v1:Deployment", f"text-generation-inference-{variant}")
    return deploy.inputs["spec"]["template"]["spec"]


# --- settings (pure) ------------------------------------------------------------------------


def test_staging_settings_are_a_g5_pool_with_a_ten_percent_canary() -> None:
    s = parse(staging_config())
    eks, gpu = s.eks, s.gpu
    assert (s.split.plan().stable_replicas, s.split.plan().canary_replicas) == (9, 1)
    assert eks.region == "us-east-1" and eks.cluster_name_of(s.stack) == "llm-ab-staging"
    assert eks.kubernetes_version == "1.35"
    (g5,) = gpu.node_pools
    assert g5.name == "g5" and g5.instance_types == ("g5.xlarge",) and gpu.serving_pool is g5
    assert g5.ami_type is AmiType.AL2023_NVIDIA and g5.capacity_type is CapacityType.ON_DEMAND
    assert gpu.device_plugin_pools == [g5]
    assert eks.s3_endpoint == "https://s3.us-east-1.amazonaws.com"


def test_pool_defaults_are_al2023_on_demand_with_a_100_gib_disk() -> None:
    config = staging_with(gpu={"nodePools": [{"name": "a", "instanceTypes": ["g6.xlarge"], "desiredSize": 11,
                                              "maxSize": 11}]},
                          serving__gpusPerReplica=1)
    (a,) = parse(config).gpu.node_pools
    assert a.ami_type is AmiType.AL2023_NVIDIA and a.capacity_type is CapacityType.ON_DEMAND
    assert a.disk_size_gib == 100 and a.min_size == 0


@pytest.mark.parametrize("spelling", ["on-demand", "ON_DEMAND", "On-Demand", "on_demand"])
def test_capacity_type_is_accepted_spelled_either_way(spelling: str) -> None:
    (p,) = parse(staging_with(gpu__nodePools=[pool(capacityType=spelling)])).gpu.node_pools
    assert p.capacity_type is CapacityType.ON_DEMAND
    (p,) = parse(staging_with(gpu__nodePools=[pool(capacityType="spot")])).gpu.node_pools
    assert p.capacity_type is CapacityType.SPOT


def test_kubernetes_version_written_as_a_yaml_number_is_understood() -> None:
    assert parse(staging_with(eks__kubernetesVersion=1.35)).eks.kubernetes_version == "1.35"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"gpu__nodePools": [pool(minSize=2, desiredSize=2, maxSize=1)]},
         "llm-ab:gpu.nodePools[0].maxSize must be >= minSize (2), got 1"),
        ({"gpu__nodePools": [pool(desiredSize=13)]},
         "llm-ab:gpu.nodePools[0].desiredSize must be between minSize (0) and maxSize (12), got 13"),
        ({"gpu__nodePools": [pool(instanceTypes=["m5.large"])]},
         "llm-ab:gpu.nodePools[0].instanceTypes must list GPU instance types: 'm5.large' is not a GPU instance type"),
        ({"gpu__nodePools": [pool(instanceTypes=["g5.3xlarge"])]},
         "llm-ab:gpu.nodePools[0].instanceTypes must list GPU instance types: 'g5.3xlarge' is not a g5 size"),
        ({"gpu__nodePools": [pool(amiType="AL2_x86_64_GPU")]},
         "llm-ab:gpu.nodePools[0].amiType must be one of AL2023_x86_64_NVIDIA, BOTTLEROCKET_x86_64_NVIDIA "
         "(AL2 GPU AMIs are end-of-support), got 'AL2_x86_64_GPU'"),
        ({"gpu__nodePools": [pool(amiType="AL2023_x86_64_STANDARD")]},
         "llm-ab:gpu.nodePools[0].amiType must be one of"),
        ({"gpu__nodePools": [pool(diskSizeGiB=20)]},
         "llm-ab:gpu.nodePools[0].diskSizeGiB must be at least 100 GiB"),
        ({"gpu__nodePools": [pool(capacityType="RESERVED")]},
         "llm-ab:gpu.nodePools[0].capacityType must be ON_DEMAND or SPOT"),
        ({"gpu__nodePools": [pool(labels={"llm-ab/gpu-pool": "x"})]},
         "llm-ab:gpu.nodePools[0].labels must not set llm-ab/gpu-pool"),
        ({"gpu__nodePools": [pool(), pool()]}, "llm-ab:gpu.nodePools[1].name must be unique"),
        ({"gpu__nodePools": [pool(name="G5")]}, "llm-ab:gpu.nodePools[0].name must be a pool name"),
        ({"gpu__nodePools": [pool(instanceTyps=["g5.xlarge"])]},
         "llm-ab:gpu.nodePools[0].instanceTyps is not a known setting"),
        ({"gpu__servingPool": "p5"}, "llm-ab:gpu.servingPool must name one of gpu.nodePools (g5), got 'p5'"),
        ({"gpu__devicePlugin": {"image": "nvcr.io/nvidia/k8s-device-plugin:latest"}},
         "llm-ab:gpu.devicePlugin.image must be an image pinned"),
        # Capacity: 10 replicas of one GPU each need 10 g5.xlarge nodes.
        ({"gpu__nodePools": [pool(desiredSize=9, maxSize=9)]},
         "llm-ab:gpu.nodePools[0].maxSize gives room for 9 serving replica(s)"),
        ({"gpu__nodePools": [pool(desiredSize=9)]},
         "llm-ab:gpu.nodePools[0].desiredSize gives room for 9 serving replica(s) (9 node(s) x 1 per node at "
         "serving.gpusPerReplica 1), but split.replicas needs 10: set it to at least 10, got 9"),
        ({"serving__gpusPerReplica": 2}, "llm-ab:serving.gpusPerReplica must fit on one node of GPU pool 'g5'"),
        ({"gpu": {"nodePools": []}}, "llm-ab:gpu.nodePools must declare at least one pool on platform eks"),
        ({"eks__region": "moon-1"}, "llm-ab:eks.region must be an AWS region"),
        ({"eks__kubernetesVersion": "1.29"}, "llm-ab:eks.kubernetesVersion must be an EKS Kubernetes minor version"),
        ({"eks__vpc": {"cidr": "8.8.0.0/16"}}, "llm-ab:eks.vpc.cidr must be a private IPv4 block"),
        ({"eks__vpc": {"cidr": "10.0.0.0/16", "subnetIds": ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]}},
         "llm-ab:eks.vpc.cidr cannot be combined with eks.vpc.subnetIds"),
        ({"eks__vpc": {"subnetIds": ["subnet-0123456789abcdef0"]}}, "llm-ab:eks.vpc.subnetIds must list at least 2"),
        ({"eks__vpc": {"availabilityZones": ["us-east-1a", "eu-west-1b"]}},
         "llm-ab:eks.vpc.availabilityZones must be zones of eks.region us-east-1"),
        ({"eks__systemNodeGroup": {"desiredSize": 0, "minSize": 0}},
         "llm-ab:eks.systemNodeGroup.desiredSize must be at least 1"),
        ({"storage": {"kind": "s3"}}, "llm-ab:storage.bucket must be a globally unique S3 bucket name"),
        ({"aws": {"region": "us-east-1"}}, "llm-ab:aws is not used: set the AWS region with llm-ab:eks.region"),
    ],
)
def test_bad_eks_config_is_rejected_naming_the_key(changes: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse(staging_with(**changes))
    assert message in str(err.value)


def test_on_local_eks_keys_are_validated_but_ignored() -> None:
    config = staging_with(platform="local", storage={"bucket": "model-weights"})
    settings = parse(config)
    assert settings.platform.value == "local" and settings.gpu.node_pools  # parsed, and unused
    with pytest.raises(ConfigError, match=re.escape("llm-ab:gpu.nodePools[0].amiType must be one of")):
        parse(staging_with(platform="local", storage={"bucket": "model-weights"},
                           gpu__nodePools=[pool(amiType="WINDOWS")]))


def test_cpu_inference_on_eks_needs_no_gpu_pool() -> None:
    config = staging_with(serving__gpusPerReplica=0, gpu={})
    gpu = parse(config).gpu
    assert gpu.node_pools == () and gpu.serving_pool is None


# --- pure helpers of the AWS components ----------------------------------------------------


def test_kubeconfig_authenticates_with_aws_eks_get_token() -> None:
    config = json.loads(render_kubeconfig(cluster_name="c", endpoint="https://e", ca_data="Q0E=", region="eu-west-1"))
    assert config["clusters"][0]["cluster"] == {"server": "https://e", "certificate-authority-data": "Q0E="}
    user = config["users"][0]["user"]
    assert "token" not in user
    assert user["exec"]["command"] == "aws"
    assert user["exec"]["args"] == ["eks", "get-token", "--cluster-name", "c", "--region", "eu-west-1",
                                    "--output", "json"]
    assert config["current-context"] == "c"


def test_irsa_trust_is_scoped_to_one_service_account() -> None:
    policy = irsa_trust_policy(provider_arn="arn:oidc", issuer_url="https://oidc.example/id/X",
                               namespace="ns", service_account="sa")
    (statement,) = policy["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    assert statement["Principal"] == {"Federated": "arn:oidc"}
    assert statement["Condition"]["StringEquals"] == {"oidc.example/id/X:sub": "system:serviceaccount:ns:sa",
                                                      "oidc.example/id/X:aud": "sts.amazonaws.com"}


def test_vpc_is_split_into_two_private_and_two_public_quarters() -> None:
    assert split_vpc_cidr("10.40.0.0/16") == (["10.40.0.0/18", "10.40.64.0/18"], ["10.40.128.0/18", "10.40.192.0/18"])


# --- the staging program under mocks --------------------------------------------------------


def test_every_kubernetes_object_goes_through_the_eks_provider(staging) -> None:
    mocks, _ = staging
    k8s = [r for r in mocks.resources if r.typ.startswith("kubernetes:")]
    assert len(k8s) > 15
    for r in k8s:
        assert r.provider and K8S_PROVIDER in r.provider, (r.typ, r.name, r.provider)
    for r in mocks.resources:
        if r.typ.startswith("aws:"):
            assert r.provider and AWS_PROVIDER in r.provider, (r.typ, r.name, r.provider)


def test_the_kubernetes_provider_is_made_from_the_clusters_kubeconfig(staging, resolve) -> None:
    mocks, exported = staging
    provider = one(mocks, "pulumi:providers:kubernetes")
    assert provider.name == "eks-k8s"
    kubeconfig = json.loads(provider.inputs["kubeconfig"])
    assert kubeconfig["clusters"][0]["cluster"]["server"].endswith(".eks.amazonaws.com")
    assert kubeconfig["users"][0]["user"]["exec"]["args"][:4] == ["eks", "get-token", "--cluster-name",
                                                                   "llm-ab-test"]
    assert json.loads(resolve(exported["kubeconfig"])) == kubeconfig
    aws_provider = one(mocks, "pulumi:providers:aws")
    assert aws_provider.inputs["region"] == "us-east-1"


def test_cluster_uses_access_entries_irsa_and_network_policy_enforcement(staging) -> None:
    mocks, _ = staging
    cluster = one(mocks, "aws:eks/cluster:Cluster")
    assert cluster.inputs["version"] == "1.35"
    assert cluster.inputs["accessConfig"]["authenticationMode"] == "API"
    assert len(cluster.inputs["vpcConfig"]["subnetIds"]) == 2
    oidc = one(mocks, "aws:iam/openIdConnectProvider:OpenIdConnectProvider")
    assert oidc.inputs["url"] == MOCK_ISSUER and oidc.inputs["clientIdLists"] == ["sts.amazonaws.com"]
    cni = mocks.named("eks-vpc-cni")
    assert json.loads(cni.inputs["configurationValues"]) == {"enableNetworkPolicy": "true"}
    # S3 storage: no volumes, so no EBS CSI driver.
    assert not [r for r in mocks.of_type("aws:eks/addon:Addon") if r.inputs["addonName"] == "aws-ebs-csi-driver"]


def test_the_vpc_spans_two_looked_up_zones_with_one_nat(staging) -> None:
    mocks, _ = staging
    subnets = mocks.of_type("aws:ec2/subnet:Subnet")
    assert sorted(s.inputs["availabilityZone"] for s in subnets) == ["us-east-1a", "us-east-1a",
                                                                   "us-east-1b", "us-east-1b"]
    assert len(mocks.of_type("aws:ec2/natGateway:NatGateway")) == 1
    (lookup,) = [c for c in mocks.calls if c.token.endswith("getAvailabilityZones")]
    assert AWS_PROVIDER in lookup.provider


def test_gpu_node_group_from_the_staging_pool(staging) -> None:
    mocks, _ = staging
    ng = mocks.named("gpu-g5-ng")
    i = ng.inputs
    assert i["taints"] == [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]
    assert i["labels"] == {"llm-ab/accelerator": "nvidia-a10g", "llm-ab/gpu-pool": "g5"}
    assert i["amiType"] == "AL2023_x86_64_NVIDIA" and i["capacityType"] == "ON_DEMAND"
    assert i["diskSize"] == 100 and i["instanceTypes"] == ["g5.xlarge"]
    assert i["scalingConfig"] == {"minSize": 0, "desiredSize": 11, "maxSize": 12}
    assert i["nodeRoleArn"] == "arn:aws:mock::123456789012:eks-node-role"
    assert i["version"] == "1.35"  # follows the control plane
    depends = mocks.depends_on("gpu-g5-ng")
    assert {"eks-node-AmazonEKSWorkerNodePolicy", "eks-node-AmazonEKS_CNI_Policy",
            "eks-node-AmazonEC2ContainerRegistryReadOnly", "eks-vpc-cni"} <= depends
    system = mocks.named("eks-system")
    assert "taints" not in system.inputs and system.inputs["amiType"] == "AL2023_x86_64_STANDARD"


def test_tgi_runs_on_the_gpu_pool_with_the_toleration(staging) -> None:
    mocks, _ = staging
    for variant, replicas in (("stable", 9), ("canary", 1)):
        deploy = mocks.k8s_named("apps/v1:Deployment", f"text-generation-inference-{variant}")
        assert deploy.inputs["spec"]["replicas"] == replicas
        spec = tgi_pod(mocks, variant)
        assert spec["nodeSelector"] == {"llm-ab/gpu-pool": "g5"}
        assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
        assert spec["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"


def test_device_plugin_daemonset_targets_the_al2023_pool(staging) -> None:
    mocks, _ = staging
    ds = mocks.k8s_named("apps/v1:DaemonSet", "nvidia-device-plugin-daemonset")
    spec = ds.inputs["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == "nvcr.io/nvidia/k8s-device-plugin:v0.17.1"
    expr = spec["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]["nodeSelectorTerms"]
    assert expr[0]["matchExpressions"][0]["values"] == ["g5"]


def test_datashim_node_plugin_tolerates_the_gpu_taint(staging) -> None:
    mocks, _ = staging
    manifest = one(mocks, "kubernetes:yaml/v2:ConfigFile")
    transforms = mocks.options[manifest.name].transforms
    assert transforms, "the Datashim install must carry the toleration transform"
    result = transforms[0](pulumi.ResourceTransformArgs(
        custom=True, type_="kubernetes:apps/v1:DaemonSet", name="csi-s3",
        props={"spec": {"template": {"spec": {"containers": [{"image": "quay.io/datashim-io/csi-s3:latest"}]}}}},
        opts=pulumi.ResourceOptions()))
    tolerations = result.props["spec"]["template"]["spec"]["tolerations"]
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in tolerations


def test_s3_bucket_is_versioned_encrypted_private_and_kept(staging) -> None:
    mocks, _ = staging
    bucket = one(mocks, "aws:s3/bucket:Bucket")
    assert bucket.inputs["bucket"] == "llm-ab-staging-weights-123456789012"
    assert bucket.inputs.get("forceDestroy") is False
    versioning = one(mocks, "aws:s3/bucketVersioning:BucketVersioning")
    assert versioning.inputs["versioningConfiguration"] == {"status": "Enabled"}
    sse = one(mocks, "aws:s3/bucketServerSideEncryptionConfiguration:BucketServerSideEncryptionConfiguration")
    assert sse.inputs["rules"][0]["applyServerSideEncryptionByDefault"]["sseAlgorithm"] == "AES256"
    pab = one(mocks, "aws:s3/bucketPublicAccessBlock:BucketPublicAccessBlock")
    assert all(pab.inputs[k] is True for k in ("blockPublicAcls", "blockPublicPolicy", "ignorePublicAcls",
                                                "restrictPublicBuckets"))
    policy = json.loads(one(mocks, "aws:s3/bucketPolicy:BucketPolicy").inputs["policy"])
    assert policy["Statement"][0]["Condition"] == {"Bool": {"aws:SecureTransport": "false"}}
    for r in (bucket, versioning, sse, pab):
        assert mocks.options[r.name].retain_on_delete is True, r.name


def test_staging_jobs_write_s3_through_irsa_without_keys(staging) -> None:
    mocks, _ = staging
    role = mocks.named("weights-s3-staging-role")
    trust = json.loads(role.inputs["assumeRolePolicy"])["Statement"][0]
    host = MOCK_ISSUER.removeprefix("https://")
    assert trust["Condition"]["StringEquals"][f"{host}:sub"] == "system:serviceaccount:llm-ab-staging:model-staging"
    write = json.loads(mocks.named("weights-s3-staging-write").inputs["policy"])
    assert write["Statement"][0]["Resource"] == ["arn:aws:s3:::llm-ab-staging-weights-123456789012"]
    assert "s3:PutObject" in write["Statement"][1]["Action"]
    sa = mocks.k8s_named("core/v1:ServiceAccount", "model-staging")
    assert sa.inputs["metadata"]["namespace"] == "llm-ab-staging"
    assert sa.inputs["metadata"]["annotations"] == {"eks.amazonaws.com/role-arn": "arn:aws:mock::123456789012:"
                                                                                 "weights-s3-staging-role"}
    for variant in ("stable", "canary"):
        pod = mocks.named(f"staging-{variant}").inputs["spec"]["template"]["spec"]
        assert pod["serviceAccountName"] == "model-staging"
        container = pod["containers"][0]
        assert container["envFrom"] == []
        env = {e["name"]: e["value"] for e in container["env"]}
        assert env["S3_ENDPOINT"] == "https://s3.us-east-1.amazonaws.com" and env["AWS_REGION"] == "us-east-1"


def test_dataset_reads_s3_with_a_read_only_key_kept_secret(staging) -> None:
    mocks, exported = staging
    read = json.loads(mocks.named("weights-s3-reader-read").inputs["policy"])
    actions = {a for statement in read["Statement"] for a in statement["Action"]}
    assert not {"s3:PutObject", "s3:DeleteObject"} & actions
    secret = mocks.k8s_named("core/v1:Secret", "model-weights-s3-credentials")
    assert is_secret_value(secret.inputs["stringData"])
    assert unsecret(secret.inputs["stringData"])["secretAccessKey"] == "mock-secret-access-key"
    (ds,) = mocks.of_type("kubernetes:datashim.io/v1alpha1:Dataset")
    assert ds.inputs["spec"]["local"]["endpoint"] == "https://s3.us-east-1.amazonaws.com"
    assert ds.inputs["spec"]["local"]["bucket"] == "llm-ab-staging-weights-123456789012"
    assert not mocks.of_type("kubernetes:core/v1:PersistentVolumeClaim"), "no MinIO with storage.kind s3"


def test_outputs_show_gpus_and_what_they_cost(staging, resolve) -> None:
    _, exported = staging
    assert exported["gpus"] == {"stable": 9, "canary": 1}
    (g5,) = exported["gpuPools"].values()
    assert g5["nodes"] == {"min": 0, "desired": 11, "max": 12}
    assert g5["gpus"] == 11 and g5["usdPerHour"] == 11.07 and g5["servingReplicaSlots"] == 11
    cost = exported["gpuCost"]
    assert cost["usdPerHour"] == 11.07 and cost["usdPerMonth"] == round(11.07 * 730, 2)
    assert cost["servingReplicasUsdPerHour"] == {"stable": 9.05, "canary": 1.01, "total": 10.06}
    assert "approximate" in cost["prices"] and "us-east-1" in cost["prices"]
    assert resolve(exported["cluster"])["name"] == "llm-ab-test"
    assert "placement" not in exported  # only the local platform has simulated nodes


def test_minio_on_eks_gets_the_ebs_driver_and_a_default_storage_class(run_main, pulumi_mocks) -> None:
    config = staging_with(storage={"kind": "minio", "bucket": "model-weights", "size": "50Gi"})
    mocks, _ = run_with(run_main, pulumi_mocks, config)
    addon = [r for r in mocks.of_type("aws:eks/addon:Addon") if r.inputs["addonName"] == "aws-ebs-csi-driver"]
    assert len(addon) == 1 and addon[0].inputs["serviceAccountRoleArn"].endswith("eks-ebs-csi-role")
    trust = json.loads(mocks.named("eks-ebs-csi-role").inputs["assumeRolePolicy"])["Statement"][0]
    assert "system:serviceaccount:kube-system:ebs-csi-controller-sa" in trust["Condition"]["StringEquals"].values()
    sc = one(mocks, "kubernetes:storage.k8s.io/v1:StorageClass")
    assert sc.inputs["metadata"]["annotations"] == {"storageclass.kubernetes.io/is-default-class": "true"}
    assert sc.inputs["provisioner"] == "ebs.csi.aws.com" and sc.inputs["reclaimPolicy"] == "Retain"
    assert not mocks.of_type("aws:s3/bucket:Bucket")
    assert len(mocks.of_type("kubernetes:core/v1:PersistentVolumeClaim")) == 1


def test_existing_subnets_create_no_vpc(run_main, pulumi_mocks) -> None:
    ids = ["subnet-0123456789abcdef0", "subnet-0123456789abcdef1"]
    mocks, _ = run_with(run_main, pulumi_mocks, staging_with(eks__vpc={"subnetIds": ids}))
    assert not mocks.of_type("aws:ec2/vpc:Vpc") and not mocks.of_type("aws:ec2/subnet:Subnet")
    assert one(mocks, "aws:eks/cluster:Cluster").inputs["vpcConfig"]["subnetIds"] == ids
    assert mocks.named("gpu-g5-ng").inputs["subnetIds"] == ids


def test_bottlerocket_pools_get_no_device_plugin_daemonset(run_main, pulumi_mocks) -> None:
    config = staging_with(gpu__nodePools=[pool(amiType="BOTTLEROCKET_x86_64_NVIDIA")])
    mocks, _ = run_with(run_main, pulumi_mocks, config)
    assert mocks.named("gpu-g5-ng").inputs["amiType"] == "BOTTLEROCKET_x86_64_NVIDIA"
    assert not mocks.of_type("kubernetes:apps/v1:DaemonSet")


def test_cpu_inference_on_eks_stays_off_the_gpu_taint(run_main, pulumi_mocks) -> None:
    config = staging_with(serving__gpusPerReplica=0, gpu={})
    mocks, exported = run_with(run_main, pulumi_mocks, config)
    assert not mocks.of_type("aws:eks/nodeGroup:NodeGroup")[1:], "only the system node group"
    spec = tgi_pod(mocks, "stable")
    assert "tolerations" not in spec and "nodeSelector" not in spec
    assert exported["gpuCost"]["usdPerHour"] == 0 and exported["gpuPools"] == {}


def test_bad_eks_config_fails_before_anything_is_registered(run_main, pulumi_mocks) -> None:
    config = staging_with(gpu__nodePools=[pool(instanceTypes=["m5.large"])])
    with pytest.raises(pulumi.RunError) as err:
        run_main(config)
    assert "llm-ab:gpu.nodePools[0].instanceTypes must list GPU instance types" in str(err.value)
    assert pulumi_mocks.resources == []
