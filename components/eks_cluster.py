"""An EKS cluster ready for GPU pools: IAM roles, the control plane, IRSA, a system node group.

- The control plane authenticates with access entries (``API`` mode); the identity that runs
  ``pulumi up`` becomes cluster admin, and managed node groups get their entries from EKS.
- IRSA (an IAM OIDC provider for the cluster's issuer) lets pods assume IAM roles through annotated
  service accounts: the staging Jobs use it to write S3, the EBS CSI driver to create volumes.
- The VPC CNI runs as a managed add-on with network-policy enforcement switched on; without it EKS
  ignores the experiment's NetworkPolicies.
- One node role (worker, CNI and ECR read-only policies) is shared by every node group; node groups
  wait for :attr:`EksCluster.node_prerequisites` so the policies outlive the nodes on destroy.
- :func:`render_kubeconfig` makes the kubeconfig of the Kubernetes provider: endpoint, CA and an
  ``aws eks get-token`` exec user, so no static token is stored in state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_aws as aws

from components.gpu_pool_spec import sizes_problem

AWS_MANAGED_POLICY = "arn:aws:iam::aws:policy/{}"
CLUSTER_POLICIES = ("AmazonEKSClusterPolicy",)
NODE_POLICIES = ("AmazonEKSWorkerNodePolicy", "AmazonEKS_CNI_Policy", "AmazonEC2ContainerRegistryReadOnly")
"""The three policies every managed node group's role needs."""
EBS_CSI_POLICY = "service-role/AmazonEBSCSIDriverPolicy"
EBS_CSI_SERVICE_ACCOUNT = ("kube-system", "ebs-csi-controller-sa")
SYSTEM_AMI_TYPE = "AL2023_x86_64_STANDARD"
STS_AUDIENCE = "sts.amazonaws.com"
NODE_ROLE_LABEL = "llm-ab/node-role"


def managed_policy_arn(name: str) -> str:
    return AWS_MANAGED_POLICY.format(name)


def service_trust_policy(service: str) -> dict[str, Any]:
    """Trust policy letting an AWS service (``eks.amazonaws.com``, ``ec2.amazonaws.com``) assume a role."""
    actions = ["sts:AssumeRole", "sts:TagSession"] if service == "eks.amazonaws.com" else ["sts:AssumeRole"]
    return {"Version": "2012-10-17", "Statement": [
        {"Effect": "Allow", "Principal": {"Service": service}, "Action": actions}]}


def oidc_host(issuer_url: str) -> str:
    """The issuer without its scheme, as IAM condition keys spell it."""
    return issuer_url.removeprefix("https://")


def irsa_trust_policy(*, provider_arn: str, issuer_url: str, namespace: str, service_account: str) -> dict[str, Any]:
    """Trust policy for IRSA: only ``namespace/service_account`` of this cluster may assume the role."""
    host = oidc_host(issuer_url)
    return {"Version": "2012-10-17", "Statement": [{
        "Effect": "Allow",
        "Principal": {"Federated": provider_arn},
        "Action": "sts:AssumeRoleWithWebIdentity",
        "Condition": {"StringEquals": {
            f"{host}:sub": f"system:serviceaccount:{namespace}:{service_account}",
            f"{host}:aud": STS_AUDIENCE,
        }},
    }]}


def irsa_assume_role_policy(provider_arn: pulumi.Input[str], issuer_url: pulumi.Input[str], *,
                            namespace: str, service_account: str) -> pulumi.Output[str]:
    """:func:`irsa_trust_policy` as the JSON an ``aws.iam.Role`` takes, from the cluster's outputs."""
    return pulumi.Output.all(provider_arn, issuer_url).apply(
        lambda v: json.dumps(irsa_trust_policy(provider_arn=v[0], issuer_url=v[1], namespace=namespace,
                                               service_account=service_account)))


def render_kubeconfig(*, cluster_name: str, endpoint: str, ca_data: str, region: str) -> str:
    """A kubeconfig (JSON, which is YAML) whose user runs ``aws eks get-token`` (AWS CLI v2 on PATH)."""
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster_name,
                      "cluster": {"server": endpoint, "certificate-authority-data": ca_data}}],
        "contexts": [{"name": cluster_name, "context": {"cluster": cluster_name, "user": cluster_name}}],
        "current-context": cluster_name,
        "users": [{"name": cluster_name, "user": {"exec": {
            "apiVersion": "client.authentication.k8s.io/v1beta1",
            "command": "aws",
            "args": ["eks", "get-token", "--cluster-name", cluster_name, "--region", region, "--output", "json"],
            "interactiveMode": "Never",
        }}}],
    }, indent=2)


