"""Tests of the staging package (python -m staging) against a real S3 server (moto's, with IAM auth on).

The server runs in a child process on a free loopback port. Right after start
the fixture creates IAM users and then switches moto's request authentication
on (POST /moto-api/reset-auth 0), so S3 checks signatures and policies like
MinIO does: unknown keys get InvalidAccessKeyId, a wrong secret
SignatureDoesNotMatch, a user without a policy AccessDenied.

The Hugging Face Hub is never contacted: most tests stage from --source-dir or
replace the tool's hub_* functions; the real huggingface_hub path runs in a
subprocess against a small fake Hub on loopback (HF_ENDPOINT).
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import unquote, urlsplit

import pytest

from tests.staging.conftest import REGION, free_port, start_moto, stop  # noqa: F401 - REGION for readers

REPO_ROOT = Path(__file__).resolve().parents[2]
PACKAGE = REPO_ROOT / "staging"
COMMIT_1 = "1" * 40
COMMIT_2 = "2" * 40
MANIFEST = ".llm-ab-manifest.json"
LEASE = ".llm-ab-lease.json"

def write_model(root: Path, files: dict[str, bytes]) -> Path:
    for name, data in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


def model_files(seed: str = "v1") -> dict[str, bytes]:
    weights = hashlib.sha256(seed.encode()).digest() * 4096  # 128 KiB, differs per seed
    return {
        "config.json": b'{"model_type": "t5", "d_model": 512}\n',
        "tokenizer.json": b'{"version": "1.0", "seed": "%s"}\n' % seed.encode(),
        "spiece.model": b"\x00sentencepiece\x01",
        "model.safetensors": weights,
        "1_Pooling/config.json": b'{"pooling": "mean"}\n',
        "README.md": b"# not staged\n",
        "pytorch_model.bin": b"pickled weights, not staged",
        ".cache/huggingface/download/model.safetensors.metadata": b"hub bookkeeping, not staged",
    }


STAGED = ["1_Pooling/config.json", "config.json", "model.safetensors", "spiece.model", "tokenizer.json"]


class FakeHub:
    """Stands in for the tool's hub_* functions; records how it was called."""

    def __init__(self, files: dict[str, bytes], commit: str = COMMIT_1, tags: dict[str, str] | None = None):
        self.files = files
        self.commit = commit
        self.tags = tags or {}
        self.downloads: list[dict] = []
        self.resolved: list[str] = []

    def install(self, sm, monkeypatch):
        monkeypatch.setattr(sm.hub, "hub_snapshot_download", self.snapshot_download)
        monkeypatch.setattr(sm.hub, "hub_list_files", self.list_files)
        monkeypatch.setattr(sm.hub, "hub_resolve_commit", self.resolve)
        self.sm = sm
        return self

    def resolve(self, _repo_id, revision):
        self.resolved.append(revision)
        return self.tags[revision]

    def list_files(self, _repo_id, commit):
        assert commit == self.commit
        return {
            name: self.sm.hub.HubFile(size=len(data), sha256=hashlib.sha256(data).hexdigest(), git_oid=None)
            for name, data in self.files.items()
            if not name.startswith(".cache/")
        }

    def snapshot_download(self, repo_id, revision, allow_patterns, local_dir):
        self.downloads.append(
            {"repo_id": repo_id, "revision": revision, "allow_patterns": list(allow_patterns), "local_dir": local_dir}
        )
        matching = {n: d for n, d in self.files.items() if self.sm.files.matches(n, allow_patterns)}
        write_model(Path(local_dir), matching)
        write_model(Path(local_dir), {".cache/huggingface/trees/x.json": b"{}"})  # as huggingface_hub does
        return local_dir


def run(sm, capsys, *args: str) -> tuple[int, str, str]:
    code = sm.cli.main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def run_cli(env: dict, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "staging", *[str(a) for a in args]],
        env={**env, "PYTHONPATH": str(REPO_ROOT)},
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd="/",
    )


def common(server, bucket, prefix="models/flan-t5-small", revision=COMMIT_1, repo="google/flan-t5-small"):
    return [
        "--repo-id",
        repo,
        "--revision",
        revision,
        "--bucket",
        bucket,
        "--prefix",
        prefix,
        "--endpoint-url",
        server.endpoint,
    ]


# --------------------------------------------------------------------- staging


def test_stages_matching_files_with_sizes_sha256_metadata_and_manifest(sm, server, bucket, tmp_path, capsys):
    files = model_files()
    src = write_model(tmp_path / "src", files)

    code, out, err = run(sm, capsys, *common(server, bucket), "--source-dir", src)

    assert code == 0, err
    assert out.strip() == (
        f"staged: google/flan-t5-small@{COMMIT_1} at s3://{bucket}/models/flan-t5-small/ (5 files, 5 uploaded)"
    )
    prefix = "models/flan-t5-small/"
    assert server.keys(bucket) == sorted([prefix + p for p in STAGED] + [prefix + MANIFEST])
    for path in STAGED:
        obj = server.s3.get_object(Bucket=bucket, Key=prefix + path)
        body = obj["Body"].read()
        assert body == files[path]
        assert obj["ContentLength"] == len(files[path])
        assert obj["Metadata"] == {"sha256": hashlib.sha256(files[path]).hexdigest()}
    manifest = server.manifest(bucket, "models/flan-t5-small")
    assert manifest["format"] == "llm-ab-staging/2"
    assert (manifest["repo_id"], manifest["revision"], manifest["commit"], manifest["source"]) == (
        "google/flan-t5-small",
        COMMIT_1,
        None,
        "local",
    )
    assert manifest["allow_patterns"] == ["*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken"]
    assert manifest["allow_bin"] is False
    assert manifest["files"] == [
        {"path": p, "size": len(files[p]), "sha256": hashlib.sha256(files[p]).hexdigest(),
         "s3_checksum": base64.b64encode(hashlib.sha256(files[p]).digest()).decode()} for p in STAGED
    ]
    for path in STAGED:  # what S3 computed on the bytes it stored
        head = server.s3.head_object(Bucket=bucket, Key=prefix + path, ChecksumMode="ENABLED")
        assert head["ChecksumSHA256"] == base64.b64encode(hashlib.sha256(files[path]).digest()).decode()
    assert manifest["total_bytes"] == sum(len(files[p]) for p in STAGED)


