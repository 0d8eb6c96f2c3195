"""Staging proves content, aborts leftovers, refuses escaping symlinks, takes a lease, exits fatal or not.

Against the same real S3 server (moto, IAM auth on) as test_stage_model.py (tests/staging/conftest.py),
with its helpers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import threading
import time

import pytest

from staging.common import EXIT_BUSY, EXIT_S3, EXIT_SOURCE, EXIT_SOURCE_UNREACHABLE, FATAL_EXIT_CODES
from tests.staging.test_stage_model import (
    COMMIT_1,
    COMMIT_2,
    LEASE,
    MANIFEST,
    FakeHub,
    common,
    model_files,
    run,
    write_model,
)

PREFIX = "models/flan-t5-small"


def b64sha(data: bytes) -> str:
    return base64.b64encode(hashlib.sha256(data).digest()).decode()


def composite(data: bytes, part: int) -> str:
    parts = [data[i:i + part] for i in range(0, len(data), part)]
    return f"{b64sha(b''.join(hashlib.sha256(p).digest() for p in parts))}-{len(parts)}"


# ------------------------------------------------------------- content, not metadata


@pytest.mark.parametrize("writer_checksum", [None, "SHA256"])
def test_same_size_and_sha256_metadata_but_other_bytes_is_restaged(
    sm, server, bucket, tmp_path, capsys, writer_checksum
):
    files = model_files()
    src = write_model(tmp_path / "src", files)
    assert run(sm, capsys, *common(server, bucket), "--source-dir", src)[0] == 0
    key = f"{PREFIX}/model.safetensors"
    good = files["model.safetensors"]
    other = bytes([good[0] ^ 0xFF]) + good[1:]  # same size, one byte differs
    extra = {"ChecksumAlgorithm": writer_checksum} if writer_checksum else {}
    server.s3.put_object(Bucket=bucket, Key=key, Body=other, Metadata={"sha256": hashlib.sha256(good).hexdigest()},
                         **extra)

    code, out, err = run(sm, capsys, *common(server, bucket), "--source-dir", src, "--json")

    assert code == 0, err
    assert "already staged" not in err
    summary = json.loads(out)
    assert summary["status"] == "staged"
    assert summary["uploaded"] == ["model.safetensors"]  # repaired; the other four proved unchanged
    assert sorted(summary["unchanged"]) == ["1_Pooling/config.json", "config.json", "spiece.model", "tokenizer.json"]
    assert server.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == good
    reason = ("no S3 SHA-256 checksum" if writer_checksum is None
              else f"content differs (S3 SHA-256 checksum {b64sha(other)}")
    assert f"model.safetensors: {reason}" in err


def test_hub_source_with_other_bytes_in_the_bucket_restages_from_the_hub(sm, server, bucket, capsys, monkeypatch):
    hub = FakeHub(model_files()).install(sm, monkeypatch)
    assert run(sm, capsys, *common(server, bucket))[0] == 0
    good = model_files()["config.json"]
    server.s3.put_object(Bucket=bucket, Key=f"{PREFIX}/config.json", Body=good.replace(b"512", b"513"),
                         Metadata={"sha256": hashlib.sha256(good).hexdigest()}, ChecksumAlgorithm="SHA256")

    code, out, err = run(sm, capsys, *common(server, bucket), "--json")

    assert code == 0, err
    assert len(hub.downloads) == 2
    assert json.loads(out)["uploaded"] == ["config.json"]
    assert server.s3.get_object(Bucket=bucket, Key=f"{PREFIX}/config.json")["Body"].read() == good


def test_multipart_objects_are_proved_by_their_composite_checksum_whatever_the_part_size(
    sm, server, bucket, tmp_path, capsys
):
    big = os.urandom(11 * 1024 * 1024 + 7)
    src = write_model(tmp_path / "src", {"config.json": b"{}", "model.safetensors": big})
    code, _, err = run(sm, capsys, *common(server, bucket), "--source-dir", src, "--multipart-threshold-mb", "5")
    assert code == 0, err
    entry = next(f for f in server.manifest(bucket, PREFIX)["files"] if f["path"] == "model.safetensors")
    assert entry["s3_checksum"] == composite(big, 5 * 1024 * 1024)  # 3 parts: "<base64>-3"
    assert entry["s3_checksum"].endswith("-3")

    # A later run with another part size re-hashes the file in the object's own parts: unchanged.
    server.s3.delete_object(Bucket=bucket, Key=f"{PREFIX}/{MANIFEST}")
    code, out, err = run(sm, capsys, *common(server, bucket), "--source-dir", src, "--multipart-threshold-mb", "8",
                         "--json")
    assert code == 0, err
    assert json.loads(out)["unchanged"] == ["config.json", "model.safetensors"]

    # Already staged: proved by the checksums the manifest recorded, without reading the objects.
    code, out, err = run(sm, capsys, *common(server, bucket), "--source-dir", src, "--multipart-threshold-mb", "8",
                         "--json")
    assert (code, json.loads(out)["status"]) == (0, "already-staged"), err


def test_a_format_1_manifest_without_checksums_restages(sm, server, bucket, tmp_path, capsys):
    files = model_files()
    src = write_model(tmp_path / "src", files)
    assert run(sm, capsys, *common(server, bucket), "--source-dir", src)[0] == 0
    old = server.manifest(bucket, PREFIX) | {"format": "llm-ab-staging/1"}
    for entry in old["files"]:
        entry.pop("s3_checksum")
    server.s3.put_object(Bucket=bucket, Key=f"{PREFIX}/{MANIFEST}", Body=json.dumps(old).encode())

    code, out, err = run(sm, capsys, *common(server, bucket), "--source-dir", src, "--json")

    assert code == 0, err
    assert "format 'llm-ab-staging/1', not llm-ab-staging/2" in err
    assert json.loads(out)["status"] == "staged"


# ----------------------------------------------------------------- leftovers, symlinks


def test_incomplete_multipart_uploads_under_the_prefix_are_aborted(sm, server, bucket, tmp_path, capsys):
    left = server.s3.create_multipart_upload(Bucket=bucket, Key=f"{PREFIX}/model.safetensors")
    server.s3.upload_part(Bucket=bucket, Key=f"{PREFIX}/model.safetensors", UploadId=left["UploadId"], PartNumber=1,
                          Body=b"x" * (5 * 1024 * 1024))
    other = server.s3.create_multipart_upload(Bucket=bucket, Key="models/other/model.safetensors")

    code, out, err = run(sm, capsys, *common(server, bucket), "--source-dir",
                         write_model(tmp_path / "src", model_files()), "--json")

    assert code == 0, err
    assert json.loads(out)["aborted_uploads"] == [f"{PREFIX}/model.safetensors"]
    assert f"aborted an incomplete multipart upload of {PREFIX}/model.safetensors" in err
    remaining = server.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [(u["Key"], u["UploadId"]) for u in remaining] == [("models/other/model.safetensors", other["UploadId"])]


@pytest.mark.parametrize("kind", ["file", "directory"])
def test_a_symlink_leaving_the_source_dir_is_refused(sm, server, bucket, tmp_path, capsys, kind):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.json").write_text('{"token": "not for the bucket"}')
    src = write_model(tmp_path / "src", model_files())
    if kind == "file":
        (src / "leak.json").symlink_to(outside / "secret.json")
        name, target = "leak.json", outside / "secret.json"
    else:
        (src / "extra").symlink_to(outside, target_is_directory=True)
        name, target = "extra", outside

    code, _, err = run(sm, capsys, *common(server, bucket), "--source-dir", src)

    assert code == EXIT_SOURCE
    assert code in FATAL_EXIT_CODES
    assert err.strip().splitlines()[-1] == (
        f"stage_model: error: {name} in {src} is a symlink to {target}, outside the snapshot: refusing to stage it "
        "(copy the file in, or download with --local-dir so the snapshot holds the files themselves)"
    )
    assert server.keys(bucket) == []


def test_a_symlink_within_the_source_dir_is_staged(sm, server, bucket, tmp_path, capsys):
    files = model_files()
    src = write_model(tmp_path / "src", files)
    (src / "generation_config.json").symlink_to(src / "config.json")

    code, _, err = run(sm, capsys, *common(server, bucket), "--source-dir", src)

    assert code == 0, err
    body = server.s3.get_object(Bucket=bucket, Key=f"{PREFIX}/generation_config.json")["Body"].read()
    assert body == files["config.json"]


# ----------------------------------------------------------------------------- leases


def _options(sm, server, bucket, src, *extra):
    return sm.cli.parse_options([*common(server, bucket), "--source-dir", str(src), *extra])


def test_two_stagers_on_one_prefix_do_not_both_win(sm, server, bucket, tmp_path, monkeypatch):
    from staging import lease as lease_module
    from staging.stage import stage

    src = write_model(tmp_path / "src", model_files())
    second_is_waiting = threading.Event()
    real_read, real_upload = lease_module.read, sm.s3.upload_file
    uploads: list[str] = []

    def read(client, opts):  # only a stager that found the lease taken reads it
        second_is_waiting.set()
        return real_read(client, opts)

    def upload(client, opts, f, config):
        second_is_waiting.wait(timeout=10)  # the first stager holds the lease while the second one tries
        uploads.append(f.path)
        real_upload(client, opts, f, config)

    monkeypatch.setattr(lease_module, "read", read)
    monkeypatch.setattr(sm.s3, "upload_file", upload)
    results: dict[str, object] = {}

    def stager(name: str, delay: float) -> None:
        time.sleep(delay)
        try:
            results[name] = stage(_options(sm, server, bucket, src, "--lease-wait-seconds", "30"))
        except Exception as e:  # noqa: BLE001
            results[name] = e

    threads = [threading.Thread(target=stager, args=("first", 0.0)),
               threading.Thread(target=stager, args=("second", 0.3))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)

    assert second_is_waiting.is_set()
    statuses = {name: getattr(r, "status", r) for name, r in results.items()}
    assert statuses == {"first": "staged", "second": "already-staged"}
    assert sorted(uploads) == ["1_Pooling/config.json", "config.json", "model.safetensors", "spiece.model",
                               "tokenizer.json"]  # each file once, by the first
    assert f"{PREFIX}/{LEASE}" not in server.keys(bucket)  # released
    assert server.manifest(bucket, PREFIX)["revision"] == COMMIT_1


def _put_lease(server, bucket, owner: str, expires_at: float) -> None:
    server.s3.put_object(Bucket=bucket, Key=f"{PREFIX}/{LEASE}",
                         Body=json.dumps({"owner": owner, "expires_at": expires_at}).encode())


def test_a_live_lease_of_another_stager_exits_busy_after_the_wait(sm, server, bucket, tmp_path, capsys):
    _put_lease(server, bucket, "staging-stable-x7k2p:1:ab12cd34", time.time() + 600)
    started = time.monotonic()

    code, _, err = run(sm, capsys, *common(server, bucket), "--source-dir",
                       write_model(tmp_path / "src", model_files()), "--lease-wait-seconds", "1")

    assert code == EXIT_BUSY
    assert code not in FATAL_EXIT_CODES  # the Job retries it
    assert time.monotonic() - started < 10
    assert "is being staged by staging-stable-x7k2p:1:ab12cd34; waiting for it to finish" in err
    assert err.strip().splitlines()[-1].startswith(
        f"stage_model: error: s3://{bucket}/{PREFIX}/ is being staged by staging-stable-x7k2p:1:ab12cd34 (lease until ")
    assert server.keys(bucket) == [f"{PREFIX}/{LEASE}"]  # nothing written


def test_an_expired_lease_is_taken_over(sm, server, bucket, tmp_path, capsys):
    _put_lease(server, bucket, "dead-pod:1:00000000", time.time() - 5)

    code, _, err = run(sm, capsys, *common(server, bucket), "--source-dir",
                       write_model(tmp_path / "src", model_files()))

    assert code == 0, err
    assert f"took over the lease on {PREFIX}/ from dead-pod:1:00000000" in err
    assert f"{PREFIX}/{LEASE}" not in server.keys(bucket)
    assert server.manifest(bucket, PREFIX)["revision"] == COMMIT_1


def test_a_stager_whose_lease_was_taken_over_does_not_write_the_manifest(
    sm, server, bucket, tmp_path, capsys, monkeypatch
):
    real_upload = sm.s3.upload_file

    def upload(client, opts, f, config):
        real_upload(client, opts, f, config)
        if f.path == "tokenizer.json":  # meanwhile our lease expired and another stager took it over
            _put_lease(server, bucket, "other-pod:7:feedbeef", time.time() + 600)

    monkeypatch.setattr(sm.s3, "upload_file", upload)

    code, _, err = run(sm, capsys, *common(server, bucket, revision=COMMIT_2), "--source-dir",
                       write_model(tmp_path / "src", model_files("v2")))

    assert code == EXIT_BUSY
    assert err.strip().splitlines()[-1] == (
        f"stage_model: error: lost the lease on s3://{bucket}/{PREFIX}/ to other-pod:7:feedbeef (it took over after "
        "our lease expired): stopping without writing the manifest"
    )
    assert f"{PREFIX}/{MANIFEST}" not in server.keys(bucket)
    lease = json.loads(server.s3.get_object(Bucket=bucket, Key=f"{PREFIX}/{LEASE}")["Body"].read())
    assert lease["owner"] == "other-pod:7:feedbeef"  # theirs, not deleted by us


def test_the_lease_is_renewed_while_a_long_staging_runs(sm, server, bucket, tmp_path, capsys, monkeypatch):
    real_upload = sm.s3.upload_file
    seen: list[float] = []

    def slow_upload(client, opts, f, config):
        if f.path == "model.safetensors":
            body = json.loads(server.s3.get_object(Bucket=bucket, Key=f"{PREFIX}/{LEASE}")["Body"].read())
            seen.append(body["expires_at"])
            time.sleep(4)  # longer than the lease (3 s): only renewals keep it
            body = json.loads(server.s3.get_object(Bucket=bucket, Key=f"{PREFIX}/{LEASE}")["Body"].read())
            seen.append(body["expires_at"])
        real_upload(client, opts, f, config)

    monkeypatch.setattr(sm.s3, "upload_file", slow_upload)

    code, _, err = run(sm, capsys, *common(server, bucket), "--source-dir",
                       write_model(tmp_path / "src", model_files()), "--lease-seconds", "3")

    assert code == 0, err
    assert seen[1] > seen[0]  # renewed in the background during the upload (every second)
    assert seen[1] > time.time() - 1  # and never left to expire (3 s) while it ran


# ------------------------------------------------------------------- fatal or retried


class RevisionNotFoundError(Exception):
    pass


class HfHubHTTPError(Exception):
    pass


@pytest.mark.parametrize(
    "error, code",
    [
        (RevisionNotFoundError("404 Client Error. Revision Not Found for url: .../revision/x"), EXIT_SOURCE),
        (HfHubHTTPError("503 Server Error: Service Unavailable for url: .../api/models/x"), EXIT_SOURCE_UNREACHABLE),
        (HfHubHTTPError("429 Client Error: Too Many Requests for url: .../api/models/x"), EXIT_SOURCE_UNREACHABLE),
        (ConnectionError("[Errno 111] Connection refused"), EXIT_SOURCE_UNREACHABLE),
    ],
    ids=["revision-not-found", "hub-503", "hub-429", "no-connection"],
)
def test_hub_failures_are_fatal_only_when_a_retry_cannot_heal_them(sm, server, bucket, capsys, monkeypatch,
                                                                   error, code):
    def failing(*_args):
        raise error

    monkeypatch.setattr(sm.hub, "hub_list_files", failing)

    got, _, err = run(sm, capsys, *common(server, bucket))

    assert got == code, err
    assert (got in FATAL_EXIT_CODES) is (code == EXIT_SOURCE)


def test_the_exit_codes_the_job_fails_on_are_the_permanent_ones() -> None:
    from staging import common as c

    assert set(FATAL_EXIT_CODES) == {c.EXIT_USAGE, c.EXIT_SOURCE, c.EXIT_VERIFY, c.EXIT_S3_DENIED}
    assert not {EXIT_S3, EXIT_SOURCE_UNREACHABLE, EXIT_BUSY} & set(FATAL_EXIT_CODES)


def test_access_denied_is_retried_for_the_grace_then_fatal(sm, monkeypatch) -> None:
    """IRSA: a just-created IAM role answers AccessDenied for a while; within --auth-grace-seconds that is
    retried, after it the error is permanent (exit 6, the Job fails at once)."""
    from botocore.exceptions import ClientError

    now = [0.0]
    answers = ["AccessDenied", "AccessDenied", "ok"]

    class PropagatingRole:
        def list_objects_v2(self, **_):
            if answers.pop(0) == "AccessDenied":
                raise ClientError({"Error": {"Code": "AccessDenied"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "L")
            return {"KeyCount": 0}

    def sleep(seconds):
        now[0] += seconds

    monkeypatch.setattr(sm.s3, "make_client", lambda *_, **__: PropagatingRole())
    base = ["--repo-id", "r/m", "--revision", COMMIT_1, "--bucket", "models", "--prefix", "m"]
    sm.s3.wait_for_bucket(sm.cli.parse_options([*base, "--auth-grace-seconds", "60"]), sleep=sleep,
                          clock=lambda: now[0])
    assert answers == [] and now[0] == 3.0  # 1 s + 2 s of backoff, then it worked

    answers[:] = ["AccessDenied"] * 10
    now[0] = 0.0
    with pytest.raises(sm.common.StageError) as failed:
        sm.s3.wait_for_bucket(sm.cli.parse_options([*base, "--auth-grace-seconds", "5"]), sleep=sleep,
                              clock=lambda: now[0])
    assert failed.value.code == 6 and failed.value.code in FATAL_EXIT_CODES
    assert now[0] == 7.0  # retried at 1 s and 3 s, refused for good at 7 s
    answers[:] = ["AccessDenied"]
    with pytest.raises(sm.common.StageError):  # no grace by default: fatal at once
        sm.s3.wait_for_bucket(sm.cli.parse_options(base), sleep=sleep, clock=lambda: now[0])


def test_staging_jobs_that_write_through_irsa_get_a_grace_for_access_denied(run_program, pulumi_mocks) -> None:
    from components.staging import IRSA_GRACE_SECONDS, ModelStaging, ModelStagingArgs, StagedModel

    def staging(**irsa):
        return ModelStaging("stage", ModelStagingArgs(
            namespace="ns", stack="t", image="python:3.11.11-slim-bookworm", endpoint="", bucket="b",
            credentials_secret="", models=[StagedModel(role="stable", repo_id="o/a", revision="1" * 40, prefix="a")],
            **irsa))

    run_program(lambda: staging(service_account="model-staging",
                                service_account_annotations={"eks.amazonaws.com/role-arn": "arn:aws:iam::1:role/r"}))
    args = pulumi_mocks.named("stage-stable").inputs["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[args.index("--auth-grace-seconds") + 1] == str(IRSA_GRACE_SECONDS)
