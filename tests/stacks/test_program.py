"""The whole dev program under mocks: __main__.py with Pulumi.dev.yaml, checked manifest by manifest."""

from __future__ import annotations

from typing import Any

import pytest

from tests.harness import RecordingMocks, is_secret_value, unsecret
from tests.samples import dev_config

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
SERVICE = "kubernetes:core/v1:Service"


@pytest.fixture
def dev(run_main, pulumi_mocks: RecordingMocks):
    exported = run_main(dev_config())
    return pulumi_mocks, exported


def container(deployment: Any) -> dict[str, Any]:
    return deployment.inputs["spec"]["template"]["spec"]["containers"][0]


def env_of(c: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value") for e in c["env"]}


def test_namespace_opts_in_to_datashim(dev) -> None:
    mocks, _ = dev
    (ns,) = mocks.of_type("kubernetes:core/v1:Namespace")
    assert ns.inputs["metadata"]["name"] == "llm-ab-dev"
    assert ns.inputs["metadata"]["labels"]["monitor-pods-datasets"] == "enabled"


@pytest.mark.parametrize(("variant", "model"), [("stable", "flan-t5-small"), ("canary", "flan-t5-base")])
def test_each_variant_serves_its_staged_model_from_the_dataset(dev, variant: str, model: str) -> None:
    mocks, _ = dev
    deploy = mocks.k8s_named("apps/v1:Deployment", f"text-generation-inference-{variant}")
    labels = deploy.inputs["spec"]["template"]["metadata"]["labels"]
    assert labels["run"] == "text-generation-inference" and labels["type"] == variant
    assert labels["dataset.0.id"] == "model-weights" and labels["dataset.0.useas"] == "mount"
    env = env_of(container(deploy))
    assert env["MODEL_ID"].startswith(f"/mnt/datasets/model-weights/{model}/"), deploy.name
    assert env["HF_HUB_OFFLINE"] == "1"
    # TGI 1.3.4 predates the 2.1 rename of max-input-length.
    assert env["MAX_INPUT_LENGTH"] == "512" and "MAX_INPUT_TOKENS" not in env
    assert deploy.inputs["spec"]["replicas"] == 1


def test_tgi_pods_are_hardened_and_probed(dev) -> None:
    mocks, _ = dev
    for deploy in mocks.of_type(DEPLOYMENT):
        if not deploy.inputs["metadata"].get("name", "").startswith("text-generation-inference"):
            continue
        spec = deploy.inputs["spec"]["template"]["spec"]
        assert spec["enableServiceLinks"] is False, deploy.name
        shm = next(v for v in spec["volumes"] if v["name"] == "shm")
        assert shm["emptyDir"]["medium"] == "Memory", deploy.name
        c = container(deploy)
        assert c["startupProbe"]["httpGet"]["path"] == "/health", deploy.name
        assert c["readinessProbe"]["httpGet"]["path"] == "/health", deploy.name
        # 1200 s budget / 10 s period.
        assert c["startupProbe"]["failureThreshold"] == 120, deploy.name
        assert "nvidia.com/gpu" not in c["resources"]["limits"], deploy.name
        assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_tgi_waits_longer_than_pulumis_default(dev) -> None:
    mocks, _ = dev
    for name in ("tgi-stable-deploy", "tgi-canary-deploy"):
        timeouts = mocks.options[name].custom_timeouts
        assert timeouts is not None and timeouts.create == "1500s" and timeouts.update == "1500s", name


def test_traffic_service_selects_both_variants_only_by_run_label(dev) -> None:
    mocks, _ = dev
    svc = mocks.k8s_named("core/v1:Service", "text-generation-inference")
    assert svc.inputs["spec"]["selector"] == {"run": "text-generation-inference"}
    assert svc.inputs["spec"]["type"] == "ClusterIP"
    for s in mocks.of_type(SERVICE):
        assert s.inputs["spec"]["type"] == "ClusterIP", s.name


def test_dataset_is_read_only_cos_with_string_values_and_a_separate_secret(dev) -> None:
    mocks, _ = dev
    (ds,) = [r for r in mocks.of_type("kubernetes:datashim.io/v1alpha1:Dataset")]
    local = ds.inputs["spec"]["local"]
    assert all(isinstance(v, str) for v in local.values()), local
    assert local["type"] == "COS" and local["readonly"] == "true" and local["bucket"] == "model-weights"
    assert local["endpoint"] == "http://minio.llm-ab-dev.svc.cluster.local:9000"
    assert local["secret-name"] != ds.inputs["metadata"]["name"]
    secret = mocks.k8s_named("core/v1:Secret", local["secret-name"])
    assert is_secret_value(secret.inputs["stringData"]), "credentials must be recorded as a secret"
    assert set(unsecret(secret.inputs["stringData"])) == {"accessKeyID", "secretAccessKey"}


def test_minio_keeps_its_data_and_is_never_exposed(dev) -> None:
    mocks, _ = dev
    (pvc,) = mocks.of_type("kubernetes:core/v1:PersistentVolumeClaim")
    assert mocks.options[pvc.name].retain_on_delete is True
    (ns,) = mocks.of_type("kubernetes:core/v1:Namespace")
    assert mocks.options[ns.name].retain_on_delete is True
    minio = mocks.k8s_named("core/v1:Service", "minio")
    assert minio.inputs["spec"]["type"] == "ClusterIP"
    deploy = mocks.named("weights-deploy")
    pod = deploy.inputs["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    c = pod["containers"][0]
    assert c["readinessProbe"]["httpGet"]["path"] == "/minio/health/ready"
    assert c["livenessProbe"]["httpGet"]["path"] == "/minio/health/live"


def test_credentials_are_generated_and_only_secret(dev, is_secret) -> None:
    mocks, exported = dev
    passwords = mocks.of_type("random:index/randomPassword:RandomPassword")
    assert len(passwords) == 6
    assert is_secret(exported["minioRootPassword"]) and is_secret(exported["minioRootUser"])
    root = mocks.named("weights-root")
    assert is_secret_value(root.inputs["stringData"])
    assert unsecret(root.inputs["stringData"])["MINIO_ROOT_PASSWORD"].startswith("generated-weights-root-password")


def test_staging_job_per_variant_copies_the_pinned_revision(dev) -> None:
    mocks, _ = dev
    for variant, model, sha in [("stable", "google/flan-t5-small", "0fc9ddf78a1e988dac52e2dac162b0ede4fd74ab"),
                                ("canary", "google/flan-t5-base", "7bcac572ce56db69c1ea7c8af255c5d7c9672fc2")]:
        job = mocks.named(f"staging-{variant}")
        args = job.inputs["spec"]["template"]["spec"]["containers"][0]["args"]
        assert args[args.index("--repo-id") + 1] == model
        assert args[args.index("--revision") + 1] == sha
        assert args[args.index("--prefix") + 1] == f"{model.split('/')[1]}/{sha}"
        labels = job.inputs["spec"]["template"]["metadata"]["labels"]
        assert labels["llm-ab/s3-client"] == "true", job.name


WORKLOADS = {"kubernetes:apps/v1:Deployment": ("spec", "template", "spec"),
             "kubernetes:apps/v1:DaemonSet": ("spec", "template", "spec"),
             "kubernetes:batch/v1:Job": ("spec", "template", "spec")}


def pod_specs(mocks: RecordingMocks) -> dict[str, dict[str, Any]]:
    specs = {}
    for typ, path in WORKLOADS.items():
        for r in mocks.of_type(typ):
            spec = r.inputs
            for key in path:
                spec = spec[key]
            specs[r.name] = spec
    return specs


def test_every_container_requests_the_node_disk_its_pod_writes(dev) -> None:
    """Issue 22: kube-score and checkov found no ephemeral-storage requests anywhere."""
    mocks, _ = dev
    specs = pod_specs(mocks)
    assert {"staging-stable", "staging-canary", "weights-deploy", "weights-bucket", "tgi-stable-deploy",
            "smoke-job"} <= set(specs)
    for name, spec in specs.items():
        sized = any("emptyDir" in v and v["emptyDir"].get("medium") != "Memory" for v in spec.get("volumes", []))
        for c in spec["containers"]:
            assert c["resources"]["requests"].get("ephemeral-storage"), (name, c["name"])
            assert not sized or c["resources"]["limits"].get("ephemeral-storage"), (name, c["name"])
    staging = specs["staging-stable"]["containers"][0]["resources"]
    assert staging["requests"]["ephemeral-storage"] == staging["limits"]["ephemeral-storage"] == "51456Mi"  # 50Gi+
    serving = specs["tgi-stable-deploy"]["containers"][0]["resources"]
    assert serving["requests"]["ephemeral-storage"] == "11520Mi"  # /data 10Gi, /tmp 1Gi, logs; not /dev/shm


def test_only_a_variant_of_several_replicas_gets_a_disruption_budget(run_main, pulumi_mocks) -> None:
    """Issue 22: kube-score found no PodDisruptionBudget for a variant with several replicas."""
    config = dev_config()
    config["llm-ab:split"] = {**config.get("llm-ab:split", {}), "replicas": 4, "canaryPercent": 25}
    run_main(config)
    (pdb,) = pulumi_mocks.of_type("kubernetes:policy/v1:PodDisruptionBudget")
    assert pdb.name == "tgi-stable-pdb" and pdb.inputs["spec"]["maxUnavailable"] == 1
    assert pdb.inputs["spec"]["selector"]["matchLabels"] == {"run": "text-generation-inference", "type": "stable"}


def test_the_dev_variants_of_one_replica_each_get_none(dev) -> None:
    mocks, _ = dev
    assert mocks.of_type("kubernetes:policy/v1:PodDisruptionBudget") == []


def test_outputs_show_split_replicas_gpus_and_urls(dev, resolve) -> None:
    _, exported = dev
    assert resolve(exported["split"]) == {"declaredCanaryPercent": 50.0, "effectiveCanaryPercent": 50.0,
                                          "stableReplicas": 1, "canaryReplicas": 1}
    assert exported["replicas"] == {"stable": 1, "canary": 1}
    assert exported["gpus"] == {"stable": 0, "canary": 0}
    assert resolve(exported["trafficUrl"]) == "http://text-generation-inference.llm-ab-dev.svc.cluster.local:8080"
    assert resolve(exported["canaryUrl"]) == "http://text-generation-inference-canary.llm-ab-dev.svc.cluster.local:8080"
    assert resolve(exported["bucket"]) == "model-weights" and resolve(exported["dataset"]) == "model-weights"


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("llm-ab:split", {"canaryPercent": 150, "replicas": 2},
         "llm-ab:split.canaryPercent must be a number from 0 to 100, got 150"),
        ("llm-ab:tgi", {"image": "ghcr.io/huggingface/text-generation-inference:latest"},
         "llm-ab:tgi.image must be an image pinned"),
        ("llm-ab:storage", {"bucket": "UPPER"}, "llm-ab:storage.bucket must be an S3 bucket name"),
        ("llm-ab:colour", "blue", "llm-ab:colour is not a known setting"),
    ],
)
def test_bad_config_fails_before_anything_is_registered(run_main, pulumi_mocks, key, value, message) -> None:
    import pulumi

    config = {**dev_config(), key: value}
    with pytest.raises(pulumi.RunError) as err:
        run_main(config)
    assert message in str(err.value)
    assert pulumi_mocks.resources == [], [r.name for r in pulumi_mocks.resources]


