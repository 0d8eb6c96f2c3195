"""The S3 side: clients, waiting for the bucket, objects and the manifest, errors in plain words."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable
from typing import Any

from .common import (
    ACCESS_DENIED_CODES,
    CREDENTIAL_ERROR_CODES,
    EXIT_S3,
    EXIT_S3_DENIED,
    LEASE_NAME,
    MANIFEST_FORMAT,
    MANIFEST_NAME,
    META_SHA256,
    RETRYABLE_CODES,
    Options,
    StageError,
    log,
)
from .files import LocalFile, s3_checksum


def _error_code(e: Exception) -> str:
    response = getattr(e, "response", None) or {}
    return str(response.get("Error", {}).get("Code") or "")


def _status(e: Exception) -> int:
    response = getattr(e, "response", None) or {}
    return int(response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)


def describe_s3_error(e: Exception, opts: Options, what: str = "") -> StageError:
    """Turn a boto3/botocore exception into a one-line StageError(EXIT_S3)."""
    from botocore.exceptions import NoCredentialsError, PartialCredentialsError

    if isinstance(e, (NoCredentialsError, PartialCredentialsError)):
        return StageError(
            EXIT_S3_DENIED,
            f"no usable S3 credentials for endpoint {opts.endpoint_label} ({type(e).__name__}): set "
            "AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY from the staging Secret (or use IRSA)",
        )
    cause = e
    # boto3's S3UploadFailedError wraps the ClientError
    if not getattr(e, "response", None) and isinstance(getattr(e, "__cause__", None), Exception):
        cause = e.__cause__  # type: ignore[assignment]
    code = _error_code(cause)
    status = _status(cause)
    if code in CREDENTIAL_ERROR_CODES:
        return StageError(
            EXIT_S3_DENIED,
            f"S3 rejected the credentials for endpoint {opts.endpoint_label} ({code}): check the staging Secret",
        )
    if code in ACCESS_DENIED_CODES or (status == 403 and not code.isalpha()):
        return StageError(
            EXIT_S3_DENIED,
            f"S3 denied access to bucket '{opts.bucket}' at endpoint {opts.endpoint_label} ({code or status}): the "
            "staging credentials need s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on it",
        )
    if code == "NoSuchBucket":
        return StageError(
            EXIT_S3_DENIED,
            f"bucket '{opts.bucket}' does not exist at endpoint {opts.endpoint_label} "
            "(create it or pass --create-bucket)",
        )
    if code == "AuthorizationHeaderMalformed":
        return StageError(
            EXIT_S3, f"S3 endpoint {opts.endpoint_label} rejected the request signature ({code}): check AWS_REGION"
        )
    message = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    where = f" {what}" if what else ""
    return StageError(EXIT_S3, f"S3 error{where} at endpoint {opts.endpoint_label}: {message}")


def make_client(opts: Options, *, probe: bool = False, session: Any = None) -> Any:
    import boto3
    from botocore.config import Config

    region = os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"
    config = Config(
        region_name=region,
        connect_timeout=5 if probe else 10,
        read_timeout=15 if probe else 120,
        retries={"total_max_attempts": 1} if probe else {"mode": "standard", "max_attempts": 10},
        s3={"addressing_style": "path"} if opts.endpoint_url else {},
        user_agent_extra="llm-ab-stage-model",
    )
    return (session or boto3.session.Session()).client("s3", endpoint_url=opts.endpoint_url, config=config)


def wait_for_bucket(
    opts: Options,
    *,
    session: Any = None,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Check the bucket is reachable and usable, waiting for a starting endpoint.

    Connection failures and 5xx/SlowDown answers are retried with backoff until
    --wait-seconds have passed; credential and permission answers are retried for
    --auth-grace-seconds (an IAM role or MinIO user just created may take a moment
    to work), then fail, as a missing bucket does at once.
    """
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

    client = make_client(opts, probe=True, session=session)
    started = clock()
    deadline = started + opts.wait_seconds
    delay = 1.0
    attempt = 0
    created = False
    while True:
        attempt += 1
        try:
            client.list_objects_v2(Bucket=opts.bucket, Prefix=f"{opts.prefix}/", MaxKeys=1)
            if attempt > 1:
                log(f"S3 endpoint {opts.endpoint_label} answered after {attempt} attempts")
            return
        except ClientError as e:
            code, status = _error_code(e), _status(e)
            if code == "NoSuchBucket" and opts.create_bucket and not created:
                _create_bucket(client, opts)
                created = True
                continue
            refused = code in CREDENTIAL_ERROR_CODES or code in ACCESS_DENIED_CODES
            if code in RETRYABLE_CODES or status >= 500:
                last = f"{code or status}"
            elif refused and clock() - started < opts.auth_grace_seconds:
                last = f"{code} (credentials may still be propagating)"
            else:
                raise describe_s3_error(e, opts, f"checking bucket '{opts.bucket}'") from None
        except (ConnectionError, HTTPClientError) as e:
            last = f"cannot connect ({type(e).__name__})"
        except BotoCoreError as e:
            raise describe_s3_error(e, opts, f"checking bucket '{opts.bucket}'") from None
        remaining = deadline - clock()
        if remaining <= 0:
            raise StageError(
                EXIT_S3,
                f"S3 endpoint {opts.endpoint_label} still unusable after waiting {opts.wait_seconds:g}s "
                f"({attempt} attempt{'s' if attempt != 1 else ''}; last: {last}): is it running and is "
                "--endpoint-url right?",
            )
        pause = min(delay, remaining)
        log(f"waiting for S3 endpoint {opts.endpoint_label} ({last}); retrying in {pause:.1f}s")
        sleep(pause)
        delay = min(delay * 2, 10.0)


