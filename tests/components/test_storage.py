"""MinioStore, DatashimDataset and ModelStaging under mocks, and their pure helpers."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest

from components.datashim import (
    DatashimDataset,
    DatashimDatasetArgs,
    credentials_secret_name,
    dataset_local_spec,
    pin_datashim_images,
)
from components.minio import BUCKET_SCRIPT_TOOLS, MinioStore, MinioStoreArgs, bucket_init_script, bucket_policy
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


# --- the bucket Job's script, run against a fake `mc` -----------------------------------------------

FAKE_MC = """#!/bin/sh
# Records every call; answers `admin user list --json` and `admin user info` from files.
printf '%s\\n' "$*" >> "$MC_CALLS"
case "$*" in
  "admin user list s3 --json") while IFS= read -r l; do printf '%s\\n' "$l"; done < "$MC_USERS" ;;
  "admin user info s3 "*) printf 'AccessKey: %s\\nPolicyName: %s\\n' "$5" "$MC_INFO_POLICY" ;;
  "admin policy attach "*) [ -z "$MC_ATTACHED" ] || { echo "policy already attached" >&2; exit 1; } ;;
esac
"""

CURRENT = {"READER_ACCESS_KEY": "ReaderNow00000000000", "WRITER_ACCESS_KEY": "WriterNow00000000000"}


def user(key: str, policy: str | None) -> dict:
    return {"status": "success", "accessKey": key, **({"policyName": policy} if policy else {}),
            "userStatus": "enabled"}


def run_bucket_script(tmp_path, users: list[dict], *, indent: int | None, shell: str = "/bin/sh",
                      attached: bool = False, info_policy: str = "llm-ab-read,llm-ab-write",
                      ) -> tuple[subprocess.CompletedProcess, list[str]]:
    """The bucket Job's script under ``shell`` with only the tools the MinIO image has on PATH: a fake
    ``mc`` that records its calls, ``tr`` and ``sleep``."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "mc").write_text(FAKE_MC)
    (bin_dir / "mc").chmod(0o755)
    for tool in BUCKET_SCRIPT_TOOLS:
        if tool != "mc" and not (bin_dir / tool).exists():
            (bin_dir / tool).symlink_to(shutil.which(tool))
    listing = "\n".join(json.dumps(u, indent=indent) for u in users)  # mc prints one JSON object per user
    (tmp_path / "mc-users.json").write_text(listing + "\n")
    calls = tmp_path / "calls"
    env = {"PATH": str(bin_dir), "TMPDIR": str(tmp_path), "MC_CALLS": str(calls),
           "MC_USERS": str(tmp_path / "mc-users.json"), "MC_INFO_POLICY": info_policy,
           "MC_ATTACHED": "1" if attached else "", "S3_ENDPOINT": "http://minio:9000",
           "MINIO_ROOT_USER": "root", "MINIO_ROOT_PASSWORD": "rootpw", "READER_SECRET_KEY": "rs",
           "WRITER_SECRET_KEY": "ws", **CURRENT}
    proc = subprocess.run([shell, "-c", bucket_init_script("weights")], env=env, capture_output=True, text=True,
                          timeout=30)
    return proc, calls.read_text().splitlines() if calls.exists() else []


@pytest.mark.parametrize("shell", ["/bin/sh", "bash"])  # the image's /bin/sh is bash
@pytest.mark.parametrize("indent", [None, 1], ids=["compact", "indented"])
def test_rotation_removes_the_users_an_earlier_run_made_and_nothing_else(tmp_path, indent, shell) -> None:
    users = [user(CURRENT["READER_ACCESS_KEY"], "llm-ab-read"), user(CURRENT["WRITER_ACCESS_KEY"], "llm-ab-write"),
             user("ReaderOld00000000000", "llm-ab-read"), user("WriterOld00000000000", "llm-ab-write"),
             user("BothOld0000000000000", "consoleAdmin,llm-ab-write"),
             user("Someone0000000000000", "consoleAdmin"), user("NoPolicy000000000000", None)]
    proc, calls = run_bucket_script(tmp_path, users, indent=indent, shell=shutil.which(shell) or shell)
    assert proc.returncode == 0, proc.stderr
    removed = [c.split()[-1] for c in calls if c.startswith("admin user remove s3 ")]
    assert removed == ["ReaderOld00000000000", "WriterOld00000000000", "BothOld0000000000000"]
    assert proc.stdout.strip().endswith("3 rotated-out user(s) removed")
    # The current users are made (again) before anything is removed, so there is never a moment without them.
    adds = [i for i, c in enumerate(calls) if c.startswith("admin user add s3 ")]
    assert len(adds) == 2 and max(adds) < calls.index("admin user remove s3 ReaderOld00000000000")


def test_a_first_run_removes_nothing_and_a_rerun_accepts_policies_attached_already(tmp_path) -> None:
    proc, calls = run_bucket_script(tmp_path, [], indent=None)
    assert proc.returncode == 0, proc.stderr
    assert calls[:2] == ["alias set s3 http://minio:9000 root rootpw", "ready s3"]
    assert not [c for c in calls if c.startswith("admin user remove")]
    bash = shutil.which("bash")
    if bash:  # the MinIO image's /bin/sh is bash
        proc, calls = run_bucket_script(tmp_path, [user(CURRENT["READER_ACCESS_KEY"], "llm-ab-read")], indent=1,
                                        shell=bash, attached=True)
        assert proc.returncode == 0, proc.stderr
        assert f"admin user info s3 {CURRENT['READER_ACCESS_KEY']}" in calls


def test_the_script_fails_when_a_user_lacks_its_policy_after_attach_fails(tmp_path) -> None:
    proc, calls = run_bucket_script(tmp_path, [], indent=None, attached=True, info_policy="consoleAdmin")
    assert proc.returncode != 0 and not [c for c in calls if c.startswith("admin user list")]


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
