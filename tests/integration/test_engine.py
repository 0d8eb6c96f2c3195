"""The program through the real Pulumi engine (pulumi CLI + pulumi-resource-kubernetes, built by
scripts/toolchain) against the local cluster's real API server, driven the way `make up` drives it:
``python -m deploy`` in a subprocess, with the dev stack's config under test stack names.

The tests run in file order and share one stack (``it``), as a user's session would: up from empty,
a preview with no changes, a split change, destroy, and up again.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from deploy.workspace import engine_dir, toolchain_env
from policy.contract import WEIGHTS_COMPONENT
from tests import samples
from tests.conftest import ROOT

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

STACK = "it"
NAMESPACE = "llm-ab-it"
DATA_HOLDERS = ("kubernetes:core/v1:PersistentVolumeClaim", "kubernetes:core/v1:Namespace")


class Driver:
    """``python -m deploy`` on a work dir of its own (Pulumi.yaml + the test stacks' files)."""

    def __init__(self, work_dir: Path, env: dict[str, str]) -> None:
        self.work_dir = work_dir
        self.env = env

    def write_stack(self, stack: str, config: dict[str, Any]) -> None:
        (self.work_dir / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": config}, sort_keys=False))

    def stack_file(self, stack: str) -> dict[str, Any]:
        return yaml.safe_load((self.work_dir / f"Pulumi.{stack}.yaml").read_text())

    def run(self, verb: str, stack: str = STACK, *args: str) -> tuple[subprocess.CompletedProcess, list[dict]]:
        steps_file = self.work_dir / f"steps-{stack}-{verb}.json"
        steps_file.unlink(missing_ok=True)
        extra = ["--steps", str(steps_file)] if verb != "outputs" else []
        proc = subprocess.run([sys.executable, "-m", "deploy", verb, "--stack", stack, "--work-dir",
                               str(self.work_dir), *extra, *args],
                              cwd=ROOT, env=self.env, capture_output=True, text=True, timeout=800)
        steps = json.loads(steps_file.read_text()) if steps_file.is_file() else []
        return proc, steps

    def outputs(self, stack: str = STACK) -> dict[str, Any]:
        proc, _ = self.run("outputs", stack, "--json")
        assert proc.returncode == 0, proc.stderr
        return json.loads(proc.stdout)


REPLACE_OPS = {"replace", "create-replacement", "delete-replaced"}


def changed(steps: list[dict]) -> dict[str, set[str]]:
    """name -> ops of every step that changes something."""
    out: dict[str, set[str]] = {}
    for s in steps:
        if s["op"] not in ("same", "read"):
            out.setdefault(s["name"], set()).add(s["op"])
    return out


def dev_config(**overrides: Any) -> dict[str, Any]:
    """The dev stack's config in the test namespace, with ``overrides``."""
    return {**samples.dev_config(), "llm-ab:namespace": NAMESPACE, **overrides}


@pytest.fixture(scope="module")
def driver(local_cluster, tmp_path_factory) -> Driver:
    env = toolchain_env()
    if not Path(env["LLMAB_PULUMI"]).is_file():
        if os.environ.get("LLMAB_INTEGRATION") == "1":
            pytest.fail(f"the engine is not built ({env['LLMAB_PULUMI']} missing): run scripts/toolchain engine")
        pytest.skip("the engine is not built: run scripts/toolchain engine (or make test)")
    work = tmp_path_factory.mktemp("engine")
    shutil.copy(ROOT / "Pulumi.yaml", work / "Pulumi.yaml")
    env.update({
        "KUBECONFIG": local_cluster.kubeconfig,
        "LLMAB_STATE_DIR": str(work / "state"),
        "PULUMI_CONFIG_PASSPHRASE": "integration-tests-only",
    })
    env.pop("PULUMI_BACKEND_URL", None)
    d = Driver(work, env)
    d.write_stack(STACK, dev_config())
    return d


def test_a_bad_config_value_fails_the_preview_naming_the_key_and_creates_nothing(driver, local_cluster) -> None:
    driver.write_stack("it-bad", dev_config(**{"llm-ab:namespace": "llm-ab-it-bad",
                                              "llm-ab:split": {"canaryPercent": 150, "replicas": 2}}))
    proc, steps = driver.run("preview", "it-bad")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "split.canaryPercent" in proc.stderr and "150" in proc.stderr, proc.stderr
    assert [s for s in steps if s["type"].startswith("kubernetes:")] == []
    gone = local_cluster.kubectl("get", "namespace", "llm-ab-it-bad", check=False)
    assert gone.returncode != 0 and "NotFound" in gone.stderr


def test_the_policy_pack_fails_a_broken_stack_with_the_mandatory_rules_message(driver) -> None:
    # 3 of 4 replicas on the canary: a valid split, above the pack's default canary cap of 50 %.
    driver.write_stack("it-broken", dev_config(**{"llm-ab:namespace": "llm-ab-it-broken",
                                                 "llm-ab:split": {"canaryPercent": 75, "replicas": 4}}))
    proc, _ = driver.run("preview", "it-broken")
    assert proc.returncode == 1, proc.stdout + proc.stderr
    text = proc.stdout + proc.stderr
    assert "[mandatory]" in text and "split-canary-share-cap" in text, text[-3000:]
    assert "the canary runs 3 of 4 serving replicas (75%), above this stack's cap of 50%" in text


def test_a_stack_file_with_the_old_tgi_serving_keys_previews_with_a_warning_naming_the_new_key(driver) -> None:
    """Pulumi.yaml's default `serving` object arrives too (the engine fills unset objects in): the old keys win
    over it, and the warning reaches the user through the driver (`preview --diff` prints no Diagnostics)."""
    current = dev_config(**{"llm-ab:namespace": "llm-ab-it-old"})
    old = {**current, "llm-ab:tgi": {**current["llm-ab:tgi"], **current["llm-ab:serving"]}}
    del old["llm-ab:serving"]
    driver.write_stack("it-old", old)
    proc, steps = driver.run("preview", "it-old")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert ("[deploy] warning: llm-ab:tgi.gpusPerReplica is now llm-ab:serving.gpusPerReplica (renamed when vLLM "
            "joined TGI); it is read from tgi.gpusPerReplica for now: move it in Pulumi.it-old.yaml") in proc.stderr
    driver.write_stack("it-new", {**current, "llm-ab:namespace": "llm-ab-it-old"})
    proc_new, steps_new = driver.run("preview", "it-new")
    assert proc_new.returncode == 0 and "is now llm-ab:serving" not in proc_new.stderr
    # The same resources (the pods' inputs are compared under mocks: tests/stacks/test_program.py).
    assert sorted(s["name"] for s in steps if s["type"] != "pulumi:pulumi:Stack") == sorted(
        s["name"] for s in steps_new if s["type"] != "pulumi:pulumi:Stack")


def test_up_from_empty_creates_every_resource_with_the_builtin_credentials(driver, local_cluster) -> None:
    tracked = (driver.work_dir / f"Pulumi.{STACK}.yaml").read_bytes()
    proc, steps = driver.run("up")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    created = [s for s in steps if s["op"] == "create"]
    assert len(created) >= 30, changed(steps)
    # pulumi-random's plugin is not served here: the driver recorded the built-in generator, with the stack's
    # state; the engine's salt is there too. The stack file the user wrote is left as it was.
    assert (driver.work_dir / f"Pulumi.{STACK}.yaml").read_bytes() == tracked
    copy = yaml.safe_load((engine_dir(driver.work_dir / "state", STACK) / f"Pulumi.{STACK}.yaml").read_text())
    assert copy["config"]["llm-ab:credentials"] == {"generator": "builtin"} and "encryptionsalt" in copy
    assert "credentials: builtin" in proc.stderr
    outputs = driver.outputs()
    assert outputs["namespace"] == NAMESPACE and outputs["credentialGenerator"] == "builtin"
    assert outputs["minioRootPassword"] == "[secret]"
    for name in ("text-generation-inference-stable", "text-generation-inference-canary"):
        deploy = local_cluster.get_json("deployment", name, "-n", NAMESPACE)
        assert deploy["status"].get("readyReplicas") == 1, name
    claim = local_cluster.get_json("pvc", "minio-data", "-n", NAMESPACE)
    assert claim["status"]["phase"] == "Bound"


def test_generated_credentials_are_real_and_never_in_the_state_in_plain_text(driver, local_cluster) -> None:
    import base64

    secret = local_cluster.get_json("secret", "-n", NAMESPACE, "-l", "app.kubernetes.io/name=minio")
    roots = [s for s in secret["items"] if "MINIO_ROOT_PASSWORD" in s.get("data", {})]
    assert len(roots) == 1
    password = base64.b64decode(roots[0]["data"]["MINIO_ROOT_PASSWORD"]).decode()
    assert len(password) == 40 and password.isalnum()
    state = "".join(p.read_text() for p in (driver.work_dir / "state").rglob("*.json"))
    assert state and password not in state


def test_a_second_preview_reports_no_changes(driver) -> None:
    proc, steps = driver.run("preview")
    assert proc.returncode == 0, proc.stderr
    assert steps and changed(steps) == {}, changed(steps)
    summary_line = proc.stderr.split(f"preview of {STACK}: ", 1)[1].splitlines()[0]
    assert summary_line.endswith("s") and summary_line.split(" in ")[0].endswith("same"), summary_line


def test_a_split_change_updates_only_the_deployments_and_reruns_the_gate(driver) -> None:
    config = driver.stack_file(STACK)["config"]
    config["llm-ab:split"] = {**config["llm-ab:split"], "canaryPercent": 10, "replicas": 10}
    driver.write_stack(STACK, config)
    proc, steps = driver.run("preview")
    assert proc.returncode == 0, proc.stderr
    # Four changes; everything else unchanged, however many resources the program has.
    assert re.search(r"\+ 1 to create\n    ~ 2 to update\n    \+-1 to replace\n    4 changes\. \d+ unchanged",
                     proc.stdout), proc.stdout[-1500:]
    ops = changed(steps)
    deployments = [s["name"] for s in steps if s["type"] == "kubernetes:apps/v1:Deployment" and s["op"] == "update"]
    assert len(deployments) == 2, ops
    # The smoke gate Job is replaced (it re-runs), the stable variant (now 9 replicas) gets its disruption
    # budget; nothing else changes, least of all what holds data.
    assert {n: o for n, o in ops.items() if n not in deployments} == {
        "smoke-job": REPLACE_OPS & ops["smoke-job"], "tgi-stable-pdb": {"create"}}
    assert ops["smoke-job"] & REPLACE_OPS, ops
    assert all(s["op"] == "same" for s in steps if s["type"] in DATA_HOLDERS)


def test_destroy_keeps_only_the_protected_claim_and_namespace_and_up_finds_them_again(driver, local_cluster) -> None:
    config = driver.stack_file(STACK)["config"]
    config["llm-ab:split"] = {**config["llm-ab:split"], "canaryPercent": 50, "replicas": 2}
    driver.write_stack(STACK, config)
    uid = local_cluster.get_json("pvc", "minio-data", "-n", NAMESPACE)["metadata"]["uid"]
    proc, steps = driver.run("destroy")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    deleted = {s["type"] for s in steps if s["op"] == "delete"}
    assert "kubernetes:apps/v1:Deployment" in deleted and not deleted & set(DATA_HOLDERS)
    assert "kept (protected): Namespace" in proc.stderr and "PersistentVolumeClaim" in proc.stderr
    left = local_cluster.kubectl("get", "deployments,statefulsets,jobs,services", "-n", NAMESPACE,
                                 "-o", "name").stdout.split()
    assert left == [], left
    assert local_cluster.get_json("pvc", "minio-data", "-n", NAMESPACE)["metadata"]["uid"] == uid

    proc, steps = driver.run("up")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert all(s["op"] == "same" for s in steps if s["type"] in DATA_HOLDERS), changed(steps)
    assert local_cluster.get_json("pvc", "minio-data", "-n", NAMESPACE)["metadata"]["uid"] == uid
    ready = local_cluster.get_json("deployment", "text-generation-inference-stable", "-n", NAMESPACE)
    assert ready["status"].get("readyReplicas") == 1


def test_a_storage_class_change_is_refused_before_the_preview_naming_the_key(driver, local_cluster) -> None:
    config = driver.stack_file(STACK)["config"]
    driver.write_stack(STACK, {**config, "llm-ab:storage": {**config.get("llm-ab:storage", {}),
                                                             "storageClass": "fast"}})
    try:
        proc, steps = driver.run("preview")
    finally:
        driver.write_stack(STACK, config)
    assert proc.returncode == 2, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert ("storage.storageClass changes from '(cluster default)' to 'fast', which a claim can't change: the "
            f"weights claim {NAMESPACE}/minio-data would be replaced by an empty volume") in proc.stderr
    assert "set storage.volumeGeneration to 2 and storage.allowReplace to true" in proc.stderr
    assert steps == []  # refused before the engine previewed anything
    assert local_cluster.get_json("pvc", "minio-data", "-n", NAMESPACE)["status"]["phase"] == "Bound"


def test_a_new_volume_generation_moves_the_weights_and_reruns_bucket_setup_and_staging(driver, local_cluster) -> None:
    old_uid = local_cluster.get_json("pvc", "minio-data", "-n", NAMESPACE)["metadata"]["uid"]
    config = driver.stack_file(STACK)["config"]
    storage = config.get("llm-ab:storage", {})
    driver.write_stack(STACK, {**config, "llm-ab:storage": {**storage, "volumeGeneration": 2}})
    proc, steps = driver.run("preview")
    assert proc.returncode == 2 and "storage.volumeGeneration changes from 1 to 2" in proc.stderr, proc.stderr

    driver.write_stack(STACK, {**config, "llm-ab:storage": {**storage, "volumeGeneration": 2, "allowReplace": True}})
    proc, steps = driver.run("up")
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    assert f"the weights move to a new, empty volume {NAMESPACE}/minio-data-2" in proc.stderr
    ops = changed(steps)
    for name in ("weights-data", "weights-bucket", "staging-stable", "staging-canary"):
        assert ops.get(name, set()) & REPLACE_OPS, (name, ops)  # a new volume: new bucket and staging Jobs
    new = local_cluster.get_json("pvc", "minio-data-2", "-n", NAMESPACE)
    assert new["status"]["phase"] == "Bound"
    # The old claim left the stack but not the cluster (retainOnDelete).
    assert local_cluster.get_json("pvc", "minio-data", "-n", NAMESPACE)["metadata"]["uid"] == old_uid
    for job in local_cluster.get_json("jobs", "-n", NAMESPACE, "-l", "app.kubernetes.io/component=model-staging")[
            "items"]:
        assert job["spec"]["template"]["metadata"]["annotations"]["llm-ab/weights-volume"] == new["metadata"]["uid"]
        assert job["status"].get("succeeded") == 1, job["metadata"]["name"]

    driver.write_stack(STACK, {**config, "llm-ab:storage": {**storage, "volumeGeneration": 2}})
    proc, steps = driver.run("preview")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert all(s["op"] == "same" for s in steps if s["type"] in DATA_HOLDERS), changed(steps)


@pytest.mark.skipif(os.environ.get("LLMAB_REAL_NODE") == "0", reason="LLMAB_REAL_NODE=0: no real node runs the gate")
def test_a_smoke_gate_that_really_runs_fails_up_when_no_model_answers(driver, local_cluster) -> None:
    """The gate Job runs on the real node against serving pods kwok only pretends to run: no model
    answers, so the gate fails, `up` fails, and the driver shows the gate's own report lines."""
    stack, namespace = "it-gate", "llm-ab-it-gate"
    config = dev_config()
    driver.write_stack(stack, {
        **config, "llm-ab:namespace": namespace,
        "llm-ab:local": {"simulate": ["serving", "staging"]},
        "llm-ab:smoke": {**config.get("llm-ab:smoke", {}), "timeoutSeconds": 260},
    })
    proc, _ = driver.run("up", stack)
    text = proc.stdout + proc.stderr
    assert proc.returncode == 1, text[-4000:]
    gate = re.search(r"gate Job (smoke-\w+): ran on (\S+): Failed; the last lines of its report:", text)
    assert gate, text[-4000:]
    assert gate.group(2).endswith("-node"), gate.group(2)
    pods = local_cluster.get_json("pods", "-n", namespace, "-l", f"job-name={gate.group(1)}")["items"]
    terminated = pods[0]["status"]["containerStatuses"][0]["state"]["terminated"]
    assert terminated["exitCode"] != 0, terminated  # a real process exited; kwok fakes only success
    assert re.search(r"inference stable\s+\d+ pods?\s+SIMULATED: nothing ran", text), text[-4000:]
    assert re.search(rf"{WEIGHTS_COMPONENT}\s+\d+ pods?\s+ran for real", text), text[-4000:]