def _create_bucket(client: Any, opts: Options) -> None:
    from botocore.exceptions import ClientError

    region = client.meta.region_name
    kwargs: dict[str, Any] = {"Bucket": opts.bucket}
    if region and region != "us-east-1":
        kwargs["CreateBucketConfiguration"] = {"LocationConstraint": region}
    try:
        client.create_bucket(**kwargs)
        log(f"created bucket '{opts.bucket}'")
    except ClientError as e:
        if _error_code(e) not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
            raise describe_s3_error(e, opts, f"creating bucket '{opts.bucket}'") from None


def head(client: Any, bucket: str, key: str, *, part_number: int | None = None) -> dict | None:
    """HEAD of an object with its S3 checksum (ChecksumMode ENABLED); of one part when ``part_number``."""
    from botocore.exceptions import ClientError

    extra: dict[str, Any] = {"PartNumber": part_number} if part_number else {}
    try:
        return client.head_object(Bucket=bucket, Key=key, ChecksumMode="ENABLED", **extra)
    except ClientError as e:
        if _error_code(e) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def object_checksum(info: dict) -> str | None:
    """The object's S3 SHA-256 checksum as ``<base64>`` (one PUT) or ``<base64>-<parts>`` (multipart),
    or None when it was written without one. (Some servers leave the ``-<parts>`` off; the ETag has it.)"""
    value = info.get("ChecksumSHA256")
    if not value:
        return None
    digest, _, parts = value.partition("-")
    if not parts:
        etag = str(info.get("ETag") or "").strip('"')
        parts = etag.rpartition("-")[2] if "-" in etag else ""
    return f"{digest}-{parts}" if parts else digest


def object_matches(info: dict | None, size: int, checksum: str) -> str | None:
    """None if the HEAD result has this size and S3 SHA-256 checksum, else why not."""
    if info is None:
        return "missing"
    if info.get("ContentLength") != size:
        return f"size {info.get('ContentLength')} != {size}"
    got = object_checksum(info)
    if got is None:
        return "no S3 SHA-256 checksum (written without one)"
    if got != checksum:
        return f"content differs (S3 SHA-256 checksum {got} != {checksum})"
    return None


def check_object(client: Any, opts: Options, f: LocalFile) -> tuple[str | None, str | None]:
    """(why the object at ``f``'s key does not hold ``f``'s bytes or None, the object's S3 checksum when
    it does). The checksum S3 computed on the bytes it stored is compared with the one of the local file
    for the same part layout (a multipart object's part size is asked of S3), so the content is proved
    without downloading it."""
    key = opts.key(f.path)
    info = head(client, opts.bucket, key)
    if info is None or info.get("ContentLength") != f.size or object_checksum(info) is None:
        return object_matches(info, f.size, f.checksum), None
    got = object_checksum(info)
    assert got is not None
    if "-" in got:
        part = head(client, opts.bucket, key, part_number=1)
        part_size = int((part or {}).get("ContentLength") or 0) or None
    else:
        part_size = None
    expected = f.checksum if part_size == f.part_size else s3_checksum(f.abspath, part_size)
    why = object_matches(info, f.size, expected)
    return (why, None) if why else (None, got)