def test_manifest_is_written_after_every_file(sm, server, bucket, tmp_path, capsys, recorder):
    src = write_model(tmp_path / "src", model_files())

    code, _, err = run(sm, capsys, *common(server, bucket), "--source-dir", src)

    assert code == 0, err
    puts = [key for op, key in recorder.writes() if op == "PutObject" and key != f"models/flan-t5-small/{LEASE}"]
    assert sorted(puts[:-1]) == ["models/flan-t5-small/" + p for p in STAGED]
    assert puts[-1] == f"models/flan-t5-small/{MANIFEST}"
    lease_writes = [op for op, key in recorder.writes() if key == f"models/flan-t5-small/{LEASE}"]
    assert lease_writes == ["PutObject", "PutObject", "DeleteObject"]  # taken, renewed before the manifest, released


def test_failed_upload_leaves_no_manifest_so_the_prefix_never_looks_complete(
    sm, server, bucket, tmp_path, capsys, monkeypatch
):
    prefix = "models/flan-t5-small"
    old = write_model(tmp_path / "old", model_files("v1"))
    assert run(sm, capsys, *common(server, bucket), "--source-dir", old)[0] == 0
    new = write_model(tmp_path / "new", model_files("v2"))
    real_upload = sm.s3.upload_file
    uploads = []

    def upload_then_fail(client, opts, f, config):
        uploads.append(f.path)
        if f.path == "tokenizer.json":  # model.safetensors of the new revision is already up
            raise ConnectionResetError("connection reset by peer")
        real_upload(client, opts, f, config)

    monkeypatch.setattr(sm.s3, "upload_file", upload_then_fail)

    with pytest.raises(ConnectionResetError):
        sm.cli.main(common(server, bucket, revision=COMMIT_2) + ["--source-dir", str(new)])

    assert uploads == ["model.safetensors", "tokenizer.json"]  # the other files were unchanged
    new_weights = server.s3.get_object(Bucket=bucket, Key=f"{prefix}/model.safetensors")["Body"].read()
    assert new_weights == model_files("v2")["model.safetensors"]
    assert f"{prefix}/{MANIFEST}" not in server.keys(bucket)  # neither the old one nor a new one
    monkeypatch.setattr(sm.s3, "upload_file", real_upload)
    code, _, err = run(sm, capsys, *common(server, bucket, revision=COMMIT_2), "--source-dir", new)
    assert code == 0, err
    assert server.manifest(bucket, prefix)["revision"] == COMMIT_2


def test_a_prune_keeps_every_object_of_a_model_staged_under_the_prefix(sm, server, bucket, tmp_path, capsys):
    """Stable at ``flan/<sha>``, canary at ``flan/<sha>/canary/<sha2>`` (the settings refuse it; another stack on the
    same bucket is not theirs to see): staging the stable deletes its own leftovers, none of the canary's objects."""
    stable, canary = f"flan/{COMMIT_1}", f"flan/{COMMIT_1}/canary/{COMMIT_2}"
    code, _, err = run(sm, capsys, *common(server, bucket, prefix=canary, revision=COMMIT_2,
                                           repo="google/flan-t5-base"),
                       "--source-dir", write_model(tmp_path / "canary", model_files("canary")))
    assert code == 0, err
    canary_objects = {key: server.s3.get_object(Bucket=bucket, Key=key)["Body"].read() for key in server.keys(bucket)}
    assert f"{canary}/{MANIFEST}" in canary_objects and len(canary_objects) == len(STAGED) + 1
    server.s3.put_object(Bucket=bucket, Key=f"{stable}/stale.json", Body=b"{}")

    code, out, err = run(sm, capsys, *common(server, bucket, prefix=stable), "--source-dir",
                         write_model(tmp_path / "stable", model_files("stable")), "--json")

    assert code == 0, err
    for key, body in canary_objects.items():
        assert server.s3.get_object(Bucket=bucket, Key=key)["Body"].read() == body, key
    summary = json.loads(out)
    assert summary["deleted"] == ["stale.json"] and summary["kept_foreign_prefixes"] == [canary]
    assert f"kept everything under s3://{bucket}/{canary}/: another model's prefix" in err
    assert server.keys(bucket) == sorted([*canary_objects, f"{stable}/{MANIFEST}", *(f"{stable}/{p}" for p in STAGED)])


