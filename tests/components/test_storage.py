"""MinioStore, DatashimDataset and ModelStaging under mocks, and their pure helpers."""

from __future__ import annotations

import json

import pytest

from components.datashim import (
    DatashimDataset,
    DatashimDatasetArgs,
    credentials_secret_name,
    dataset_local_spec,
    pin_datashim_images,
)
from components.minio import MinioStore, MinioStoreArgs, bucket_init_script, bucket_policy
from components.staging import ModelStaging, ModelStagingArgs, StagedModel, read_tool_files
from tests.harness import is_secret_value

IMAGE = "quay.io/minio/minio:RELEASE.2025-09-07T16-13-09Z"


def minio(**overrides) -> MinioStore:
    base = dict(namespace="ns", stack="test", image=IMAGE, bucket="weights")
    base.update(overrides)
    return MinioStore("store", MinioStoreArgs(**base))


def test_unprotected_store_lets_destroy_delete_the_volume(run_program, pulumi_mocks) -> None:
    run_program(lambda: minio(protect=False))
    assert not pulumi_mocks.options["store-data"].retain_on_delete


def test_store_volume_uses_the_configured_size_and_class(run_program, pulumi_mocks) -> None:
    run_program(lambda: minio(size="7Gi", storage_class="fast"))
    pvc = pulumi_mocks.named("store-data")
    assert pvc.inputs["spec"]["resources"]["requests"]["storage"] == "7Gi"
    assert pvc.inputs["spec"]["storageClassName"] == "fast"
    assert pulumi_mocks.options["store-data"].retain_on_delete is True