@pytest.mark.parametrize(("serving", "selector"), [
    ({"gpusPerReplica": 0}, None),
    ({"gpusPerReplica": 1}, {"nvidia.com/gpu.present": "true"}),
    ({"gpusPerReplica": 1, "nodeSelector": {"gpu-type": "a10"}}, {"gpu-type": "a10"}),
])
def test_local_gpu_replicas_select_gpu_nodes_unless_the_stack_names_its_own(
        run_main, pulumi_mocks: RecordingMocks, serving: dict[str, Any], selector: dict[str, str] | None) -> None:
    """The pack's gpu-node-placement wants a selector on every GPU pod; on a cluster the stack did not make it
    is GPU Feature Discovery's label, and a stack's own serving.nodeSelector replaces it (not every cluster runs
    GFD). (Nothing simulated here: tests/stacks/test_placement.py has the simulated GPU replica.)"""
    config = dev_config()
    run_main({**config, "llm-ab:serving": {**config["llm-ab:serving"], **serving}, "llm-ab:local": {}})
    for deploy in pulumi_mocks.of_type(DEPLOYMENT):
        if deploy.name.startswith("tgi-"):
            assert deploy.inputs["spec"]["template"]["spec"].get("nodeSelector") == selector, deploy.name


def test_a_stack_file_with_the_old_tgi_serving_keys_deploys_the_same_pods_with_a_warning(
        run_main, pulumi_mocks: RecordingMocks, monkeypatch: pytest.MonkeyPatch) -> None:
    import pulumi

    warned: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *_, **__: warned.append(message))
    config = dev_config()
    old = {**config, "llm-ab:tgi": {**config["llm-ab:tgi"], **config["llm-ab:serving"]}}
    del old["llm-ab:serving"]
    run_main(old)
    old_pods = {d.name: d.inputs["spec"]["template"] for d in pulumi_mocks.of_type(DEPLOYMENT)}
    assert warned == [f"llm-ab:tgi.{key} is now llm-ab:serving.{key} (renamed when vLLM joined TGI); it is read "
                      f"from tgi.{key} for now: move it in Pulumi.test.yaml"  # the mocks' stack
                      for key in ("gpusPerReplica", "resources", "startupBudgetSeconds")]
    pulumi_mocks.resources.clear()
    run_main(config)
    assert {d.name: d.inputs["spec"]["template"] for d in pulumi_mocks.of_type(DEPLOYMENT)} == old_pods