def test_a_prefix_being_staged_under_ours_keeps_its_objects_and_uploads(sm, server, bucket, tmp_path, capsys):
    """Mid-staging the other model has no manifest yet (it is removed before any upload), only its lease."""
    stable, canary = f"flan/{COMMIT_1}", f"flan/{COMMIT_1}/canary/{COMMIT_2}"
    server.s3.put_object(Bucket=bucket, Key=f"{canary}/{LEASE}", Body=b'{"owner": "another stager"}')
    server.s3.put_object(Bucket=bucket, Key=f"{canary}/config.json", Body=b"{}")
    upload = server.s3.create_multipart_upload(Bucket=bucket, Key=f"{canary}/model.safetensors")

    code, out, err = run(sm, capsys, *common(server, bucket, prefix=stable), "--source-dir",
                         write_model(tmp_path / "stable", model_files()), "--json")

    assert code == 0, err
    assert {f"{canary}/{LEASE}", f"{canary}/config.json"} <= set(server.keys(bucket))
    assert json.loads(out)["aborted_uploads"] == []
    remaining = server.s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    assert [u["UploadId"] for u in remaining] == [upload["UploadId"]]


def test_second_run_skips_without_downloading_or_writing(sm, server, bucket, capsys, monkeypatch, recorder):
    hub = FakeHub(model_files()).install(sm, monkeypatch)
    assert run(sm, capsys, *common(server, bucket))[0] == 0
    assert len(hub.downloads) == 1
    before = {
        k: (h["ETag"], h["LastModified"])
        for k in server.keys(bucket)
        for h in [server.s3.head_object(Bucket=bucket, Key=k)]
    }
    recorder.calls.clear()

    code, out, err = run(sm, capsys, *common(server, bucket))

    assert code == 0, err
    assert out.strip() == f"already staged: google/flan-t5-small@{COMMIT_1} at s3://{bucket}/models/flan-t5-small/"
    assert "already staged" in err
    assert len(hub.downloads) == 1  # no second download
    assert recorder.writes() == []
    assert {op for op, _ in recorder.calls} == {"ListObjectsV2", "GetObject", "HeadObject"}
    after = {
        k: (h["ETag"], h["LastModified"])
        for k in server.keys(bucket)
        for h in [server.s3.head_object(Bucket=bucket, Key=k)]
    }
    assert after == before


def test_hub_download_gets_the_pinned_commit_and_allow_patterns(sm, server, bucket, tmp_path, capsys, monkeypatch):
    hub = FakeHub(model_files()).install(sm, monkeypatch)

    code, _, err = run(
        sm, capsys, *common(server, bucket), "--work-dir", tmp_path, "--allow-patterns", "*.json,*.safetensors"
    )

    assert code == 0, err
    assert hub.resolved == []  # a commit sha needs no resolving
    [call] = hub.downloads
    assert call["repo_id"] == "google/flan-t5-small"
    assert call["revision"] == COMMIT_1
    assert call["allow_patterns"] == ["*.json", "*.safetensors"]
    assert Path(call["local_dir"]).parent.parent == tmp_path
    assert not Path(call["local_dir"]).exists()  # the download is cleaned up
    manifest = server.manifest(bucket, "models/flan-t5-small")
    assert [f["path"] for f in manifest["files"]] == [
        "1_Pooling/config.json",
        "config.json",
        "model.safetensors",
        "tokenizer.json",
    ]
    assert (manifest["commit"], manifest["source"]) == (COMMIT_1, "hub")


def test_tag_revision_is_resolved_and_a_moved_tag_restages(sm, server, bucket, capsys, monkeypatch):
    hub = FakeHub(model_files("v1"), commit=COMMIT_1, tags={"v1.0": COMMIT_1}).install(sm, monkeypatch)
    code, _, err = run(sm, capsys, *common(server, bucket, revision="v1.0"))
    assert code == 0, err
    assert "is not a commit sha" in err
    assert [d["revision"] for d in hub.downloads] == [COMMIT_1]
    manifest = server.manifest(bucket, "models/flan-t5-small")
    assert (manifest["revision"], manifest["commit"]) == ("v1.0", COMMIT_1)

    assert run(sm, capsys, *common(server, bucket, revision="v1.0"))[0] == 0
    assert len(hub.downloads) == 1  # same tag, same commit: skipped

    hub.files, hub.commit, hub.tags["v1.0"] = model_files("v2"), COMMIT_2, COMMIT_2
    code, _, err = run(sm, capsys, *common(server, bucket, revision="v1.0"))
    assert code == 0, err
    assert f"v1.0 now points to {COMMIT_2}" in err
    assert [d["revision"] for d in hub.downloads] == [COMMIT_1, COMMIT_2]
    assert server.manifest(bucket, "models/flan-t5-small")["commit"] == COMMIT_2


def test_changed_revision_restages_keeps_identical_files_and_deletes_dropped_ones(sm, server, bucket, tmp_path, capsys):
    prefix = "models/flan-t5-small"
    old_files = model_files("v1") | {"special_tokens_map.json": b"{}"}
    new_files = model_files("v2")  # new weights and tokenizer, same config, no special_tokens_map.json
    server.s3.put_object(Bucket=bucket, Key="models/flan-t5-small-large/model.safetensors", Body=b"sibling")
    assert run(sm, capsys, *common(server, bucket), "--source-dir", write_model(tmp_path / "a", old_files))[0] == 0

    code, _, err = run(
        sm, capsys, *common(server, bucket, revision=COMMIT_2), "--source-dir", write_model(tmp_path / "b", new_files)
    )

    assert code == 0, err
    assert f"bucket holds google/flan-t5-small@{COMMIT_1}" in err
    assert f"deleted {prefix}/special_tokens_map.json" in err
    assert server.manifest(bucket, prefix)["revision"] == COMMIT_2
    assert server.keys(bucket) == sorted(
        [f"{prefix}/{p}" for p in STAGED] + [f"{prefix}/{MANIFEST}", "models/flan-t5-small-large/model.safetensors"]
    )
    body = server.s3.get_object(Bucket=bucket, Key=f"{prefix}/model.safetensors")["Body"].read()
    assert body == new_files["model.safetensors"]


