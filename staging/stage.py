"""Staging itself: already staged? otherwise download, verify, upload, prune and write the manifest."""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
import os
import tempfile
import time
from dataclasses import dataclass, field
from typing import Any

from . import hub, lease, s3
from .common import COMMIT_RE, EXIT_VERIFY, MANIFEST_FORMAT, MANIFEST_NAME, META_SHA256, Options, StageError, human, log
from .files import b64, check_weights, collect_files, effective_patterns, list_local, matches
from .hub import _hub_call, verify_against_hub
from .s3 import (
    check_object,
    describe_s3_error,
    foreign_prefixes,
    head,
    list_keys,
    object_matches,
    read_manifest,
    staged_state,
    under_any,
    wait_for_bucket,
)


@dataclass
class Result:
    status: str  # "staged" | "already-staged"
    opts: Options
    commit: str | None = None
    files: list[dict] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    aborted: list[str] = field(default_factory=list)
    """Keys of incomplete multipart uploads aborted before staging."""
    kept_foreign: list[str] = field(default_factory=list)
    """Prefixes under ours holding another model's manifest or lease: left alone by the prune."""
    reason: str = ""

    def summary(self) -> dict:
        o = self.opts
        return {
            "status": self.status,
            "repo_id": o.repo_id,
            "revision": o.revision,
            "commit": self.commit,
            "bucket": o.bucket,
            "prefix": o.prefix,
            "endpoint_url": o.endpoint_url,
            "manifest_key": o.manifest_key,
            "files": len(self.files),
            "total_bytes": sum(f["size"] for f in self.files),
            "uploaded": self.uploaded,
            "unchanged": self.unchanged,
            "deleted": self.deleted,
            "aborted_uploads": self.aborted,
            "kept_foreign_prefixes": self.kept_foreign,
            "reason": self.reason,
        }


def stage(opts: Options) -> Result:
    import boto3
    from boto3.exceptions import Boto3Error  # S3UploadFailedError and friends
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.session.Session()  # one per run: clients share its loaded service model
    wait_for_bucket(opts, session=session)
    client = s3.make_client(opts, session=session)
    try:
        return _stage(client, opts)
    except (ClientError, BotoCoreError, Boto3Error) as e:
        raise describe_s3_error(e, opts) from None


def _stage(client: Any, opts: Options) -> Result:
    where = f"s3://{opts.bucket}/{opts.prefix}/"
    from_hub = opts.source_dir is None
    commit: str | None = None
    if from_hub:
        if COMMIT_RE.match(opts.revision):
            commit = opts.revision
        else:
            log(f"warning: revision {opts.revision!r} is not a commit sha; pin a commit for reproducible variants")
            commit = _hub_call("resolving", opts, lambda: hub.hub_resolve_commit(opts.repo_id, opts.revision))

    done = _already_staged(client, opts, commit)
    if isinstance(done, Result):
        return done
    held = lease.acquire(client, opts)
    try:
        done = _already_staged(client, opts, commit)  # another stager may have staged it while we waited
        if isinstance(done, Result):
            return done
        log(f"staging {opts.repo_id}@{opts.revision} to {where} ({done})")
        return _stage_locked(client, opts, commit, held)
    finally:
        held.release()


def _already_staged(client: Any, opts: Options, commit: str | None) -> Result | str:
    """The "already staged" Result when the manifest and every object's S3 checksum match, else why not."""
    manifest = read_manifest(client, opts)
    why = staged_state(client, opts, manifest, commit)
    if why is not None:
        return why
    assert manifest is not None
    where = f"s3://{opts.bucket}/{opts.prefix}/"
    log(f"{opts.repo_id}@{opts.revision} already staged at {where} ({len(manifest['files'])} files, content "
        "checksums match); nothing to do")
    return Result("already-staged", opts, commit=manifest.get("commit"), files=manifest["files"],
                  reason="already staged")