@dataclass(frozen=True, kw_only=True)
class SystemNodeGroupArgs:
    """The untainted node group for cluster add-ons, MinIO, Datashim and the Jobs."""

    instance_types: Sequence[str] = ("m6i.large",)
    min_size: int = 1
    desired_size: int = 2
    max_size: int = 3
    disk_size_gib: int = 50

    def __post_init__(self) -> None:
        sizes = sizes_problem(self.min_size, self.desired_size, self.max_size)
        if sizes is not None:
            raise ValueError(f"{sizes[0]} {sizes[1]}")


@dataclass(frozen=True, kw_only=True)
class EksClusterArgs:
    """Inputs for EksCluster."""

    cluster_name: str
    kubernetes_version: str
    region: str
    """Region of the provider the component runs with; the kubeconfig's get-token uses it."""
    subnet_ids: pulumi.Input[Sequence[pulumi.Input[str]]]
    """Private subnets (two zones at least) for the control plane's interfaces and the nodes."""
    endpoint_public_access_cidrs: Sequence[str] = ()
    """Who may reach the public API endpoint; empty: no public endpoint (private, from the VPC only)."""
    system_node_group: SystemNodeGroupArgs = field(default_factory=SystemNodeGroupArgs)
    ebs_csi_driver: bool = False
    """Install the EBS CSI driver add-on (with an IRSA role): needed for PersistentVolumes (MinIO)."""
    tags: Mapping[str, str] = field(default_factory=dict)