def test_only_labelled_clients_and_extra_peers_reach_minio(run_program, pulumi_mocks) -> None:
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "dlf"}}}
    run_program(lambda: minio(extra_ingress_from=[peer]))
    policy = pulumi_mocks.named("store-netpol")
    (rule,) = policy.inputs["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"llm-ab/s3-client": "true"}}}, peer]
    assert rule["ports"] == [{"protocol": "TCP", "port": 9000}]


def test_bucket_job_runs_after_minio_with_the_root_and_user_secrets(run_program, pulumi_mocks) -> None:
    run_program(lambda: minio())
    job = pulumi_mocks.named("store-bucket")
    c = job.inputs["spec"]["template"]["spec"]["containers"][0]
    assert c["image"] == IMAGE
    assert "mc mb --ignore-existing s3/weights" in c["command"][2]
    assert pulumi_mocks.depends_on("store-bucket") == {"store-deploy", "store-svc"}
    for name in ("store-root", "store-users", "store-writer"):
        assert is_secret_value(pulumi_mocks.named(name).inputs["stringData"]), name


def test_policies_are_scoped_to_the_bucket_and_readers_cannot_write() -> None:
    read, write = bucket_policy("b", write=False), bucket_policy("b", write=True)
    read_actions = {a for s in read["Statement"] for a in s["Action"]}
    assert "s3:PutObject" not in read_actions and "s3:ListBucket" in read_actions
    assert "s3:PutObject" in {a for s in write["Statement"] for a in s["Action"]}
    assert all(r.startswith("arn:aws:s3:::b") for s in write["Statement"] for r in s["Resource"])
    script = bucket_init_script("b")
    assert json.dumps(read) in script and "mc admin user add" in script


def test_dataset_spec_values_are_all_strings_and_read_only() -> None:
    spec = dataset_local_spec(endpoint="http://m:9000", bucket="b", secret_name="s")
    assert all(isinstance(v, str) for v in spec.values())
    assert spec["readonly"] == "true" and spec["type"] == "COS" and spec["secret-name"] == "s"


def test_credentials_secret_is_never_named_like_the_dataset() -> None:
    assert credentials_secret_name("weights") != "weights"


def test_dataset_waits_for_provisioning_only_when_asked(run_program, pulumi_mocks) -> None:
    def build(await_provision: bool):
        return DatashimDataset(f"ds-{await_provision}", DatashimDatasetArgs(
            namespace="ns", stack="t", dataset_name=f"w-{str(await_provision).lower()}", endpoint="http://m:9000",
            bucket="b", access_key_id="k", secret_access_key="s", await_provision=await_provision))

    run_program(lambda: (build(True), build(False)))
    waiting = pulumi_mocks.named("ds-True-dataset").inputs["metadata"]["annotations"]
    assert waiting == {"pulumi.com/waitFor": "jsonpath={.status.provision.status}=OK"}
    assert not pulumi_mocks.named("ds-False-dataset").inputs["metadata"].get("annotations")
    assert not pulumi_mocks.of_type("kubernetes:yaml/v2:ConfigFile")


def test_release_manifest_images_are_pinned_to_the_release() -> None:
    obj = {"spec": {"template": {"spec": {
        "containers": [{"image": "quay.io/datashim-io/dataset-operator:latest"}],
        "initContainers": [{"image": "quay.io/datashim-io/generate-keys:latest"}]}}}}
    pin_datashim_images(obj, "0.4.1")
    spec = obj["spec"]["template"]["spec"]
    assert spec["containers"][0]["image"] == "quay.io/datashim-io/dataset-operator:0.4.1"
    assert spec["initContainers"][0]["image"] == "quay.io/datashim-io/generate-keys:0.4.1"


def test_staging_ships_our_tool_by_configmap_and_runs_one_job_per_model(run_program, pulumi_mocks) -> None:
    models = [StagedModel(role="stable", repo_id="org/a", revision="1" * 40, prefix="a/" + "1" * 40),
              StagedModel(role="canary", repo_id="org/b", revision="2" * 40, prefix="b/" + "2" * 40)]
    run_program(lambda: ModelStaging("stage", ModelStagingArgs(
        namespace="ns", stack="t", image="python:3.11.11-slim-bookworm", endpoint="http://m:9000", bucket="b",
        credentials_secret="writer", models=models, timeout_seconds=600)))
    tool = pulumi_mocks.named("stage-tool")
    assert tool.inputs["data"] == read_tool_files()
    assert "boto3==" in tool.inputs["data"]["requirements.lock"]
    for role in ("stable", "canary"):
        job = pulumi_mocks.named(f"stage-{role}")
        pod = job.inputs["spec"]["template"]["spec"]
        assert pod["containers"][0]["envFrom"] == [{"secretRef": {"name": "writer"}}]
        assert pod["securityContext"]["runAsNonRoot"] is True
        assert pulumi_mocks.options[f"stage-{role}"].custom_timeouts.create == "900s"


def test_both_variants_on_one_revision_are_staged_by_one_job(run_program, pulumi_mocks) -> None:
    same = dict(repo_id="org/a", revision="1" * 40, prefix="a/" + "1" * 40)
    models = [StagedModel(role="stable", **same), StagedModel(role="canary", **same)]
    run_program(lambda: ModelStaging("stage", ModelStagingArgs(
        namespace="ns", stack="t", image="python:3.11.11-slim-bookworm", endpoint="http://m:9000", bucket="b",
        credentials_secret="writer", models=models, volume_id="uid-1")))
    jobs = pulumi_mocks.of_type("kubernetes:batch/v1:Job")
    assert [j.name for j in jobs] == ["stage-stable"]
    template = jobs[0].inputs["spec"]["template"]["metadata"]
    assert template["annotations"] == {"llm-ab/model-roles": "stable,canary", "llm-ab/weights-volume": "uid-1"}


def test_two_models_claiming_one_prefix_with_different_revisions_are_refused() -> None:
    from components.staging import one_job_per_prefix

    models = [StagedModel(role="stable", repo_id="org/a", revision="1" * 40, prefix="shared"),
              StagedModel(role="canary", repo_id="org/b", revision="2" * 40, prefix="shared")]
    with pytest.raises(ValueError, match="share the bucket prefix 'shared'"):
        one_job_per_prefix(models)