def test_json_summary_lists_uploaded_unchanged_and_deleted_files(sm, server, bucket, tmp_path, capsys):
    old_files = model_files("v1") | {"special_tokens_map.json": b"{}"}
    assert run(sm, capsys, *common(server, bucket), "--source-dir", write_model(tmp_path / "a", old_files))[0] == 0

    code, out, err = run(
        sm,
        capsys,
        *common(server, bucket, revision=COMMIT_2),
        "--source-dir",
        write_model(tmp_path / "b", model_files("v2")),
        "--json",
    )

    assert code == 0, err
    summary = json.loads(out)
    assert summary["status"] == "staged"
    assert summary["revision"] == COMMIT_2
    assert summary["uploaded"] == ["model.safetensors", "tokenizer.json"]
    assert summary["unchanged"] == ["1_Pooling/config.json", "config.json", "spiece.model"]
    assert summary["deleted"] == ["special_tokens_map.json"]
    assert summary["files"] == 5
    assert summary["manifest_key"] == f"models/flan-t5-small/{MANIFEST}"


def test_missing_object_makes_the_skip_check_restage_that_file(sm, server, bucket, tmp_path, capsys, recorder):
    src = write_model(tmp_path / "src", model_files())
    assert run(sm, capsys, *common(server, bucket), "--source-dir", src)[0] == 0
    server.s3.delete_object(Bucket=bucket, Key="models/flan-t5-small/tokenizer.json")
    recorder.calls.clear()

    code, out, err = run(sm, capsys, *common(server, bucket), "--source-dir", src, "--json")

    assert code == 0, err
    assert "(tokenizer.json: missing)" in err
    summary = json.loads(out)
    assert summary["uploaded"] == ["tokenizer.json"]
    assert len(summary["unchanged"]) == 4
    assert [key for op, key in recorder.writes() if op == "PutObject" and not key.endswith(LEASE)] == [
        "models/flan-t5-small/tokenizer.json",
        f"models/flan-t5-small/{MANIFEST}",
    ]
    body = server.s3.get_object(Bucket=bucket, Key="models/flan-t5-small/tokenizer.json")["Body"].read()
    assert body == model_files()["tokenizer.json"]


@pytest.mark.parametrize(
    "corruption, reason",
    [
        ("truncated", "model.safetensors: size 1000 != 131072"),
        ("rewritten without a checksum", "model.safetensors: no S3 SHA-256 checksum (written without one)"),
    ],
)
def test_corrupted_object_is_detected_and_replaced(sm, server, bucket, tmp_path, capsys, corruption, reason):
    files = model_files()
    src = write_model(tmp_path / "src", files)
    assert run(sm, capsys, *common(server, bucket), "--source-dir", src)[0] == 0
    key = "models/flan-t5-small/model.safetensors"
    sha = hashlib.sha256(files["model.safetensors"]).hexdigest()
    if corruption == "truncated":
        server.s3.put_object(Bucket=bucket, Key=key, Body=files["model.safetensors"][:1000], Metadata={"sha256": sha})
    else:
        server.s3.put_object(Bucket=bucket, Key=key, Body=b"x" * len(files["model.safetensors"]))

    code, out, err = run(sm, capsys, *common(server, bucket), "--source-dir", src, "--json")

    assert code == 0, err
    assert reason in err
    assert json.loads(out)["uploaded"] == ["model.safetensors"]
    obj = server.s3.get_object(Bucket=bucket, Key=key)
    assert obj["Body"].read() == files["model.safetensors"]
    assert obj["Metadata"] == {"sha256": sha}


@pytest.mark.parametrize("mismatch", ["size", "content"])
def test_upload_verification_failure_names_the_file_and_exits_5(
    sm, server, bucket, tmp_path, capsys, monkeypatch, mismatch
):
    src = write_model(tmp_path / "src", model_files())

    def bad_upload(client, opts, f, _config):
        body = Path(f.abspath).read_bytes()
        sha = hashlib.sha256(body).hexdigest()
        if f.path == "model.safetensors":
            # lost a byte on the way, or one bit flipped (same size and sha256 metadata)
            body = body[:-1] if mismatch == "size" else bytes([body[0] ^ 1]) + body[1:]
        client.put_object(Bucket=opts.bucket, Key=opts.key(f.path), Body=body, Metadata={"sha256": sha},
                          ChecksumAlgorithm="SHA256")

    monkeypatch.setattr(sm.s3, "upload_file", bad_upload)

    code, out, err = run(sm, capsys, *common(server, bucket), "--source-dir", src, "--json")

    assert code == 5
    key = f"s3://{bucket}/models/flan-t5-small/model.safetensors"
    expected = "size 131071 != 131072" if mismatch == "size" else "content differs (S3 SHA-256 checksum "
    assert f"verification failed for model.safetensors ({key}) after upload: {expected}" in err
    assert json.loads(out)["exit_code"] == 5
    assert f"models/flan-t5-small/{MANIFEST}" not in server.keys(bucket)


