"""LLM-canary guardrails: the POLICIES list of the llm-ab-guardrails pack; the validators live in one
module per rule family (images, workloads, secrets, exposure, network, split, eks), the shared reading of props
in :mod:`props`, and what the program writes in :mod:`contract`.

Pure package (tests import it; ``__main__.py`` only builds the pack). It imports nothing from the
program.

What policies see (pulumi 3.272 engine, pulumi-policy 1.21):

- ``props`` are the resource inputs with camelCase keys; numbers arrive as floats (protobuf Struct).
- Secret values arrive **unwrapped**: the engine marshals them with ``KeepSecrets`` and the SDK's
  ``deserialize_properties`` strips the secret marker, so a policy cannot tell a Pulumi secret from
  a literal. Rules therefore look at *what* a value is (a known default, a literal env value) and,
  at stack level, at *where* it comes from (property dependencies).
- Unknown values (previews of not-yet-created resources) raise ``UnknownValueError`` when read; the
  SDK turns that into an advisory "can't run policy ... during preview". Rules that walk every value
  skip unknown ones instead of giving up.
- Resource options carry ``protect`` but not ``retainOnDelete`` (``AnalyzerResourceOptions`` has no
  such field), see :func:`weights_volume_protected`.
"""

from __future__ import annotations

from pulumi_policy import (
    EnforcementLevel,
    Policy,
    PolicyPack,  # noqa: F401 -- re-exported for __main__.py
    ResourceValidationPolicy,
    StackValidationPolicy,
)

from .eks import NODE_GROUP_DISK_SCHEMA, NODE_GROUP_TAINT_SCHEMA, gpu_node_group_disk, gpu_node_group_tainted
from .exposure import SERVICE_SCHEMA, dataset_read_only, no_public_services, weights_volume_protected
from .images import PINNED_IMAGES_SCHEMA, pinned_images
from .network import (
    DEFAULT_DENY_SCHEMA,
    EGRESS_INTERNAL_SCHEMA,
    egress_excludes_internal,
    namespace_default_deny,
)
from .secrets import CREDENTIALS_SCHEMA, SECRET_DATA_SCHEMA, no_plaintext_credentials, secret_data_not_literal
from .split import (
    CANARY_CAP_SCHEMA,
    SPLIT_TOLERANCE_SCHEMA,
    TRAFFIC_SCHEMA,
    canary_share_cap,
    route_backends_in_namespace,
    route_weights_valid,
    split_selects_both_variants,
    split_within_tolerance,
)
from .workloads import (
    EPHEMERAL_SCHEMA,
    GPU_LIMITS_SCHEMA,
    GPU_PLACEMENT_SCHEMA,
    PDB_SCHEMA,
    PROBES_SCHEMA,
    RESOURCES_SCHEMA,
    ephemeral_storage,
    gpu_limits_required,
    gpu_node_placement,
    inference_http_probes,
    pdb_multi_replica,
    resources_required,
)

PACK_ENFORCEMENT = EnforcementLevel.MANDATORY
"""Pack default; every policy below sets its own level anyway."""

# The pack

POLICIES: list[Policy] = [
    ResourceValidationPolicy(
        name="k8s-pinned-images",
        description="Container images are pinned by an exact version tag or a sha256 digest, never :latest "
                    "or untagged.",
        validate=pinned_images,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PINNED_IMAGES_SCHEMA,
        remediation_steps="Use a release tag (e.g. text-generation-inference:1.3.4) or image@sha256:<digest>.",
    ),
    ResourceValidationPolicy(
        name="gpu-limits-required",
        description="On GPU platforms every inference pod limits nvidia.com/gpu.",
        validate=gpu_limits_required,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=GPU_LIMITS_SCHEMA,
        remediation_steps="Set serving.gpusPerReplica > 0 in the stack config.",
    ),
    ResourceValidationPolicy(
        name="gpu-node-placement",
        description="Pods that limit GPUs tolerate the GPU nodes' taint and select GPU nodes.",
        validate=gpu_node_placement,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=GPU_PLACEMENT_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="k8s-resources-required",
        description="Every container sets CPU and memory requests and limits.",
        validate=resources_required,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=RESOURCES_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="k8s-ephemeral-storage",
        description="Every container requests ephemeral-storage, and limits it when its pod has a sized disk "
                    "emptyDir.",
        validate=ephemeral_storage,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=EPHEMERAL_SCHEMA,
        remediation_steps="Use components/podspec.with_ephemeral_storage, which derives both from the pod's "
                          "emptyDir sizes.",
    ),
    StackValidationPolicy(
        name="k8s-pdb-multi-replica",
        description="Every Deployment or StatefulSet of more than one replica (or under an HPA that may scale it "
                    "past one) has a PodDisruptionBudget selecting its pods.",
        validate=pdb_multi_replica,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PDB_SCHEMA,
        remediation_steps="Keep components/serving.py's budget (maxUnavailable 1) for every variant of several "
                          "replicas.",
    ),
    ResourceValidationPolicy(
        name="inference-http-probes",
        description="Inference containers have HTTP startup and readiness probes.",
        validate=inference_http_probes,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=PROBES_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="no-plaintext-credentials",
        description="No well-known default credentials, and secret-named env vars come from Secrets, not "
                    "literal values.",
        validate=no_plaintext_credentials,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=CREDENTIALS_SCHEMA,
        remediation_steps="Generate credentials with pulumi-random and pass them through a Secret.",
    ),
    StackValidationPolicy(
        name="k8s-secret-data-not-literal",
        description="Kubernetes Secret values are computed from other resources, not written as literals.",
        validate=secret_data_not_literal,
        # Advisory: a value from `pulumi config set --secret` looks exactly like a literal to a policy.
        enforcement_level=EnforcementLevel.ADVISORY,
        config_schema=SECRET_DATA_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="k8s-no-public-services",
        description="Services are not of type LoadBalancer or NodePort unless the stack's policy config "
                    "allows it.",
        validate=no_public_services,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=SERVICE_SCHEMA,
    ),
    StackValidationPolicy(
        name="k8s-namespace-default-deny",
        description="Every namespace the stack creates denies all ingress and all egress by default "
                    "(NetworkPolicies with podSelector {} and no rules); other policies open what is needed.",
        validate=namespace_default_deny,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=DEFAULT_DENY_SCHEMA,
        remediation_steps="Keep components/namespace.py's default-deny policy, or exempt an add-on's namespace "
                          "with exemptNamespaces.",
    ),
    ResourceValidationPolicy(
        name="k8s-egress-excludes-internal",
        description="A NetworkPolicy egress ipBlock to the outside excepts the cluster's internal networks (pods, "
                    "Services, nodes, the API server, the metadata service).",
        validate=egress_excludes_internal,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=EGRESS_INTERNAL_SCHEMA,
        remediation_steps="Keep network.internalCidrs non-empty and covering the cluster's networks, or list a "
                          "stack's own blocks in this rule's internalCidrs.",
    ),
    ResourceValidationPolicy(
        name="datashim-dataset-read-only",
        description="Datashim Datasets mount the model weights read-only.",
        validate=dataset_read_only,
        enforcement_level=EnforcementLevel.MANDATORY,
    ),
    ResourceValidationPolicy(
        name="storage-weights-protected",
        description="The MinIO weights volume claim is protected against deletion.",
        validate=weights_volume_protected,
        # Advisory: the program keeps the claim with retainOnDelete, which policies cannot see.
        enforcement_level=EnforcementLevel.ADVISORY,
    ),
    StackValidationPolicy(
        name="split-canary-share-cap",
        description="The canary's share of serving replicas (gateway mode: of the HTTPRoute's weight) is at most the "
                    "stack's cap.",
        validate=canary_share_cap,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=CANARY_CAP_SCHEMA,
    ),
    StackValidationPolicy(
        name="split-selects-both-variants",
        description="Stable and canary TGI Deployments exist and the traffic Service selects exactly their pods "
                    "(gateway mode: the HTTPRoute has one backend Service per variant, selecting only its pods).",
        validate=split_selects_both_variants,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=TRAFFIC_SCHEMA,
    ),
    StackValidationPolicy(
        name="split-within-tolerance",
        description="The replica split (gateway mode: the HTTPRoute's weights) is within tolerance of the canary "
                    "percent declared on both TGI Deployments.",
        validate=split_within_tolerance,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=SPLIT_TOLERANCE_SCHEMA,
    ),
    StackValidationPolicy(
        name="split-route-weights",
        description="The traffic HTTPRoute's weighted rule has whole-number weights from 0 to 1,000,000 that do "
                    "not sum to 0.",
        validate=route_weights_valid,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=TRAFFIC_SCHEMA,
    ),
    StackValidationPolicy(
        name="split-route-backends-in-namespace",
        description="Every backend of the traffic HTTPRoute is a core Service in the experiment's namespace.",
        validate=route_backends_in_namespace,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=TRAFFIC_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="eks-gpu-nodegroup-tainted",
        description="EKS GPU node groups carry the nvidia.com/gpu NO_SCHEDULE taint.",
        validate=gpu_node_group_tainted,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=NODE_GROUP_TAINT_SCHEMA,
    ),
    ResourceValidationPolicy(
        name="eks-gpu-nodegroup-disk",
        description="EKS GPU node groups have disks of at least the configured size (default 100 GiB).",
        validate=gpu_node_group_disk,
        enforcement_level=EnforcementLevel.MANDATORY,
        config_schema=NODE_GROUP_DISK_SCHEMA,
    ),
]