class EksCluster(pulumi.ComponentResource):
    """The control plane, its OIDC provider for IRSA, the shared node role and a system node group."""

    cluster_name: pulumi.Output[str]
    kubernetes_version: pulumi.Output[str]
    endpoint: pulumi.Output[str]
    certificate_authority: pulumi.Output[str]
    oidc_provider_arn: pulumi.Output[str]
    oidc_issuer: pulumi.Output[str]
    node_role_arn: pulumi.Output[str]
    kubeconfig: pulumi.Output[str]
    """For ``pulumi_kubernetes.Provider``; authenticates with ``aws eks get-token``."""

    def __init__(self, name: str, args: EksClusterArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:compute:EksCluster", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)

        cluster_role = aws.iam.Role(f"{name}-cluster-role",
                                    assume_role_policy=json.dumps(service_trust_policy("eks.amazonaws.com")),
                                    tags=dict(args.tags), opts=child)
        cluster_attachments = [
            aws.iam.RolePolicyAttachment(f"{name}-cluster-{policy}", role=cluster_role.name,
                                         policy_arn=managed_policy_arn(policy), opts=child)
            for policy in CLUSTER_POLICIES
        ]
        cluster = aws.eks.Cluster(
            f"{name}-cluster",
            name=args.cluster_name,
            version=args.kubernetes_version,
            role_arn=cluster_role.arn,
            vpc_config=aws.eks.ClusterVpcConfigArgs(
                subnet_ids=args.subnet_ids,
                endpoint_private_access=True,
                endpoint_public_access=bool(args.endpoint_public_access_cidrs),
                public_access_cidrs=list(args.endpoint_public_access_cidrs) or None,
            ),
            access_config=aws.eks.ClusterAccessConfigArgs(
                authentication_mode="API", bootstrap_cluster_creator_admin_permissions=True),
            tags=dict(args.tags),
            # EKS needs its policy while it creates and deletes the control plane.
            opts=pulumi.ResourceOptions(parent=self, depends_on=cluster_attachments),
        )
        issuer = cluster.identities[0].oidcs[0].issuer
        oidc = aws.iam.OpenIdConnectProvider(f"{name}-oidc", url=issuer, client_id_lists=[STS_AUDIENCE],
                                             tags=dict(args.tags), opts=child)

        node_role = aws.iam.Role(f"{name}-node-role",
                                 assume_role_policy=json.dumps(service_trust_policy("ec2.amazonaws.com")),
                                 tags=dict(args.tags), opts=child)
        node_attachments = [
            aws.iam.RolePolicyAttachment(f"{name}-node-{policy}", role=node_role.name,
                                         policy_arn=managed_policy_arn(policy), opts=child)
            for policy in NODE_POLICIES
        ]
        vpc_cni = aws.eks.Addon(
            f"{name}-vpc-cni", cluster_name=cluster.name, addon_name="vpc-cni",
            # Without this EKS does not enforce NetworkPolicies (our default-deny ingress).
            configuration_values=json.dumps({"enableNetworkPolicy": "true"}),
            resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="OVERWRITE",
            tags=dict(args.tags), opts=child)
        self.node_prerequisites: list[pulumi.Resource] = [*node_attachments, vpc_cni]
        """What every node group is created after and deleted before."""

        sys_args = args.system_node_group
        self.system_node_group = aws.eks.NodeGroup(
            f"{name}-system",
            cluster_name=cluster.name,
            node_role_arn=node_role.arn,
            subnet_ids=args.subnet_ids,
            ami_type=SYSTEM_AMI_TYPE,
            version=cluster.version,  # follows control-plane upgrades
            instance_types=list(sys_args.instance_types),
            capacity_type="ON_DEMAND",
            disk_size=sys_args.disk_size_gib,
            scaling_config=aws.eks.NodeGroupScalingConfigArgs(
                min_size=sys_args.min_size, desired_size=sys_args.desired_size, max_size=sys_args.max_size),
            update_config=aws.eks.NodeGroupUpdateConfigArgs(max_unavailable=1),
            labels={NODE_ROLE_LABEL: "system"},
            tags=dict(args.tags),
            opts=pulumi.ResourceOptions(parent=self, depends_on=self.node_prerequisites),
        )
        self.addons: list[pulumi.Resource] = [vpc_cni]
        if args.ebs_csi_driver:
            self.addons.append(self._ebs_csi_driver(name, args, cluster, oidc, issuer))

        self.cluster = cluster
        self.cluster_name = cluster.name
        self.kubernetes_version = cluster.version
        self.endpoint = cluster.endpoint
        self.certificate_authority = cluster.certificate_authority.data
        self.oidc_provider_arn = oidc.arn
        self.oidc_issuer = issuer
        self.node_role_arn = node_role.arn
        self.kubeconfig = pulumi.Output.all(cluster.name, cluster.endpoint, self.certificate_authority).apply(
            lambda v: render_kubeconfig(cluster_name=v[0], endpoint=v[1], ca_data=v[2], region=args.region))
        self.register_outputs({
            "cluster_name": self.cluster_name,
            "kubernetes_version": self.kubernetes_version,
            "endpoint": self.endpoint,
            "certificate_authority": self.certificate_authority,
            "oidc_provider_arn": self.oidc_provider_arn,
            "oidc_issuer": self.oidc_issuer,
            "node_role_arn": self.node_role_arn,
            "kubeconfig": self.kubeconfig,
        })

    def _ebs_csi_driver(self, name: str, args: EksClusterArgs, cluster: aws.eks.Cluster,
                        oidc: aws.iam.OpenIdConnectProvider, issuer: pulumi.Output[str]) -> aws.eks.Addon:
        namespace, service_account = EBS_CSI_SERVICE_ACCOUNT
        role = aws.iam.Role(f"{name}-ebs-csi-role",
                            assume_role_policy=irsa_assume_role_policy(oidc.arn, issuer, namespace=namespace,
                                                                       service_account=service_account),
                            tags=dict(args.tags),
                            opts=pulumi.ResourceOptions(parent=self))
        attachment = aws.iam.RolePolicyAttachment(f"{name}-ebs-csi-policy", role=role.name,
                                                  policy_arn=managed_policy_arn(EBS_CSI_POLICY),
                                                  opts=pulumi.ResourceOptions(parent=self))
        return aws.eks.Addon(
            f"{name}-ebs-csi", cluster_name=cluster.name, addon_name="aws-ebs-csi-driver",
            service_account_role_arn=role.arn,
            resolve_conflicts_on_create="OVERWRITE", resolve_conflicts_on_update="OVERWRITE",
            tags=dict(args.tags),
            # The add-on's controller runs on nodes: EKS reports it degraded until there are some.
            opts=pulumi.ResourceOptions(parent=self, depends_on=[attachment, self.system_node_group]),
        )