def _stage_locked(client: Any, opts: Options, commit: str | None, held: lease.Lease) -> Result:
    where = f"s3://{opts.bucket}/{opts.prefix}/"
    from_hub = opts.source_dir is None
    result = Result("staged", opts, commit=commit)
    for key in s3.abort_incomplete_uploads(client, opts):
        result.aborted.append(key)
        log(f"aborted an incomplete multipart upload of {key} (left by a stager that stopped)")

    with tempfile.TemporaryDirectory(prefix="stage-model-", dir=opts.work_dir) as tmp:
        if from_hub:
            assert commit is not None
            expected = _hub_call("listing", opts, lambda: hub.hub_list_files(opts.repo_id, commit))
            patterns = effective_patterns(expected, opts)
            check_weights(sorted(p for p in expected if matches(p, patterns)), opts, patterns)  # before downloading
            local_dir = os.path.join(tmp, "snapshot")
            started = time.monotonic()
            root = _hub_call(
                "downloading", opts, lambda: hub.hub_snapshot_download(opts.repo_id, commit, patterns, local_dir)
            )
            files = collect_files(str(root), patterns, opts.multipart_threshold)
            took = time.monotonic() - started
            log(f"downloaded {len(files)} files ({human(sum(f.size for f in files))}) in {took:.1f}s")
            verify_against_hub(files, expected, opts, patterns)
        else:
            patterns = effective_patterns(list_local(opts.source_dir), opts)  # type: ignore[arg-type]
            files = collect_files(opts.source_dir, patterns, opts.multipart_threshold)  # type: ignore[arg-type]
            check_weights([f.path for f in files], opts, patterns)

        from boto3.s3.transfer import TransferConfig

        transfer = TransferConfig(
            multipart_threshold=opts.multipart_threshold,
            multipart_chunksize=opts.multipart_threshold,
            max_concurrency=4,
        )
        # A manifest present means "complete and matching": remove it before touching anything.
        if head(client, opts.bucket, opts.manifest_key) is not None:
            client.delete_object(Bucket=opts.bucket, Key=opts.manifest_key)

        checksums: dict[str, str] = {}
        for f in files:
            held.check()
            key = opts.key(f.path)
            why, checksum = check_object(client, opts, f)
            if why is None:
                assert checksum is not None
                checksums[f.path] = checksum
                result.unchanged.append(f.path)
                log(f"unchanged {f.path} ({human(f.size)}, content checksum matches)")
                continue
            started = time.monotonic()
            s3.upload_file(client, opts, f, transfer)
            why_not, checksum = check_object(client, opts, f)
            if why_not:
                raise StageError(
                    EXIT_VERIFY, f"verification failed for {f.path} (s3://{opts.bucket}/{key}) after upload: {why_not}"
                )
            assert checksum is not None
            checksums[f.path] = checksum
            result.uploaded.append(f.path)
            log(f"uploaded {f.path} ({human(f.size)}) in {time.monotonic() - started:.1f}s, verified ({why})")

    keep = {opts.key(f.path) for f in files}
    listed = list_keys(client, opts)
    foreign = foreign_prefixes(listed, opts)
    for prefix in sorted(foreign):
        result.kept_foreign.append(prefix)
        log(f"kept everything under s3://{opts.bucket}/{prefix}/: another model's prefix (it holds its own "
            "manifest or lease), never pruned")
    for key in listed:
        if key not in keep and key not in (opts.manifest_key, opts.lease_key) and not under_any(key, foreign):
            client.delete_object(Bucket=opts.bucket, Key=key)
            result.deleted.append(key[len(opts.prefix) + 1 :])
            log(f"deleted {key} (not in {opts.repo_id}@{opts.revision})")

    result.files = [{"path": f.path, "size": f.size, "sha256": f.sha256, "s3_checksum": checksums[f.path]}
                    for f in files]
    new_manifest = {
        "format": MANIFEST_FORMAT,
        "repo_id": opts.repo_id,
        "revision": opts.revision,
        "commit": commit,
        "source": "hub" if from_hub else "local",
        "allow_patterns": list(opts.allow_patterns),
        "allow_bin": opts.allow_bin,
        "files": result.files,
        "total_bytes": sum(f.size for f in files),
        "staged_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    body = (json.dumps(new_manifest, indent=2, sort_keys=True) + "\n").encode()
    held.renew()  # still ours at the moment the prefix is declared complete
    client.put_object(
        Bucket=opts.bucket,
        Key=opts.manifest_key,
        Body=body,
        ContentType="application/json",
        ChecksumAlgorithm="SHA256",
        Metadata={META_SHA256: hashlib.sha256(body).hexdigest()},
    )
    manifest_head = head(client, opts.bucket, opts.manifest_key)
    why_not = object_matches(manifest_head, len(body), b64(hashlib.sha256(body).digest()))
    if why_not:
        raise StageError(EXIT_VERIFY, f"verification failed for {MANIFEST_NAME} after upload: {why_not}")
    total = sum(f.size for f in files)
    log(
        f"staged {opts.repo_id}@{opts.revision} to {where}: {len(files)} files, {human(total)} "
        f"({len(result.uploaded)} uploaded, {len(result.unchanged)} unchanged, {len(result.deleted)} deleted)"
    )
    return result