def read_manifest(client: Any, opts: Options) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        body = client.get_object(Bucket=opts.bucket, Key=opts.manifest_key)["Body"].read()
    except ClientError as e:
        if _error_code(e) in ("NoSuchKey", "404", "NotFound"):
            return None
        raise
    try:
        manifest = json.loads(body)
        if manifest.get("format") != MANIFEST_FORMAT or not isinstance(manifest.get("files"), list):
            raise ValueError(f"format {manifest.get('format')!r}, not {MANIFEST_FORMAT}")
        for entry in manifest["files"]:
            if not (isinstance(entry.get("path"), str) and isinstance(entry.get("size"), int) and entry.get("sha256")
                    and isinstance(entry.get("s3_checksum"), str)):
                raise ValueError("bad file entry")
        return manifest
    except (ValueError, AttributeError, TypeError) as e:
        log(f"warning: ignoring unreadable manifest s3://{opts.bucket}/{opts.manifest_key} ({e})")
        return None


def staged_state(client: Any, opts: Options, manifest: dict | None, commit: str | None) -> str | None:
    """None if the bucket already holds exactly what we would stage; else the reason it doesn't."""
    if manifest is None:
        return "no manifest"
    recorded = f"{manifest.get('repo_id')}@{manifest.get('revision')}"
    if manifest.get("repo_id") != opts.repo_id or manifest.get("revision") != opts.revision:
        return f"bucket holds {recorded}"
    if commit is not None and manifest.get("commit") not in (None, commit):
        return f"{opts.revision} now points to {commit}, bucket holds commit {manifest.get('commit')}"
    if sorted(manifest.get("allow_patterns") or []) != sorted(opts.allow_patterns):
        return f"allow patterns changed (bucket: {','.join(manifest.get('allow_patterns') or [])})"
    if bool(manifest.get("allow_bin")) != opts.allow_bin:
        return f"--allow-bin changed (bucket: {bool(manifest.get('allow_bin'))})"
    for entry in manifest["files"]:
        info = head(client, opts.bucket, opts.key(entry["path"]))
        why = object_matches(info, entry["size"], entry["s3_checksum"])
        if why:
            return f"{entry['path']}: {why}"
    return None


def upload_file(client: Any, opts: Options, f: LocalFile, transfer_config: Any) -> None:
    """Upload one file (multipart from the threshold on) with S3 SHA-256 checksums, which S3 checks
    on arrival and keeps with the object, and its sha256 as metadata (for people)."""
    client.upload_file(
        f.abspath,
        opts.bucket,
        opts.key(f.path),
        ExtraArgs={"Metadata": {META_SHA256: f.sha256}, "ChecksumAlgorithm": "SHA256"},
        Config=transfer_config,
    )


def foreign_prefixes(keys: Iterable[str], opts: Options) -> set[str]:
    """The prefixes under ours that another model's stager owns: where another manifest (a staged model) or
    lease (one being staged) lies, e.g. a canary staged under ``<stable prefix>/canary/<sha>``. The settings
    refuse nested prefixes; this is the defence for what they cannot see (another stack on the same bucket)."""
    own = {opts.manifest_key, opts.lease_key}
    return {key.rsplit("/", 1)[0] for key in keys
            if key not in own and key.rsplit("/", 1)[-1] in (MANIFEST_NAME, LEASE_NAME)}


def under_any(key: str, prefixes: Iterable[str]) -> bool:
    """Whether ``key`` lies under one of ``prefixes``."""
    return any(key.startswith(f"{prefix}/") for prefix in prefixes)


def abort_incomplete_uploads(client: Any, opts: Options) -> list[str]:
    """Abort the multipart uploads left under the prefix by a stager that died (their parts cost
    storage and never become objects), but not those under another stager's prefix (:func:`foreign_prefixes`);
    called only while holding the prefix's lease."""
    foreign = foreign_prefixes(list_keys(client, opts), opts)
    aborted: list[str] = []
    for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=opts.bucket, Prefix=f"{opts.prefix}/"):
        for upload in page.get("Uploads", []):
            if under_any(upload["Key"], foreign):
                continue
            client.abort_multipart_upload(Bucket=opts.bucket, Key=upload["Key"], UploadId=upload["UploadId"])
            aborted.append(upload["Key"])
    return aborted


def list_keys(client: Any, opts: Options) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=opts.bucket, Prefix=f"{opts.prefix}/"):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys
