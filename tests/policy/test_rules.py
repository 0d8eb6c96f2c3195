"""Every rule of the pack on hand-built resources: passing, failing and not-applicable cases."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from pulumi_policy import ResourceValidationPolicy

from policy.rules import POLICIES
from tests.policy.pack_runner import (
    UNKNOWN,
    check,
    check_stack,
    deployment,
    resource,
    secret,
    tgi_container,
    traffic_service,
    variant,
)

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"
SECRET = "kubernetes:core/v1:Secret"
CONFIGMAP = "kubernetes:core/v1:ConfigMap"
PVC = "kubernetes:core/v1:PersistentVolumeClaim"
DATASET = "kubernetes:datashim.io/v1alpha1:Dataset"
NODE_GROUP = "aws:eks/nodeGroup:NodeGroup"
SERVING_RUNTIME = "kubernetes:serving.kserve.io/v1alpha1:ServingRuntime"

GPU_POD = {"tolerations": [{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"}],
           "nodeSelector": {"llm-ab/gpu": "true"}}


def gpu_tgi(gpus: str = "1") -> dict[str, Any]:
    c = tgi_container()
    c["resources"]["limits"]["nvidia.com/gpu"] = gpus
    return c


def workload(resource_type: str, containers: list[dict[str, Any]], **pod_spec: Any) -> dict[str, Any]:
    """The same pod in the shape of each workload kind."""
    pod = {"metadata": {"labels": {"app": "x"}}, "spec": {"containers": containers, **pod_spec}}
    kind = resource_type.rsplit(":", 1)[-1]
    if kind == "Pod":
        return {"metadata": {"name": "p", "labels": {"app": "x"}}, **{"spec": pod["spec"]}}
    if kind == "CronJob":
        return {"metadata": {"name": "c"}, "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": pod}}}}
    if kind == "ServingRuntime":
        return {"metadata": {"name": "rt"}, "spec": {"supportedModelFormats": [{"name": "t5"}], **pod["spec"]}}
    return {"metadata": {"name": "w"}, "spec": {"template": pod}}


WORKLOAD_TYPES = [DEPLOYMENT, "kubernetes:batch/v1:Job", "kubernetes:apps/v1:DaemonSet",
                  "kubernetes:apps/v1:StatefulSet", "kubernetes:core/v1:Pod", "kubernetes:batch/v1:CronJob",
                  SERVING_RUNTIME]


# --------------------------------------------------------------------------------------------------
# k8s-pinned-images


@pytest.mark.parametrize("image", [
    "ghcr.io/huggingface/text-generation-inference:1.3.4",
    "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z",
    "python:3.11.11-slim-bookworm",
    "localhost:5000/tgi:2.0.1",
    "ghcr.io/huggingface/text-generation-inference@sha256:" + "a" * 64,
])
def test_pinned_images_accepts_exact_versions_and_digests(image: str) -> None:
    outcome = check("k8s-pinned-images", DEPLOYMENT, deployment(containers=[tgi_container(image=image)]))
    assert outcome.violations == [] and outcome.not_applicable is None


@pytest.mark.parametrize("image", [
    "tgi:latest",
    "ghcr.io/huggingface/text-generation-inference",
    "ghcr.io/huggingface/text-generation-inference:main",
    "ghcr.io/huggingface/text-generation-inference:LATEST",
    "localhost:5000/tgi",
    "python:slim",
    "tgi@sha256:abc123",
])
def test_pinned_images_rejects_floating_tags_missing_tags_and_short_digests(image: str) -> None:
    outcome = check("k8s-pinned-images", DEPLOYMENT, deployment(containers=[tgi_container(image=image)]))
    assert outcome.violations == [f"container 'tgi' uses unpinned image '{image}'"]


@pytest.mark.parametrize("resource_type", WORKLOAD_TYPES)
def test_pinned_images_checks_every_workload_kind(resource_type: str) -> None:
    props = workload(resource_type, [{"name": "app", "image": "nginx:latest"}])
    assert check("k8s-pinned-images", resource_type, props).violations == [
        "container 'app' uses unpinned image 'nginx:latest'"]


def test_pinned_images_checks_init_containers() -> None:
    props = deployment(initContainers=[{"name": "fetch", "image": "busybox"}])
    assert check("k8s-pinned-images", DEPLOYMENT, props).violations == [
        "container 'fetch' uses unpinned image 'busybox'"]


def test_pinned_images_reports_a_container_without_image() -> None:
    props = deployment(containers=[{"name": "tgi"}])
    assert check("k8s-pinned-images", DEPLOYMENT, props).violations == ["container 'tgi' sets no image"]


def test_pinned_images_enforces_allowed_registries_from_config() -> None:
    props = deployment(containers=[tgi_container(), {"name": "side", "image": "python:3.11.11"}])
    outcome = check("k8s-pinned-images", DEPLOYMENT, props, config={"allowedRegistries": ["ghcr.io", "quay.io"]})
    assert outcome.violations == [
        "container 'side' uses image 'python:3.11.11' from registry 'docker.io', not one of ghcr.io, quay.io"]


def test_pinned_images_floating_tags_are_configurable() -> None:
    props = deployment(containers=[tgi_container(image="tgi:2024-rolling")])
    assert check("k8s-pinned-images", DEPLOYMENT, props).violations == []
    outcome = check("k8s-pinned-images", DEPLOYMENT, props, config={"floatingTags": ["2024-rolling"]})
    assert outcome.violations == ["container 'tgi' uses unpinned image 'tgi:2024-rolling'"]


def test_pinned_images_does_not_apply_to_services() -> None:
    outcome = check("k8s-pinned-images", SERVICE, {"spec": {"type": "ClusterIP"}})
    assert outcome.violations == [] and outcome.not_applicable == "not a workload"


def test_an_unknown_image_in_preview_is_left_to_the_sdks_advisory() -> None:
    outcome = check("k8s-pinned-images", DEPLOYMENT, deployment(containers=[tgi_container(image=UNKNOWN)]))
    assert outcome.violations == []
    assert outcome.unknown == "string value at .spec.template.spec.containers.0.image can't be known during preview"


# --------------------------------------------------------------------------------------------------
# gpu-limits-required


def test_gpu_limits_pass_when_inference_pods_limit_a_gpu() -> None:
    outcome = check("gpu-limits-required", DEPLOYMENT, deployment(containers=[gpu_tgi()], **GPU_POD),
                    config={"requireGpu": True})
    assert outcome.violations == [] and outcome.not_applicable is None


def test_gpu_limits_fail_for_cpu_inference_on_a_gpu_platform() -> None:
    outcome = check("gpu-limits-required", DEPLOYMENT, deployment(), config={"requireGpu": True})
    assert outcome.violations == [
        "no container ('tgi') limits nvidia.com/gpu; inference pods need a GPU on this stack (requireGpu)"]


def test_gpu_limits_allow_cpu_inference_unless_required() -> None:
    outcome = check("gpu-limits-required", DEPLOYMENT, deployment())
    assert outcome.violations == []
    assert outcome.not_applicable == "requireGpu is false: CPU inference is allowed on this stack"


def test_gpu_limits_ignore_pods_without_the_inference_labels() -> None:
    props = deployment("minio", labels={"app.kubernetes.io/name": "minio"})
    outcome = check("gpu-limits-required", DEPLOYMENT, props, config={"requireGpu": True})
    assert outcome.violations == [] and outcome.not_applicable == "not an inference pod"


def test_gpu_limits_recognise_inference_pods_by_configured_labels() -> None:
    props = deployment("vllm", labels={"app": "vllm"})
    outcome = check("gpu-limits-required", DEPLOYMENT, props,
                    config={"requireGpu": True, "inferenceLabels": {"app": "vllm"}})
    assert outcome.violations == [
        "no container ('tgi') limits nvidia.com/gpu; inference pods need a GPU on this stack (requireGpu)"]


# --------------------------------------------------------------------------------------------------
# gpu-node-placement


def test_gpu_placement_passes_with_toleration_and_node_selector() -> None:
    outcome = check("gpu-node-placement", DEPLOYMENT, deployment(containers=[gpu_tgi()], **GPU_POD))
    assert outcome.violations == [] and outcome.not_applicable is None


def test_gpu_placement_accepts_required_node_affinity_and_a_tolerate_all() -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "node.kubernetes.io/instance-type", "operator": "In",
                               "values": ["g5.xlarge"]}]}]}}}
    props = deployment(containers=[gpu_tgi()], tolerations=[{"operator": "Exists"}], affinity=affinity)
    assert check("gpu-node-placement", DEPLOYMENT, props).violations == []


def test_gpu_placement_fails_without_toleration_or_node_selection() -> None:
    outcome = check("gpu-node-placement", DEPLOYMENT, deployment(containers=[gpu_tgi()]))
    assert outcome.violations == [
        "pod limits nvidia.com/gpu but does not tolerate the GPU taint nvidia.com/gpu:NoSchedule",
        "pod limits nvidia.com/gpu but selects no GPU nodes (set a nodeSelector or a required nodeAffinity)",
    ]


def test_gpu_placement_needs_the_noschedule_effect_tolerated() -> None:
    props = deployment(containers=[gpu_tgi()], nodeSelector={"gpu": "yes"},
                       tolerations=[{"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoExecute"}])
    assert check("gpu-node-placement", DEPLOYMENT, props).violations == [
        "pod limits nvidia.com/gpu but does not tolerate the GPU taint nvidia.com/gpu:NoSchedule"]


def test_gpu_placement_checks_serving_runtimes_at_spec_level() -> None:
    props = workload(SERVING_RUNTIME, [{"name": "triton", "image": "nvcr.io/triton:24.01",
                                        "resources": {"limits": {"nvidia.com/gpu": "1"}}}], **GPU_POD)
    assert check("gpu-node-placement", SERVING_RUNTIME, props).violations == []
    del props["spec"]["nodeSelector"]
    assert check("gpu-node-placement", SERVING_RUNTIME, props).violations == [
        "pod limits nvidia.com/gpu but selects no GPU nodes (set a nodeSelector or a required nodeAffinity)"]


def test_gpu_placement_does_not_apply_to_cpu_pods() -> None:
    outcome = check("gpu-node-placement", DEPLOYMENT, deployment())
    assert outcome.violations == [] and outcome.not_applicable == "no nvidia.com/gpu limit"


# --------------------------------------------------------------------------------------------------
# k8s-resources-required


def test_resources_pass_with_cpu_and_memory_requests_and_limits() -> None:
    outcome = check("k8s-resources-required", DEPLOYMENT, deployment())
    assert outcome.violations == [] and outcome.not_applicable is None


def test_resources_name_each_missing_value() -> None:
    props = deployment(containers=[tgi_container(resources={"requests": {"cpu": "1"}, "limits": {"memory": "1Gi"}})])
    assert check("k8s-resources-required", DEPLOYMENT, props).violations == [
        "container 'tgi' sets no requests.memory, limits.cpu"]


def test_resources_without_any_resources_block() -> None:
    props = deployment(initContainers=[{"name": "init", "image": "busybox:1.36"}])
    assert check("k8s-resources-required", DEPLOYMENT, props).violations == [
        "container 'init' sets no requests.cpu, requests.memory, limits.cpu, limits.memory"]


def test_resources_cpu_limit_can_be_waived_by_config() -> None:
    props = deployment(containers=[tgi_container(resources={"requests": {"cpu": "1", "memory": "1Gi"},
                                                            "limits": {"memory": "1Gi"}})])
    assert check("k8s-resources-required", DEPLOYMENT, props, config={"requireCpuLimit": False}).violations == []


def test_resources_skip_exempt_add_on_namespaces() -> None:
    props = deployment("dataset-operator", namespace="dlf", containers=[{"name": "op", "image": "op:0.4.1"}])
    outcome = check("k8s-resources-required", DEPLOYMENT, props, config={"exemptNamespaces": ["kube-system", "dlf"]})
    assert outcome.violations == [] and outcome.not_applicable == "namespace dlf is exempt"
    assert check("k8s-resources-required", DEPLOYMENT, props).violations == [
        "container 'op' sets no requests.cpu, requests.memory, limits.cpu, limits.memory"]


def test_resources_do_not_apply_to_services() -> None:
    outcome = check("k8s-resources-required", SERVICE, {"spec": {}})
    assert outcome.violations == [] and outcome.not_applicable == "not a workload"


# --------------------------------------------------------------------------------------------------
# k8s-ephemeral-storage

DISK = {"requests": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1280Mi"},
        "limits": {"cpu": "1", "memory": "1Gi", "ephemeral-storage": "1280Mi"}}
TMP = [{"name": "tmp", "emptyDir": {"sizeLimit": "1Gi"}}, {"name": "shm", "emptyDir": {"medium": "Memory"}}]


def test_ephemeral_storage_passes_with_a_request_and_a_limit_for_sized_scratch() -> None:
    props = deployment(containers=[tgi_container(resources=DISK)], volumes=TMP)
    outcome = check("k8s-ephemeral-storage", DEPLOYMENT, props)
    assert outcome.violations == [] and outcome.not_applicable is None
    request_only = {"requests": DISK["requests"], "limits": {"cpu": "1", "memory": "1Gi"}}
    props = deployment(containers=[tgi_container(resources=request_only)], volumes=[TMP[1]])  # memory only
    assert check("k8s-ephemeral-storage", DEPLOYMENT, props).violations == []


def test_ephemeral_storage_names_what_each_container_misses() -> None:
    props = deployment(containers=[tgi_container()], volumes=TMP)  # cpu and memory only, as scanners found
    assert check("k8s-ephemeral-storage", DEPLOYMENT, props).violations == [
        "container 'tgi' sets no requests.ephemeral-storage, limits.ephemeral-storage (the pod has sized "
        "emptyDirs: tmp)"]
    assert check("k8s-ephemeral-storage", DEPLOYMENT, deployment()).violations == [
        "container 'tgi' sets no requests.ephemeral-storage"]


def test_ephemeral_storage_skips_exempt_add_on_namespaces_and_other_types() -> None:
    props = deployment("dataset-operator", namespace="dlf", containers=[{"name": "op", "image": "op:0.4.1"}])
    outcome = check("k8s-ephemeral-storage", DEPLOYMENT, props, config={"exemptNamespaces": ["dlf"]})
    assert outcome.violations == [] and outcome.not_applicable == "namespace dlf is exempt"
    assert check("k8s-ephemeral-storage", SERVICE, {"spec": {}}).not_applicable == "not a workload"


# --------------------------------------------------------------------------------------------------
# k8s-pdb-multi-replica

PDB_TYPE = "kubernetes:policy/v1:PodDisruptionBudget"
HPA_TYPE = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
STABLE = {"run": "text-generation-inference", "type": "stable"}


def budget(selector: dict, namespace: str = "llm-ab-dev") -> Any:
    return resource(PDB_TYPE, "tgi-stable-pdb", {"metadata": {"namespace": namespace},
                                                 "spec": {"maxUnavailable": 1, "selector": {"matchLabels": selector}}})


def hpa(max_replicas: int) -> Any:
    return resource(HPA_TYPE, "hpa", {"metadata": {"namespace": "llm-ab-dev"}, "spec": {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "text-generation-inference-stable"},
        "minReplicas": 1, "maxReplicas": max_replicas}})


def stable_deploy(**overrides: Any) -> Any:
    return resource(DEPLOYMENT, "tgi-stable-deploy", deployment(**overrides))


def test_a_workload_of_several_replicas_with_a_budget_selecting_its_pods_passes() -> None:
    assert check_stack("k8s-pdb-multi-replica", [stable_deploy(replicas=3), budget(STABLE)]).violations == []
    assert check_stack("k8s-pdb-multi-replica", [stable_deploy(replicas=3), budget({"type": "stable"})]).violations \
        == []
    assert check_stack("k8s-pdb-multi-replica", [stable_deploy(replicas=1)]).violations == []


def test_several_replicas_without_a_budget_or_with_one_for_other_pods_fail() -> None:
    expected = ("Deployment 'text-generation-inference-stable' runs up to 3 replicas but no PodDisruptionBudget in "
                "namespace 'llm-ab-dev' selects its pods: a node drain may evict them all at once")
    assert check_stack("k8s-pdb-multi-replica", [stable_deploy(replicas=3)]).violations == [expected]
    canary_only = budget({**STABLE, "type": "canary"})
    assert check_stack("k8s-pdb-multi-replica", [stable_deploy(replicas=3), canary_only]).violations == [expected]
    elsewhere = budget(STABLE, namespace="other")
    assert check_stack("k8s-pdb-multi-replica", [stable_deploy(replicas=3), elsewhere]).violations == [expected]


def test_an_hpa_that_may_scale_past_one_needs_the_budget_too() -> None:
    (message,) = check_stack("k8s-pdb-multi-replica", [stable_deploy(replicas=1), hpa(4)]).violations
    assert "runs up to 4 replicas" in message
    assert check_stack("k8s-pdb-multi-replica", [stable_deploy(replicas=1), hpa(1)]).violations == []


def test_the_budget_rule_skips_exempt_namespaces() -> None:
    found = check_stack("k8s-pdb-multi-replica", [stable_deploy(replicas=3)],
                        config={"exemptNamespaces": ["llm-ab-dev"]})
    assert found.violations == []


# --------------------------------------------------------------------------------------------------
# inference-http-probes


def test_probes_pass_with_http_startup_and_readiness() -> None:
    outcome = check("inference-http-probes", DEPLOYMENT, deployment())
    assert outcome.violations == [] and outcome.not_applicable is None


def test_probes_fail_when_missing_or_not_http() -> None:
    c = tgi_container(readinessProbe={"tcpSocket": {"port": "http"}})
    del c["startupProbe"]
    assert check("inference-http-probes", DEPLOYMENT, deployment(containers=[c])).violations == [
        "container 'tgi' has no startupProbe",
        "container 'tgi' has a readinessProbe that is not an HTTP check (httpGet)",
    ]


def test_probes_do_not_apply_to_other_pods() -> None:
    outcome = check("inference-http-probes", DEPLOYMENT, deployment("minio", labels={"app": "minio"}))
    assert outcome.violations == [] and outcome.not_applicable == "not an inference pod"


# --------------------------------------------------------------------------------------------------
# no-plaintext-credentials


def test_generated_secret_values_pass_even_though_policies_see_them_unwrapped() -> None:
    props = {"metadata": {"name": "root"},
             "stringData": secret({"MINIO_ROOT_USER": "Zt8kq0", "MINIO_ROOT_PASSWORD": "p4Xv9w2Lr"})}
    assert check("no-plaintext-credentials", SECRET, props).violations == []


def test_default_minio_credentials_are_caught_inside_a_pulumi_secret() -> None:
    props = {"stringData": secret({"MINIO_ROOT_USER": "minioadmin", "MINIO_ROOT_PASSWORD": "minioadmin"})}
    assert check("no-plaintext-credentials", SECRET, props).violations == [
        "stringData.MINIO_ROOT_USER contains the well-known default credential 'minioadmin'",
        "stringData.MINIO_ROOT_PASSWORD contains the well-known default credential 'minioadmin'",
    ]


def test_default_credentials_are_caught_in_base64_secret_data() -> None:
    props = {"data": {"password": base64.b64encode(b"minioadmin").decode()}}
    assert check("no-plaintext-credentials", SECRET, props).violations == [
        "data.password contains the well-known default credential 'minioadmin'"]


def test_placeholder_keys_are_rejected_where_credentials_live() -> None:
    props = {"stringData": {"AWS_ACCESS_KEY_ID": "ACCESS_KEY", "AWS_SECRET_ACCESS_KEY": "SECRET_KEY"}}
    assert check("no-plaintext-credentials", SECRET, props).violations == [
        "stringData.AWS_ACCESS_KEY_ID is the placeholder credential 'ACCESS_KEY'",
        "stringData.AWS_SECRET_ACCESS_KEY is the placeholder credential 'SECRET_KEY'",
    ]


def test_placeholder_keys_in_a_dataset_are_rejected() -> None:
    props = {"metadata": {"name": "model-weights"},
             "spec": {"local": {"type": "COS", "accessKeyID": "ACCESS_KEY", "readonly": "true"}}}
    assert check("no-plaintext-credentials", DATASET, props).violations == [
        "spec.local.accessKeyID is the placeholder credential 'ACCESS_KEY'"]


def test_secret_named_env_vars_must_not_be_literal() -> None:
    c = tgi_container(env=[
        {"name": "AWS_SECRET_ACCESS_KEY", "value": "s3cr3tv4lu3"},
        {"name": "AWS_ACCESS_KEY_ID", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "id"}}},
        {"name": "HF_TOKEN", "value": ""},
        {"name": "WRITER_SECRET_NAME", "value": "weights-writer"},
        {"name": "MAX_TOTAL_TOKENS", "value": "1024"},
    ])
    assert check("no-plaintext-credentials", DEPLOYMENT, deployment(containers=[c])).violations == [
        "container 'tgi' sets AWS_SECRET_ACCESS_KEY from a literal value; use valueFrom.secretKeyRef or envFrom a "
        "Secret"]


def test_default_credentials_in_a_command_line_are_caught() -> None:
    c = {"name": "mc", "image": "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z",
         "command": ["/bin/sh", "-c", "mc alias set s3 http://minio:9000 minioadmin minioadmin"]}
    assert check("no-plaintext-credentials", "kubernetes:batch/v1:Job", workload("kubernetes:batch/v1:Job", [c])
                 ).violations == [
        "spec.template.spec.containers[0].command[2] contains the well-known default credential 'minioadmin'"]


def test_default_credentials_are_rejected_in_any_resource_type() -> None:
    props = {"data": {"mc.json": '{"url": "http://minio:9000", "accessKey": "minioadmin"}'}}
    assert check("no-plaintext-credentials", CONFIGMAP, props).violations == [
        "data.mc.json contains the well-known default credential 'minioadmin'"]


def test_placeholder_words_in_shipped_code_are_not_credentials() -> None:
    props = {"data": {"stage_model.py": "password = os.environ['SECRET_KEY']  # never logged"}}
    assert check("no-plaintext-credentials", CONFIGMAP, props).violations == []


def test_unknown_values_are_skipped_but_a_secret_named_env_value_is_still_a_literal() -> None:
    c = tgi_container(env=[{"name": "S3_ENDPOINT", "value": UNKNOWN},
                           {"name": "MINIO_ROOT_PASSWORD", "value": UNKNOWN}])
    outcome = check("no-plaintext-credentials", DEPLOYMENT, deployment(containers=[c]))
    assert outcome.unknown is None
    assert outcome.violations == [
        "container 'tgi' sets MINIO_ROOT_PASSWORD from a literal value; use valueFrom.secretKeyRef or envFrom a Secret"]


# --------------------------------------------------------------------------------------------------
# k8s-secret-data-not-literal (stack)

PASSWORD = "random:index/randomPassword:RandomPassword"


def test_secret_values_computed_from_generated_passwords_pass() -> None:
    generated = resource(PASSWORD, "root-password", {"length": 40})
    root = resource(SECRET, "weights-root", {"stringData": secret({"MINIO_ROOT_PASSWORD": "x" * 40})},
                    property_dependencies={"stringData": [generated]})
    assert check_stack("k8s-secret-data-not-literal", [generated, root]).violations == []


def test_literal_secret_values_are_reported_with_the_secrets_urn() -> None:
    literal = resource(SECRET, "weights-root", {"metadata": {"name": "minio-root"},
                                                "stringData": secret({"MINIO_ROOT_PASSWORD": "hunter22"})})
    outcome = check_stack("k8s-secret-data-not-literal", [literal])
    assert outcome.violations == [
        "Secret 'minio-root' sets stringData from literals (or stack config), not from a generating resource; "
        "generate it (pulumi-random) or list it in allowedSecrets"]
    assert outcome.urns == [literal.urn]


def test_secret_outputs_after_up_count_the_input_dependencies() -> None:
    """After `up` a stack policy sees the API server's `data`; the dependencies are on `stringData`."""
    generated = resource(PASSWORD, "root-password", {"length": 40})
    root = resource(SECRET, "weights-root", {"data": secret({"MINIO_ROOT_PASSWORD": "eHh4eA=="})},
                    property_dependencies={"stringData": [generated]})
    assert check_stack("k8s-secret-data-not-literal", [generated, root]).violations == []


def test_empty_secret_values_and_allowed_secrets_pass() -> None:
    empty = resource(SECRET, "dataset-credentials", {"stringData": {"accessKeyID": "", "secretAccessKey": ""}})
    from_config = resource(SECRET, "hub-token", {"stringData": {"HF_TOKEN": "hf_abc"}})
    outcome = check_stack("k8s-secret-data-not-literal", [empty, from_config], config={"allowedSecrets": ["hub-token"]})
    assert outcome.violations == []


# --------------------------------------------------------------------------------------------------
# k8s-no-public-services


@pytest.mark.parametrize("spec", [{"type": "ClusterIP"}, {}, {"type": "ExternalName", "externalName": "x.example"}])
def test_cluster_internal_services_pass(spec: dict[str, Any]) -> None:
    assert check("k8s-no-public-services", SERVICE, {"metadata": {"name": "minio"}, "spec": spec}).violations == []


@pytest.mark.parametrize("kind", ["LoadBalancer", "NodePort"])
def test_load_balancer_and_node_port_services_are_rejected(kind: str) -> None:
    props = {"metadata": {"name": "text-generation-inference"}, "spec": {"type": kind}}
    assert check("k8s-no-public-services", SERVICE, props).violations == [
        f"Service 'text-generation-inference' is of type {kind}, which exposes it outside the cluster; "
        "allowed types: ClusterIP, ExternalName"]


def test_exposure_can_be_allowed_by_type_or_by_service_name() -> None:
    props = {"metadata": {"name": "gateway"}, "spec": {"type": "LoadBalancer"}}
    assert check("k8s-no-public-services", SERVICE, props, config={"allowedServices": ["gateway"]}).violations == []
    allowed = {"allowedTypes": ["ClusterIP", "LoadBalancer"]}
    assert check("k8s-no-public-services", SERVICE, props, config=allowed).violations == []


def test_public_service_rule_does_not_apply_to_deployments() -> None:
    outcome = check("k8s-no-public-services", DEPLOYMENT, deployment())
    assert outcome.violations == [] and outcome.not_applicable == "not a Service"


# --------------------------------------------------------------------------------------------------
# datashim-dataset-read-only


def dataset(**local: Any) -> dict[str, Any]:
    return {"metadata": {"name": "model-weights"},
            "spec": {"local": {"type": "COS", "bucket": "model-weights", **local}}}


def test_read_only_dataset_passes() -> None:
    outcome = check("datashim-dataset-read-only", DATASET, dataset(readonly="true"))
    assert outcome.violations == [] and outcome.not_applicable is None


@pytest.mark.parametrize(("local", "shown"), [({"readonly": "false"}, "'false'"), ({}, "unset"),
                                              ({"readonly": True}, "True")])
def test_writable_or_unset_dataset_fails(local: dict[str, Any], shown: str) -> None:
    assert check("datashim-dataset-read-only", DATASET, dataset(**local)).violations == [
        f"Dataset 'model-weights' is not read-only: spec.local.readonly is {shown}, expected the string 'true'"]


def test_dataset_rule_does_not_apply_to_claims() -> None:
    assert check("datashim-dataset-read-only", PVC, {"spec": {}}).not_applicable == "not a Datashim Dataset"


# --------------------------------------------------------------------------------------------------
# storage-weights-protected

WEIGHTS_CLAIM = {"metadata": {"labels": {"app.kubernetes.io/component": "object-store"}},
                 "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}}}}


def test_protected_weights_claim_passes() -> None:
    outcome = check("storage-weights-protected", PVC, WEIGHTS_CLAIM, protect=True, resource_name="weights-data")
    assert outcome.violations == [] and outcome.not_applicable is None


def test_unprotected_weights_claim_is_reported_because_retain_on_delete_is_invisible() -> None:
    outcome = check("storage-weights-protected", PVC, WEIGHTS_CLAIM, resource_name="weights-data")
    assert outcome.violations == [
        "weights volume claim 'weights-data' is not protected; retainOnDelete is invisible to policies (the engine "
        "sends only `protect`), so only protect=True satisfies this check"]


def test_other_claims_are_not_the_weights_volume() -> None:
    outcome = check("storage-weights-protected", PVC, {"metadata": {"labels": {"app": "cache"}}})
    assert outcome.violations == [] and outcome.not_applicable == "not the weights volume claim"


# --------------------------------------------------------------------------------------------------
# split-canary-share-cap


def test_canary_share_at_the_default_cap_passes() -> None:
    outcome = check_stack("split-canary-share-cap", [variant("stable", 1), variant("canary", 1)])
    assert outcome.violations == [] and outcome.not_applicable is None


def test_canary_share_above_the_cap_fails() -> None:
    outcome = check_stack("split-canary-share-cap", [variant("stable", 1), variant("canary", 3)])
    assert outcome.violations == ["the canary runs 3 of 4 serving replicas (75%), above this stack's cap of 50%"]


def test_canary_cap_is_set_per_stack_by_config() -> None:
    prod = {"maxCanaryPercent": 20}
    assert check_stack("split-canary-share-cap", [variant("stable", 6), variant("canary", 1)], config=prod
                       ).violations == []
    assert check_stack("split-canary-share-cap", [variant("stable", 3), variant("canary", 1)], config=prod
                       ).violations == ["the canary runs 1 of 4 serving replicas (25%), above this stack's cap of 20%"]


def test_canary_cap_does_not_apply_without_tgi_replicas() -> None:
    outcome = check_stack("split-canary-share-cap", [resource(SERVICE, "svc", {"spec": {}})])
    assert outcome.violations == [] and outcome.not_applicable == "no serving replicas"


# --------------------------------------------------------------------------------------------------
# split-selects-both-variants


def test_traffic_service_selecting_both_variants_passes() -> None:
    stack = [variant("stable", 1), variant("canary", 1), traffic_service()]
    assert check_stack("split-selects-both-variants", stack).violations == []


def test_missing_canary_and_missing_service_are_reported() -> None:
    assert check_stack("split-selects-both-variants", [variant("stable", 2)]).violations == [
        "no canary TGI Deployment (pod labels run=text-generation-inference, type=canary)",
        "no traffic Service 'text-generation-inference'",
    ]


def test_selector_that_pins_one_variant_misses_the_other() -> None:
    svc = traffic_service(selector={"run": "text-generation-inference", "type": "stable"})
    outcome = check_stack("split-selects-both-variants", [variant("stable", 1), variant("canary", 1), svc])
    assert outcome.violations == [
        "traffic Service selector {run=text-generation-inference, type=stable} does not select the canary pods of "
        "Deployment 'text-generation-inference-canary'"]
    assert outcome.urns == [svc.urn]


def test_selector_must_not_select_other_pods_in_its_namespace() -> None:
    shadow = resource(DEPLOYMENT, "shadow", deployment("tgi-shadow", labels={"run": "text-generation-inference"}))
    elsewhere = resource(DEPLOYMENT, "other-ns", deployment(
        "tgi-elsewhere", labels={"run": "text-generation-inference"}, namespace="team-b"))
    stack = [variant("stable", 1), variant("canary", 1), traffic_service(), shadow, elsewhere]
    outcome = check_stack("split-selects-both-variants", stack)
    assert outcome.violations == [
        "traffic Service selector {run=text-generation-inference} also selects the pods of Deployment 'tgi-shadow'"]
    assert outcome.urns == [shadow.urn]


def test_traffic_service_without_selector_fails() -> None:
    svc = resource(SERVICE, "traffic-svc", {"metadata": {"name": "text-generation-inference"}, "spec": {}})
    assert check_stack("split-selects-both-variants", [variant("stable", 1), variant("canary", 1), svc]
                       ).violations == ["traffic Service 'text-generation-inference' has no selector"]


# --------------------------------------------------------------------------------------------------
# split-within-tolerance


def split(stable: int, canary: int, *, declared: str | None = "10", tolerance: str | None = "5") -> list[Any]:
    """Both TGI variants declaring the same split, plus the traffic Service (which carries no split)."""
    return [variant("stable", stable, declared=declared, tolerance=tolerance),
            variant("canary", canary, declared=declared, tolerance=tolerance), traffic_service()]


def test_effective_split_within_tolerance_passes() -> None:
    outcome = check_stack("split-within-tolerance", split(6, 1))
    assert outcome.violations == [] and outcome.not_applicable is None


def test_effective_split_beyond_tolerance_fails_like_the_program_would() -> None:
    outcome = check_stack("split-within-tolerance", split(1, 1))
    assert outcome.violations == [
        "1 of 2 serving replicas give a 50% canary, 40 points from the declared 10%, more than the tolerance of 5"]
    assert outcome.urns == [None]


def test_tolerance_falls_back_to_policy_config_without_the_annotation() -> None:
    stack = split(1, 1, declared="40", tolerance=None)
    assert check_stack("split-within-tolerance", stack).violations == [
        "1 of 2 serving replicas give a 50% canary, 10 points from the declared 40%, more than the tolerance of 5"]
    assert check_stack("split-within-tolerance", stack, config={"tolerance": 10}).violations == []


def test_tgi_deployment_without_declared_percent_fails() -> None:
    stable, canary = variant("stable", 1, declared="50"), variant("canary", 1, declared=None)
    outcome = check_stack("split-within-tolerance", [stable, canary, traffic_service()])
    assert outcome.violations == [
        "TGI Deployment 'text-generation-inference-canary' declares no canary percent "
        "(annotation llm-ab/declared-canary-percent is None)"]
    assert outcome.urns == [canary.urn]


def test_tgi_deployments_that_declare_different_splits_fail() -> None:
    stack = [variant("stable", 1, declared="50"), variant("canary", 1, declared="40"), traffic_service()]
    assert check_stack("split-within-tolerance", stack).violations == [
        "the TGI Deployments disagree on annotation llm-ab/declared-canary-percent: "
        "'text-generation-inference-stable' has '50', 'text-generation-inference-canary' has '40'"]
    same = [variant("stable", 1, declared="50"), variant("canary", 1, declared="50.0"), traffic_service()]
    assert check_stack("split-within-tolerance", same).violations == []


def test_tgi_deployments_that_declare_different_tolerances_fail() -> None:
    stack = [variant("stable", 1, tolerance="5"), variant("canary", 1, tolerance=None), traffic_service()]
    assert check_stack("split-within-tolerance", stack).violations == [
        "the TGI Deployments disagree on annotation llm-ab/split-tolerance: "
        "'text-generation-inference-stable' has '5', 'text-generation-inference-canary' has None"]


def test_split_tolerance_does_not_apply_without_tgi_deployments() -> None:
    outcome = check_stack("split-within-tolerance", [traffic_service()])
    assert outcome.violations == [] and outcome.not_applicable == "no TGI Deployments"


# --------------------------------------------------------------------------------------------------
# eks-gpu-nodegroup-tainted and eks-gpu-nodegroup-disk

GPU_TAINT = [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_SCHEDULE"}]


def node_group(**props: Any) -> dict[str, Any]:
    base = {"clusterName": "llm-ab", "instanceTypes": ["g5.xlarge"], "amiType": "AL2023_x86_64_NVIDIA",
            "diskSize": 200, "taints": GPU_TAINT, "scalingConfig": {"desiredSize": 1, "minSize": 0, "maxSize": 2}}
    base.update(props)
    return base


def test_tainted_gpu_node_group_passes() -> None:
    outcome = check("eks-gpu-nodegroup-tainted", NODE_GROUP, node_group())
    assert outcome.violations == [] and outcome.not_applicable is None


@pytest.mark.parametrize("taints", [[], [{"key": "nvidia.com/gpu", "value": "true", "effect": "NO_EXECUTE"}]])
def test_gpu_node_group_without_noschedule_taint_fails(taints: list[dict[str, str]]) -> None:
    assert check("eks-gpu-nodegroup-tainted", NODE_GROUP, node_group(taints=taints)).violations == [
        "GPU node group has no nvidia.com/gpu taint with effect NO_SCHEDULE, so any pod can take its GPU nodes"]


def test_gpu_node_groups_are_recognised_by_ami_type_alone() -> None:
    props = node_group(instanceTypes=["t3.large"], amiType="AL2_x86_64_GPU", taints=[])
    assert check("eks-gpu-nodegroup-tainted", NODE_GROUP, props).violations != []


def test_cpu_node_groups_need_no_gpu_taint() -> None:
    props = node_group(instanceTypes=["m6i.large"], amiType="AL2023_x86_64_STANDARD", taints=[])
    outcome = check("eks-gpu-nodegroup-tainted", NODE_GROUP, props)
    assert outcome.violations == [] and outcome.not_applicable == "not an EKS GPU node group"


def test_gpu_node_group_disk_large_enough_passes() -> None:
    assert check("eks-gpu-nodegroup-disk", NODE_GROUP, node_group(diskSize=100)).violations == []


def test_gpu_node_group_disk_too_small_or_default_fails() -> None:
    assert check("eks-gpu-nodegroup-disk", NODE_GROUP, node_group(diskSize=50)).violations == [
        "GPU node group disk is 50 GiB, below the minimum of 100 GiB"]
    props = node_group()
    del props["diskSize"]
    assert check("eks-gpu-nodegroup-disk", NODE_GROUP, props).violations == [
        "GPU node group sets no diskSize, so it gets the EKS default of 20 GiB, below the minimum of 100 GiB"]


def test_gpu_node_group_disk_minimum_is_configurable() -> None:
    outcome = check("eks-gpu-nodegroup-disk", NODE_GROUP, node_group(diskSize=200), config={"minDiskSizeGib": 300})
    assert outcome.violations == ["GPU node group disk is 200 GiB, below the minimum of 300 GiB"]


def test_gpu_node_group_disk_from_a_launch_template_is_not_checked_here() -> None:
    props = node_group(launchTemplate={"id": "lt-123", "version": "1"})
    del props["diskSize"]
    outcome = check("eks-gpu-nodegroup-disk", NODE_GROUP, props)
    assert outcome.violations == []
    assert outcome.not_applicable == "the disk is set by the node group's launch template"


# --------------------------------------------------------------------------------------------------
# All rules


@pytest.mark.parametrize("policy", [p.name for p in POLICIES if isinstance(p, ResourceValidationPolicy)])
def test_no_resource_rule_reports_an_unrelated_resource(policy: str) -> None:
    outcome = check(policy, CONFIGMAP, {"metadata": {"name": "settings"}, "data": {"LOG_LEVEL": "info"}})
    assert outcome.violations == [] and outcome.unknown is None