def test_multipart_upload_of_a_large_file_is_verified(sm, server, bucket, tmp_path, capsys, recorder):
    big = os.urandom(6 * 1024 * 1024 + 123)
    src = write_model(tmp_path / "src", {"config.json": b"{}", "model.safetensors": big})

    code, _, err = run(sm, capsys, *common(server, bucket), "--source-dir", src, "--multipart-threshold-mb", "5")

    assert code == 0, err
    parts = [key for op, key in recorder.writes() if op == "UploadPart"]
    assert parts == ["models/flan-t5-small/model.safetensors"] * 2
    head = server.s3.head_object(Bucket=bucket, Key="models/flan-t5-small/model.safetensors")
    assert head["ContentLength"] == len(big)
    assert head["ETag"].strip('"').endswith("-2")
    assert head["Metadata"] == {"sha256": hashlib.sha256(big).hexdigest()}


# ----------------------------------------------------------------- bad sources


def test_snapshot_without_safetensors_fails_clearly(sm, server, bucket, tmp_path, capsys):
    src = write_model(tmp_path / "src", {"config.json": b"{}", "pytorch_model.bin": b"pickle"})

    code, _, err = run(sm, capsys, *common(server, bucket), "--source-dir", src)

    assert code == 4
    assert err.strip().splitlines()[-1] == (
        f"stage_model: error: google/flan-t5-small@{COMMIT_1} has no *.safetensors among the staged files "
        "(config.json): TGI on a read-only mount cannot convert *.bin weights; stage a revision with "
        "safetensors, or pass --allow-bin to stage *.bin weights anyway"
    )
    assert server.keys(bucket) == []


def test_allow_bin_stages_bin_weights_only_when_there_are_no_safetensors(sm, server, bucket, tmp_path, capsys):
    bin_only = write_model(tmp_path / "bin", {"config.json": b"{}", "pytorch_model.bin": b"pickle"})
    code, _, err = run(sm, capsys, *common(server, bucket, prefix="a"), "--source-dir", bin_only, "--allow-bin")
    assert code == 0, err
    assert server.keys(bucket) == ["a/.llm-ab-manifest.json", "a/config.json", "a/pytorch_model.bin"]
    assert server.manifest(bucket, "a")["allow_bin"] is True

    both = write_model(tmp_path / "both", model_files())
    code, _, err = run(sm, capsys, *common(server, bucket, prefix="b"), "--source-dir", both, "--allow-bin")
    assert code == 0, err
    assert "b/pytorch_model.bin" not in server.keys(bucket)
    assert "b/model.safetensors" in server.keys(bucket)


def test_hub_revision_without_safetensors_fails_before_downloading(sm, server, bucket, capsys, monkeypatch):
    hub = FakeHub({"config.json": b"{}", "pytorch_model.bin": b"pickle"}).install(sm, monkeypatch)

    code, _, err = run(sm, capsys, *common(server, bucket))

    assert code == 4
    assert "has no *.safetensors among the staged files (config.json)" in err
    assert hub.downloads == []


def test_download_that_differs_from_the_hub_listing_fails(sm, server, bucket, capsys, monkeypatch):
    hub = FakeHub(model_files()).install(sm, monkeypatch)
    listed = hub.list_files

    def listing_with_other_sha(repo_id, commit):
        out = listed(repo_id, commit)
        out["model.safetensors"] = sm.hub.HubFile(size=out["model.safetensors"].size, sha256="f" * 64, git_oid=None)
        return out

    monkeypatch.setattr(sm.hub, "hub_list_files", listing_with_other_sha)

    code, _, err = run(sm, capsys, *common(server, bucket))

    assert code == 4
    assert "model.safetensors: sha256 " in err and "differs from the Hub's " + "f" * 64 in err
    assert server.keys(bucket) == []


def test_hub_errors_are_reported_without_traceback(sm, server, bucket, capsys, monkeypatch):
    class RepositoryNotFoundError(Exception):
        pass

    def not_found(*_args):
        raise RepositoryNotFoundError("404 Client Error. Repository Not Found for url: .../api/models/google/nope")

    monkeypatch.setattr(sm.hub, "hub_list_files", not_found)

    code, _, err = run(sm, capsys, *common(server, bucket, repo="google/nope"))

    assert code == 4
    assert err.strip().splitlines()[-1] == (
        f"stage_model: error: listing google/nope@{COMMIT_1} failed: RepositoryNotFoundError: 404 Client Error. "
        "Repository Not Found for url: .../api/models/google/nope (check repo id and revision)"
    )


# --------------------------------------------------------------------- S3 errors


@pytest.mark.parametrize(
    "who, code_name",
    [("unknown key", "InvalidAccessKeyId"), ("wrong secret", "SignatureDoesNotMatch")],
)
def test_bad_credentials_exit_6_fatal_with_a_clear_message(
    sm, server, bucket, tmp_path, capsys, monkeypatch, who, code_name
):
    if who == "unknown key":
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWNKEY000000")
    else:
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", server.creds["stager"][1] + "x")

    code, out, err = run(
        sm, capsys, *common(server, bucket), "--source-dir", write_model(tmp_path / "s", model_files())
    )

    assert code == 6
    assert err == (
        f"stage_model: error: S3 rejected the credentials for endpoint {server.endpoint} ({code_name}): "
        "check the staging Secret\n"
    )
    assert out == ""


