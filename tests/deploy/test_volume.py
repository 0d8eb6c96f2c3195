"""The weights volume (issue 11 item 8): a change that would replace it is refused unless asked for,
and a new volume gets new bucket and staging Jobs."""

from __future__ import annotations

import copy
import uuid
from pathlib import Path

import pytest
import yaml

from components.naming import WEIGHTS_VOLUME_ANNOTATION
from components.quantity import quantity_value
from components.weights_volume import Claim, claim_name, generation_of
from deploy import volume
from deploy.__main__ import check_volume, configured_settings, stack_file_config
from deploy.workspace import DriverError
from staging.common import FATAL_EXIT_CODES
from tests.harness import mocked_runtime, run_main
from tests.samples import dev_config
from tests.stacks.test_promotion import preview_diff, record

DEPLOYED = Claim(namespace="llm-ab", name="minio-data", storage_class="standard", size="20Gi")


def claim(**changes) -> Claim:
    return Claim(**{**DEPLOYED.__dict__, **changes})


def exported(claim_inputs: dict, *, retain: bool = True) -> dict:
    """An exported deployment (``pulumi stack export``) holding the weights claim."""
    urn = ("urn:pulumi:dev::llm-ab::llmab:storage:MinioStore$kubernetes:core/v1:PersistentVolumeClaim::weights-data")
    return {"resources": [
        {"urn": "urn:pulumi:dev::llm-ab::pulumi:pulumi:Stack::llm-ab-dev", "type": "pulumi:pulumi:Stack"},
        {"urn": urn, "type": "kubernetes:core/v1:PersistentVolumeClaim", "protect": True, "retainOnDelete": retain,
         "inputs": claim_inputs, "outputs": {**claim_inputs, "metadata": {**claim_inputs["metadata"], "uid": "u-1"}}},
    ]}


CLAIM_INPUTS = {"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                "metadata": {"name": "minio-data", "namespace": "llm-ab", "labels": {}},
                "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "20Gi"}},
                         "storageClassName": "standard"}}


# --- pure rules -------------------------------------------------------------------------------


def test_the_deployed_claim_is_read_from_the_exported_state() -> None:
    assert volume.deployed_claim(exported(CLAIM_INPUTS)) == DEPLOYED
    no_class = copy.deepcopy(CLAIM_INPUTS)
    del no_class["spec"]["storageClassName"]
    assert volume.deployed_claim(exported(no_class)).storage_class is None
    assert volume.deployed_claim({"resources": []}) is None


def test_claim_names_per_generation() -> None:
    assert [claim_name(g) for g in (1, 2, 10)] == ["minio-data", "minio-data-2", "minio-data-10"]
    assert [generation_of(n) for n in ("minio-data", "minio-data-2", "other")] == [1, 2, None]
    assert quantity_value("20Gi") == 20 * 2**30 and quantity_value("500M") == 5e8 and quantity_value("1e3") == 1000


def test_a_storage_class_change_is_refused_naming_the_key_the_way_back_and_the_migration() -> None:
    with pytest.raises(DriverError) as err:
        volume.check(DEPLOYED, claim(storage_class="fast"), allow_replace=False)
    message = str(err.value)
    assert message.startswith("storage.storageClass changes from 'standard' to 'fast', which a claim can't change: "
                              "the weights claim llm-ab/minio-data would be replaced by an empty volume")
    assert "pulumi config set --path storage.storageClass standard" in message
    assert "set storage.volumeGeneration to 2 and storage.allowReplace to true for one update" in message
    assert "kubectl -n llm-ab delete pvc minio-data" in message


def test_a_storage_class_change_under_the_same_name_is_refused_even_when_replacing_is_allowed() -> None:
    with pytest.raises(DriverError, match="set storage.volumeGeneration to 2"):
        volume.check(DEPLOYED, claim(storage_class=None), allow_replace=True)


def test_a_smaller_size_is_refused_and_a_larger_one_grows_in_place() -> None:
    with pytest.raises(DriverError) as err:
        volume.check(DEPLOYED, claim(size="10Gi"), allow_replace=False)
    assert str(err.value).startswith("storage.size shrinks from 20Gi to 10Gi, which a claim can't do")
    assert "pulumi config set --path storage.size 20Gi" in str(err.value)
    grown = volume.check(DEPLOYED, claim(size="40Gi"), allow_replace=False)
    assert grown.replaces is False
    assert grown.notes == ("the weights claim llm-ab/minio-data grows from 20Gi to 40Gi in place (its storage class "
                           "must allow volume expansion)",)
    assert volume.check(DEPLOYED, claim(size="20480Mi"), allow_replace=False) == volume.Verdict(False)


def test_a_new_generation_or_namespace_needs_allow_replace() -> None:
    for configured, what in [(claim(name="minio-data-2", storage_class="fast"),
                              "storage.volumeGeneration changes from 1 to 2"),
                             (claim(namespace="llm-ab-2"), "namespace changes from 'llm-ab' to 'llm-ab-2'")]:
        with pytest.raises(DriverError) as err:
            volume.check(DEPLOYED, configured, allow_replace=False)
        assert str(err.value).startswith(f"{what}: the weights claim llm-ab/minio-data would be replaced by a new, "
                                         "empty ")
        assert "pulumi config set --path storage.allowReplace true" in str(err.value)
        verdict = volume.check(DEPLOYED, configured, allow_replace=True)
        assert verdict.replaces is True
        assert "bucket setup and staging run again into it" in verdict.notes[0]
        assert "kept in the cluster (retainOnDelete)" in verdict.notes[0]