def test_credentials_without_s3_permissions_exit_6_access_denied(sm, server, bucket, tmp_path, capsys, monkeypatch):
    key, secret = server.creds["nobody"]
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)

    code, _, err = run(sm, capsys, *common(server, bucket), "--source-dir", write_model(tmp_path / "s", model_files()))

    assert code == 6
    assert err == (
        f"stage_model: error: S3 denied access to bucket '{bucket}' at endpoint {server.endpoint} (AccessDenied): "
        "the staging credentials need s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on it\n"
    )


def test_no_credentials_at_all_exit_6(sm, server, bucket, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("AWS_ACCESS_KEY_ID")
    monkeypatch.delenv("AWS_SECRET_ACCESS_KEY")

    code, _, err = run(sm, capsys, *common(server, bucket), "--source-dir", write_model(tmp_path / "s", model_files()))

    assert code == 6
    assert err == (
        f"stage_model: error: no usable S3 credentials for endpoint {server.endpoint} (NoCredentialsError): set "
        "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the staging Secret (or use IRSA)\n"
    )


def test_missing_bucket_exits_6_and_json_reports_the_error(server, env, tmp_path):
    proc = run_cli(
        env, *common(server, "no-such-bucket"), "--source-dir", write_model(tmp_path / "src", model_files()), "--json"
    )

    assert proc.returncode == 6
    message = (
        f"bucket 'no-such-bucket' does not exist at endpoint {server.endpoint} (create it or pass --create-bucket)"
    )
    assert proc.stderr.strip() == f"stage_model: error: {message}"
    assert json.loads(proc.stdout) == {"status": "error", "exit_code": 6, "error": message}


def test_create_bucket_creates_a_missing_bucket(sm, server, tmp_path, capsys):
    code, _, err = run(
        sm,
        capsys,
        *common(server, "created-by-stager"),
        "--source-dir",
        write_model(tmp_path / "s", model_files()),
        "--create-bucket",
    )

    assert code == 0, err
    assert "created bucket 'created-by-stager'" in err
    assert len(server.keys("created-by-stager")) == 6


def test_unreachable_endpoint_fails_fast_with_a_clear_error(sm, tmp_path, capsys):
    port = free_port()  # nothing listens there
    started = time.monotonic()

    code, _, err = run(
        sm, capsys,
        "--repo-id", "google/flan-t5-small", "--revision", COMMIT_1, "--bucket", "models", "--prefix", "m",
        "--endpoint-url", f"http://127.0.0.1:{port}", "--source-dir", write_model(tmp_path / "src", model_files()),
        "--wait-seconds", "1",
    )  # fmt: skip

    elapsed = time.monotonic() - started
    assert code == 3
    waiting, error = err.splitlines()
    assert re.fullmatch(
        rf"stage_model: waiting for S3 endpoint http://127\.0\.0\.1:{port} "
        r"\(cannot connect \(EndpointConnectionError\)\); retrying in (0\.\d|1\.0)s",  # the rest of the 1 s
        waiting,
    )
    assert error == (
        f"stage_model: error: S3 endpoint http://127.0.0.1:{port} still unusable after waiting 1s (2 attempts; "
        "last: cannot connect (EndpointConnectionError)): is it running and is --endpoint-url right?"
    )
    assert elapsed < 5


def test_waits_for_an_endpoint_that_starts_late(sm, tmp_path, capsys):
    port = free_port()
    late, _ = start_moto(delay=0.5, port=port)  # a fresh moto (no auth, no buckets), listening after >= 0.5 s
    try:
        code, out, err = run(
            sm, capsys,
            "--repo-id", "google/flan-t5-small", "--revision", COMMIT_1, "--bucket", "late", "--prefix", "m",
            "--endpoint-url", f"http://127.0.0.1:{port}", "--source-dir", write_model(tmp_path / "src", model_files()),
            "--wait-seconds", "30", "--create-bucket",
        )  # fmt: skip
    finally:
        stop(late)

    assert code == 0, err
    assert err.startswith(f"stage_model: waiting for S3 endpoint http://127.0.0.1:{port} (cannot connect")
    assert re.search(rf"S3 endpoint http://127.0.0.1:{port} answered after [2-9] attempts", err)
    assert "created bucket 'late'" in err
    assert out == f"staged: google/flan-t5-small@{COMMIT_1} at s3://late/m/ (5 files, 5 uploaded)\n"


def test_starting_server_answers_are_retried_until_the_bucket_is_usable(sm, monkeypatch):
    """MinIO answers 503 XMinioServerNotInitialized while it starts: wait, don't fail."""
    from botocore.exceptions import ClientError

    answers = [503, 503, 200]
    sleeps: list[float] = []

    class StartingMinio:
        def list_objects_v2(self, **kwargs):
            assert kwargs == {"Bucket": "models", "Prefix": "m/", "MaxKeys": 1}
            if answers.pop(0) == 503:
                error = {"Code": "XMinioServerNotInitialized", "Message": "Server not initialized, please try again."}
                raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 503}}, "ListObjectsV2")
            return {"KeyCount": 0}

    monkeypatch.setattr(sm.s3, "make_client", lambda *_, **__: StartingMinio())
    opts = sm.cli.parse_options(["--repo-id", "r/m", "--revision", COMMIT_1, "--bucket", "models", "--prefix", "m"])

    sm.s3.wait_for_bucket(opts, sleep=sleeps.append, clock=lambda: 0.0)

    assert answers == []
    assert sleeps == [1.0, 2.0]  # exponential backoff