def test_leaving_minio_needs_allow_replace() -> None:
    with pytest.raises(DriverError, match="storage.kind is no longer minio"):
        volume.check(DEPLOYED, None, allow_replace=False)
    assert volume.check(DEPLOYED, None, allow_replace=True).replaces is True


def test_allow_replace_left_on_without_a_replacement_says_to_turn_it_off() -> None:
    verdict = volume.check(DEPLOYED, DEPLOYED, allow_replace=True)
    assert verdict.replaces is False
    assert verdict.notes[0].startswith("storage.allowReplace is true but nothing replaces the weights claim")


def test_a_claim_deleted_with_its_data_is_not_called_kept() -> None:
    verdict = volume.check(claim(retained=False), claim(name="minio-data-2"), allow_replace=True)
    assert "is deleted with its data (storage.protect is false)" in verdict.notes[0]


# --- the driver, on a stack file --------------------------------------------------------------


def stack_config(tmp_path: Path, storage: dict) -> dict:
    """The dev stack file with ``storage`` changed, as the driver reads it."""
    config = {**dev_config(), "llm-ab:storage": {**dev_config().get("llm-ab:storage", {}), **storage}}
    (tmp_path / "Pulumi.dev.yaml").write_text(yaml.safe_dump({"config": config}))
    return stack_file_config(tmp_path, "dev")


DEV_NAMESPACE = dev_config()["llm-ab:namespace"]


def test_the_driver_refuses_a_storage_class_change_of_the_deployed_stack_before_the_preview(tmp_path) -> None:
    inputs = copy.deepcopy(CLAIM_INPUTS)
    inputs["metadata"]["namespace"] = DEV_NAMESPACE
    inputs["spec"].pop("storageClassName")
    deployment = exported(inputs)
    with pytest.raises(DriverError, match="storage.storageClass changes from '\\(cluster default\\)' to 'fast'"):
        check_volume(configured_settings("dev", stack_config(tmp_path, {"storageClass": "fast"})), deployment)
    asked = {"storageClass": "fast", "volumeGeneration": 2, "allowReplace": True}
    check_volume(configured_settings("dev", stack_config(tmp_path, asked)), deployment)  # asked for: passes
    never_deployed = {"resources": []}  # nothing to compare
    check_volume(configured_settings("dev", stack_config(tmp_path, {})), never_deployed)


# --- the program: protect, names, and new Jobs for a new volume -------------------------------


def replacing(generation: int) -> dict:
    config = dev_config()
    config["llm-ab:storage"] = {**config.get("llm-ab:storage", {}), "volumeGeneration": generation,
                                "allowReplace": True}
    return config


def test_the_claim_is_protected_unless_this_update_may_replace_it() -> None:
    with mocked_runtime() as mocks:
        run_main(dev_config())
        assert mocks.options["weights-data"].protect is True
        assert mocks.named("weights-data").inputs["metadata"]["name"] == "minio-data"
    with mocked_runtime() as mocks:
        run_main(replacing(2))
        assert mocks.options["weights-data"].protect is False
        assert mocks.options["weights-data"].retain_on_delete is True  # the old claim stays in the cluster
        assert mocks.named("weights-data").inputs["metadata"]["name"] == "minio-data-2"


def test_the_bucket_and_staging_jobs_carry_the_claims_uid() -> None:
    with mocked_runtime() as mocks:
        run_main(dev_config())
        uid = str(uuid.uuid5(uuid.NAMESPACE_URL, f"{DEV_NAMESPACE}/minio-data"))  # the mocks' API server
        for job in ("weights-bucket", "staging-stable", "staging-canary"):
            annotations = mocks.named(job).inputs["spec"]["template"]["metadata"]["annotations"]
            assert annotations[WEIGHTS_VOLUME_ANNOTATION] == uid, job


def test_a_new_volume_re_runs_bucket_setup_and_staging() -> None:
    diff = preview_diff(record(dev_config()), record(replacing(2)), ignore=("smoke",))
    volume_key = f"spec.template.metadata.annotations.{WEIGHTS_VOLUME_ANNOTATION}"
    # A Job's template can't change in place: each of these is replaced, i.e. runs again.
    for job in ("weights-bucket", "staging-stable", "staging-canary"):
        assert volume_key in diff.changed[job], job
    assert "metadata.name" in diff.changed["weights-data"]
    assert any("claimName" in p for p in diff.changed["weights-deploy"])  # MinIO moves onto the new volume


def test_the_staging_jobs_fail_at_once_on_the_tools_permanent_exit_codes() -> None:
    with mocked_runtime() as mocks:
        run_main(dev_config())
        for job in ("staging-stable", "staging-canary"):
            (rule,) = mocks.named(job).inputs["spec"]["podFailurePolicy"]["rules"]
            assert rule["action"] == "FailJob"
            assert rule["onExitCodes"]["values"] == sorted(FATAL_EXIT_CODES)