def test_deadline_caps_the_wait_for_a_server_that_never_gets_ready(sm, monkeypatch):
    from botocore.exceptions import ClientError

    now = [0.0]
    sleeps: list[float] = []

    class NeverReady:
        def list_objects_v2(self, **_):
            raise ClientError(
                {"Error": {"Code": "ServiceUnavailable"}, "ResponseMetadata": {"HTTPStatusCode": 503}}, "L"
            )

    def sleep(seconds):
        sleeps.append(seconds)
        now[0] += seconds

    monkeypatch.setattr(sm.s3, "make_client", lambda *_, **__: NeverReady())
    opts = sm.cli.parse_options(
        ["--repo-id", "r/m", "--revision", COMMIT_1, "--bucket", "models", "--prefix", "m", "--wait-seconds", "20"]
    )

    with pytest.raises(sm.common.StageError) as failed:
        sm.s3.wait_for_bucket(opts, sleep=sleep, clock=lambda: now[0])

    assert sleeps == [1.0, 2.0, 4.0, 8.0, 5.0]  # doubling, capped by the deadline
    assert failed.value.code == 3
    assert "still unusable after waiting 20s (6 attempts; last: ServiceUnavailable)" in failed.value.message


# ----------------------------------------------------------------------- usage


@pytest.mark.parametrize(
    "change, message",
    [
        ({"--revision": ""}, "--revision is required (or set STAGING_REVISION)"),
        ({"--revision": "   "}, "--revision is required (or set STAGING_REVISION)"),
        ({"--prefix": "../etc"}, "--prefix must be a relative path"),
        ({"--prefix": "/"}, "--prefix must be a relative path"),
        ({"--endpoint-url": "minio:9000"}, "--endpoint-url must be an http:// or https:// URL: 'minio:9000'"),
        ({"--wait-seconds": "soon"}, "--wait-seconds must be a number >= 0: 'soon'"),
        ({"--multipart-threshold-mb": "1"}, "--multipart-threshold-mb must be an integer >= 5: '1'"),
        ({"--source-dir": "/nonexistent/model"}, "--source-dir '/nonexistent/model' is not a directory"),
    ],
)
def test_bad_usage_exits_2_with_a_message(sm, capsys, tmp_path, change, message):
    args = {
        "--repo-id": "google/flan-t5-small",
        "--revision": COMMIT_1,
        "--bucket": "models",
        "--prefix": "m",
        "--endpoint-url": "http://127.0.0.1:9",
        "--source-dir": str(tmp_path),
    } | change
    argv = [x for pair in args.items() for x in pair]

    code, out, err = run(sm, capsys, *argv)

    assert code == 2
    assert f"stage_model: error: {message}" in err
    assert out == ""


def test_unknown_flag_exits_2(env):
    proc = run_cli(env, "--repo", "x")
    assert proc.returncode == 2
    assert "unrecognized arguments: --repo x" in proc.stderr


def test_cli_reads_settings_from_env_and_prints_json(server, env, bucket, tmp_path):
    src = write_model(tmp_path / "src", model_files())
    env = env | {
        "STAGING_REPO_ID": "google/flan-t5-small",
        "STAGING_REVISION": COMMIT_1,
        "STAGING_BUCKET": bucket,
        "STAGING_PREFIX": "/models/flan-t5-small/",
        "STAGING_ENDPOINT_URL": server.endpoint,
        "STAGING_SOURCE_DIR": str(src),
        "STAGING_ALLOW_PATTERNS": "*.json, *.safetensors",
        "STAGING_JSON": "true",
    }

    proc = run_cli(env)

    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["status"] == "staged"
    assert summary["prefix"] == "models/flan-t5-small"
    assert summary["uploaded"] == ["1_Pooling/config.json", "config.json", "model.safetensors", "tokenizer.json"]
    assert server.manifest(bucket, "models/flan-t5-small")["allow_patterns"] == ["*.json", "*.safetensors"]
    assert json.loads(run_cli(env).stdout)["status"] == "already-staged"


def test_tool_is_a_flat_package_that_imports_only_stdlib_huggingface_hub_and_boto3():
    """Shipped flat by ConfigMap (one key per file), so no subpackages; siblings by relative import."""
    import ast

    assert not [p for p in PACKAGE.iterdir() if p.is_dir() and p.name != "__pycache__"]
    imported = set()
    for module in PACKAGE.glob("*.py"):
        for node in ast.walk(ast.parse(module.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                imported.add(node.module.split(".")[0])
    third_party = imported - set(sys.stdlib_module_names) - {"__future__"}
    assert third_party == {"boto3", "botocore", "huggingface_hub"}
    requirements = (REPO_ROOT / "staging" / "requirements.txt").read_text().lower()
    assert "huggingface_hub==2.4.0" in requirements and "boto3==1.44.5" in requirements and "botocore==" in requirements


# ------------------------------------------------- the real huggingface_hub path


class FakeHubServer:
    """Answers the Hub HTTP calls that huggingface_hub.snapshot_download makes for a pinned commit."""

    def __init__(self, repo_id: str, commit: str, files: dict[str, bytes], lfs: set[str], host: str = "127.0.0.1"):
        self.repo_id, self.commit, self.files, self.lfs = repo_id, commit, files, lfs
        self.listed_sha256: dict[str, str] = {}  # overrides, to simulate a bad download
        self.requests: list[tuple[str, str]] = []
        hub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                hub.handle(self, head=False)

            def do_HEAD(self):
                hub.handle(self, head=True)

        self.httpd = ThreadingHTTPServer((host, 0), Handler)
        self.url = f"http://{host}:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    @staticmethod
    def git_oid(data: bytes) -> str:
        return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()

    def handle(self, req: BaseHTTPRequestHandler, head: bool) -> None:
        path = unquote(urlsplit(req.path).path)
        self.requests.append((req.command, path))
        tree = f"/api/models/{self.repo_id}/tree/{self.commit}"
        resolve = f"/{self.repo_id}/resolve/{self.commit}/"
        if path == tree:
            entries = []
            for name, data in self.files.items():
                entry = {"type": "file", "path": name, "size": len(data), "oid": self.git_oid(data)}
                if name in self.lfs:
                    sha = self.listed_sha256.get(name, hashlib.sha256(data).hexdigest())
                    entry["lfs"] = {"oid": sha, "size": len(data), "pointerSize": 134}
                entries.append(entry)
            return self.send(req, 200, json.dumps(entries).encode(), {"Content-Type": "application/json"}, head)
        if path.startswith(resolve) and path[len(resolve) :] in self.files:
            name = path[len(resolve) :]
            data = self.files[name]
            etag = hashlib.sha256(data).hexdigest() if name in self.lfs else self.git_oid(data)
            headers = {"X-Repo-Commit": self.commit, "ETag": f'"{etag}"', "Content-Type": "application/octet-stream"}
            return self.send(req, 200, data, headers, head)
        return self.send(req, 404, b'{"error": "not found"}', {"X-Error-Code": "EntryNotFound"}, head)

    @staticmethod
    def send(req, status, body, headers, head):
        req.send_response(status)
        for name, value in headers.items():
            req.send_header(name, value)
        req.send_header("Content-Length", str(len(body)))
        req.end_headers()
        if not head:
            req.wfile.write(body)

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.fixture
def fake_hub():
    files = {
        "config.json": b'{"model_type": "t5"}\n',
        "tokenizer.json": b'{"version": "1.0"}\n',
        "model.safetensors": hashlib.sha256(b"w").digest() * 2000,
        "pytorch_model.bin": b"pickle" * 100,
        "README.md": b"# tiny\n",
    }
    hub = FakeHubServer("acme/tiny-t5", COMMIT_1, files, lfs={"model.safetensors", "pytorch_model.bin"})
    yield hub
    hub.close()


def hub_env(env: dict, hub: FakeHubServer) -> dict:
    env = env | {"HF_ENDPOINT": hub.url, "HF_HUB_DISABLE_TELEMETRY": "1", "HF_HUB_DISABLE_XET": "1"}
    env.pop("HF_HUB_OFFLINE")
    return env


def test_real_snapshot_download_stages_the_pinned_commit(server, env, bucket, tmp_path, fake_hub):
    proc = run_cli(
        hub_env(env, fake_hub), *common(server, bucket, repo="acme/tiny-t5"), "--work-dir", tmp_path, "--json"
    )

    assert proc.returncode == 0, proc.stderr
    summary = json.loads(proc.stdout)
    assert summary["uploaded"] == ["config.json", "model.safetensors", "tokenizer.json"]
    downloaded = sorted(p for m, p in fake_hub.requests if m == "GET" and "/resolve/" in p)
    assert downloaded == [f"/acme/tiny-t5/resolve/{COMMIT_1}/{n}" for n in summary["uploaded"]]
    manifest = server.manifest(bucket, "models/flan-t5-small")
    assert (manifest["repo_id"], manifest["commit"], manifest["source"]) == ("acme/tiny-t5", COMMIT_1, "hub")
    for entry in manifest["files"]:
        assert entry["sha256"] == hashlib.sha256(fake_hub.files[entry["path"]]).hexdigest()
    assert list(tmp_path.iterdir()) == []  # download removed

    fake_hub.requests.clear()
    again = run_cli(hub_env(env, fake_hub), *common(server, bucket, repo="acme/tiny-t5"))
    assert again.returncode == 0, again.stderr
    assert again.stdout.startswith("already staged:")
    assert fake_hub.requests == []  # a pinned commit that is staged needs no Hub at all


def test_real_download_with_a_wrong_checksum_is_rejected(server, env, bucket, fake_hub):
    fake_hub.listed_sha256["model.safetensors"] = "e" * 64

    proc = run_cli(hub_env(env, fake_hub), *common(server, bucket, repo="acme/tiny-t5"))

    assert proc.returncode == 4
    assert proc.stderr.strip().splitlines()[-1].startswith("stage_model: error: model.safetensors: sha256 ")
    assert "differs from the Hub's " + "e" * 64 in proc.stderr
    assert server.keys(bucket) == []


def test_real_download_of_an_unknown_revision_exits_4(server, env, bucket, fake_hub):
    proc = run_cli(hub_env(env, fake_hub), *common(server, bucket, repo="acme/tiny-t5", revision=COMMIT_2))

    assert proc.returncode == 4
    assert (
        proc.stderr.strip().splitlines()[-1].startswith(f"stage_model: error: listing acme/tiny-t5@{COMMIT_2} failed: ")
    )
    assert "Traceback" not in proc.stderr
