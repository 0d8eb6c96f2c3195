#!/usr/bin/env python3
"""Stage a pinned Hugging Face Hub model revision into an S3 bucket (MinIO) for llm-ab.

One Kubernetes Job per model variant runs this file (shipped by ConfigMap, run as
``python /opt/staging/stage_model.py ...`` on a pinned python image with
staging/requirements.txt installed). It needs only the standard library,
huggingface_hub (download) and boto3 (upload).

What it does
------------
1. Checks the bucket (waiting up to --wait-seconds for the endpoint, since MinIO
   may still be starting).
2. Reads the manifest ``<prefix>/.llm-ab-manifest.json``. If it records the same
   repo id, revision (and resolved commit) and allow patterns, and every listed
   object is present with the listed size and sha256 metadata (HEAD only), it
   prints "already staged" and exits 0 without downloading anything (for a
   commit sha, without contacting the Hub at all).
3. Otherwise it lists the revision on the Hub, checks that the files to stage
   include safetensors weights (or *.bin with --allow-bin), downloads them
   (huggingface_hub.snapshot_download into a temporary directory; or takes the
   files from --source-dir), checks every file against the Hub's listing (size,
   LFS sha256, git blob id), deletes the old manifest, uploads every file whose
   object is not already identical, HEADs each uploaded object to verify its size
   and sha256 metadata, deletes objects under the prefix that the new snapshot no
   longer has, and writes the new manifest LAST: a manifest present means the
   prefix is complete and matches it.

Object layout
-------------
``s3://<bucket>/<prefix>/<path in the repo>`` for each staged file, so TGI's
MODEL_ID is the mounted directory (``/mnt/datasets/<dataset>/<prefix>``), plus the
manifest ``s3://<bucket>/<prefix>/.llm-ab-manifest.json``. Each object carries
its sha256 as user metadata (``x-amz-meta-sha256``). The prefix belongs to this
tool: other objects under it are deleted when a revision is staged. A prefix
that does not name the revision is rewritten in place when the revision changes
(restart TGI afterwards); llm-ab's ModelStaging passes ``<path>/<revision>``, so
each revision gets a fresh prefix and pods on the old one are not disturbed.

Manifest (JSON)
---------------
``{"format": "llm-ab-staging/1", "repo_id", "revision" (as requested),
"commit" (resolved Hub commit, null for --source-dir), "source" ("hub"|"local"),
"allow_patterns": [...] (as requested), "allow_bin": bool, "files": [{"path",
"size", "sha256"}, ...] (sorted by path), "total_bytes", "staged_at" (UTC,
ISO 8601)}``. Idempotency key: repo_id, revision, commit, allow_patterns,
allow_bin, plus every listed object's size and sha256 metadata.

Exit codes
----------
0 staged, or already staged; 2 bad usage; 3 S3 problem (credentials rejected,
access denied, bucket missing, endpoint unreachable, other S3 errors);
4 source problem (Hub download failed, no matching files, no safetensors,
snapshot differs from the Hub's listing); 5 upload verification failed.
Expected errors print one "stage_model: error: ..." line, no traceback.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import fnmatch
import hashlib
import json
import os
import re
import sys
import tempfile
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

MANIFEST_NAME = ".llm-ab-manifest.json"
MANIFEST_FORMAT = "llm-ab-staging/1"
DEFAULT_ALLOW_PATTERNS = ("*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken")
BIN_PATTERNS = ("*.bin",)
META_SHA256 = "sha256"  # user metadata key: x-amz-meta-sha256

EXIT_OK = 0
EXIT_USAGE = 2
EXIT_S3 = 3
EXIT_SOURCE = 4
EXIT_VERIFY = 5

COMMIT_RE = re.compile(r"^[0-9a-f]{40}$")
CHUNK = 8 * 1024 * 1024
MiB = 1024 * 1024

CREDENTIAL_ERROR_CODES = {
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidToken",
    "ExpiredToken",
    "TokenRefreshRequired",
    "InvalidClientTokenId",
    "UnrecognizedClientException",
    "InvalidSecurity",
}
ACCESS_DENIED_CODES = {"AccessDenied", "AllAccessDisabled", "Forbidden"}
RETRYABLE_CODES = {
    "ServiceUnavailable",
    "SlowDown",
    "InternalError",
    "RequestTimeout",
    "XMinioServerNotInitialized",
}


class StageError(Exception):
    """An expected failure: reported as one line, exits with ``code``."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def log(message: str) -> None:
    print(f"stage_model: {message}", file=sys.stderr, flush=True)


def human(n: int) -> str:
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{n} B"  # pragma: no cover


# --------------------------------------------------------------------------- CLI


def _env(name: str, default: Any = None) -> Any:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _env_bool(name: str) -> bool:
    value = os.environ.get(name, "").strip().lower()
    if value in ("", "0", "false", "no", "off"):
        return False
    if value in ("1", "true", "yes", "on"):
        return True
    raise StageError(EXIT_USAGE, f"{name}={os.environ[name]!r} is not a boolean (use true or false)")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="stage_model.py",
        allow_abbrev=False,
        description="Copy a pinned Hugging Face model revision into an S3 bucket, idempotently and verified.",
        epilog="Credentials come from the standard boto3 chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
        "IRSA, ...). Hub token: HF_TOKEN. Exit codes: 0 ok, 2 usage, 3 S3, 4 source, 5 verification.",
    )
    p.add_argument(
        "--repo-id", default=_env("STAGING_REPO_ID"), help="Hub repo id, e.g. google/flan-t5-small [STAGING_REPO_ID]"
    )
    p.add_argument("--revision", default=_env("STAGING_REVISION"), help="pinned commit sha (or tag) [STAGING_REVISION]")
    p.add_argument("--bucket", default=_env("STAGING_BUCKET"), help="target bucket [STAGING_BUCKET]")
    p.add_argument("--prefix", default=_env("STAGING_PREFIX"), help="the model's path in the bucket [STAGING_PREFIX]")
    p.add_argument(
        "--endpoint-url",
        default=_env("STAGING_ENDPOINT_URL", _env("AWS_ENDPOINT_URL_S3", _env("AWS_ENDPOINT_URL"))),
        help="S3 endpoint, e.g. http://minio.llm-ab.svc.cluster.local:9000; omit for AWS S3 "
        "[STAGING_ENDPOINT_URL, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL]",
    )
    p.add_argument(
        "--allow-patterns",
        action="append",
        default=None,
        metavar="GLOB[,GLOB...]",
        help="files to stage (repeatable or comma-separated); default: "
        + ",".join(DEFAULT_ALLOW_PATTERNS)
        + " [STAGING_ALLOW_PATTERNS]",
    )
    p.add_argument(
        "--allow-bin",
        action="store_true",
        default=None,
        help="if the revision has no *.safetensors, stage its *.bin (pickle) weights instead of failing "
        "[STAGING_ALLOW_BIN]",
    )
    p.add_argument(
        "--weights",
        action="append",
        default=None,
        metavar="GLOB[,GLOB...]",
        help="what counts as the model's weights: staging fails unless a staged file matches; default "
        "*.safetensors (and *.bin with --allow-bin). For non-TGI models, e.g. *.joblib [STAGING_WEIGHTS]",
    )
    p.add_argument(
        "--source-dir",
        default=_env("STAGING_SOURCE_DIR"),
        help="stage from this local directory instead of the Hub (air-gapped); --revision is recorded as given "
        "[STAGING_SOURCE_DIR]",
    )
    p.add_argument(
        "--create-bucket",
        action="store_true",
        default=None,
        help="create the bucket if missing [STAGING_CREATE_BUCKET]",
    )
    p.add_argument(
        "--wait-seconds",
        default=_env("STAGING_WAIT_SECONDS", "300"),
        help="how long to wait for an unreachable or starting S3 endpoint (default 300) [STAGING_WAIT_SECONDS]",
    )
    p.add_argument(
        "--work-dir",
        default=_env("STAGING_WORK_DIR"),
        help="where to download the snapshot (needs room for it; default: the system temp dir) [STAGING_WORK_DIR]",
    )
    p.add_argument(
        "--multipart-threshold-mb",
        default=_env("STAGING_MULTIPART_THRESHOLD_MB", "64"),
        help="files at least this big are uploaded in parts of this size (min 5, default 64)",
    )
    p.add_argument("--json", action="store_true", default=None, help="print a JSON summary on stdout [STAGING_JSON]")
    return p


@dataclass
class Options:
    repo_id: str
    revision: str
    bucket: str
    prefix: str
    endpoint_url: str | None
    allow_patterns: list[str]
    allow_bin: bool
    source_dir: str | None
    create_bucket: bool
    wait_seconds: float
    work_dir: str | None
    multipart_threshold: int
    json: bool
    weights: list[str] = field(default_factory=list)
    """--weights: globs of the model files (empty: *.safetensors, or *.bin with --allow-bin)."""

    @property
    def endpoint_label(self) -> str:
        return self.endpoint_url or "the default AWS S3 endpoint"

    @property
    def manifest_key(self) -> str:
        return f"{self.prefix}/{MANIFEST_NAME}"

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}"


def _split_patterns(values: Iterable[str]) -> list[str]:
    out: list[str] = []
    for value in values:
        for part in value.split(","):
            part = part.strip()
            if part and part not in out:
                out.append(part)
    return out


def parse_options(argv: list[str] | None) -> Options:
    """Parse flags (with env fallbacks). Raises StageError(EXIT_USAGE) on bad values."""
    args = build_parser().parse_args(argv)  # exits 2 itself on unknown flags

    def required(name: str, value: str | None, env: str) -> str:
        if value is None or not str(value).strip():
            raise StageError(EXIT_USAGE, f"--{name} is required (or set {env})")
        value = str(value).strip()
        if any(c.isspace() for c in value):
            raise StageError(EXIT_USAGE, f"--{name} must not contain whitespace: {value!r}")
        return value

    repo_id = required("repo-id", args.repo_id, "STAGING_REPO_ID")
    revision = required("revision", args.revision, "STAGING_REVISION")
    bucket = required("bucket", args.bucket, "STAGING_BUCKET")
    prefix = required("prefix", args.prefix, "STAGING_PREFIX").strip("/")
    segments = prefix.split("/")
    if not prefix or any(s in ("", ".", "..") for s in segments):
        raise StageError(
            EXIT_USAGE,
            f"--prefix must be a relative path like 'models/flan-t5-small' (no empty, '.' or '..' parts): "
            f"{args.prefix!r}",
        )

    endpoint_url = args.endpoint_url.strip() if args.endpoint_url else None
    if endpoint_url and not re.match(r"^https?://[^/\s]+", endpoint_url):
        raise StageError(EXIT_USAGE, f"--endpoint-url must be an http:// or https:// URL: {endpoint_url!r}")

    allow_bin = bool(args.allow_bin) or _env_bool("STAGING_ALLOW_BIN")
    if args.allow_patterns:
        patterns = _split_patterns(args.allow_patterns)
    elif _env("STAGING_ALLOW_PATTERNS"):
        patterns = _split_patterns([os.environ["STAGING_ALLOW_PATTERNS"]])
    else:
        patterns = list(DEFAULT_ALLOW_PATTERNS)
    if not patterns:
        raise StageError(EXIT_USAGE, "--allow-patterns is empty")

    try:
        wait_seconds = float(args.wait_seconds)
        if not wait_seconds >= 0:
            raise ValueError
    except ValueError:
        raise StageError(EXIT_USAGE, f"--wait-seconds must be a number >= 0: {args.wait_seconds!r}") from None
    try:
        threshold_mb = int(args.multipart_threshold_mb)
        if threshold_mb < 5:
            raise ValueError
    except ValueError:
        raise StageError(
            EXIT_USAGE, f"--multipart-threshold-mb must be an integer >= 5: {args.multipart_threshold_mb!r}"
        ) from None

    source_dir = args.source_dir
    if source_dir is not None and not os.path.isdir(source_dir):
        raise StageError(EXIT_USAGE, f"--source-dir {source_dir!r} is not a directory")

    return Options(
        repo_id=repo_id,
        revision=revision,
        bucket=bucket,
        prefix=prefix,
        endpoint_url=endpoint_url,
        allow_patterns=patterns,
        allow_bin=allow_bin,
        source_dir=source_dir,
        create_bucket=bool(args.create_bucket) or _env_bool("STAGING_CREATE_BUCKET"),
        wait_seconds=wait_seconds,
        work_dir=args.work_dir,
        multipart_threshold=threshold_mb * MiB,
        json=bool(args.json) or _env_bool("STAGING_JSON"),
        weights=_split_patterns(args.weights or ([os.environ["STAGING_WEIGHTS"]] if _env("STAGING_WEIGHTS") else [])),
    )


# ----------------------------------------------------------------------- files


@dataclass(frozen=True)
class LocalFile:
    path: str  # relative, '/'-separated
    abspath: str
    size: int
    sha256: str
    git_oid: str  # git blob id of the content (what the Hub lists for non-LFS files)


def matches(path: str, patterns: Iterable[str]) -> bool:
    """huggingface_hub's allow_patterns semantics: fnmatch, 'dir/' means 'dir/*'."""
    for pattern in patterns:
        if pattern.endswith("/"):
            pattern += "*"
        if fnmatch.fnmatchcase(path, pattern):
            return True
    return False


def hash_file(abspath: str) -> tuple[int, str, str]:
    size = os.path.getsize(abspath)
    sha = hashlib.sha256()
    git = hashlib.sha1(f"blob {size}\0".encode())
    with open(abspath, "rb") as f:
        while True:
            chunk = f.read(CHUNK)
            if not chunk:
                break
            sha.update(chunk)
            git.update(chunk)
    return size, sha.hexdigest(), git.hexdigest()


def list_local(root: str) -> dict[str, str]:
    """Relative path -> absolute path of the files under root, skipping huggingface_hub's .cache/ and .git/."""
    found: dict[str, str] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        dirnames[:] = sorted(d for d in dirnames if d != ".git" and not (rel_dir == "" and d == ".cache"))
        for name in filenames:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            abspath = os.path.join(dirpath, name)
            if rel != MANIFEST_NAME and os.path.isfile(abspath):
                found[rel] = abspath
    return found


def collect_files(root: str, patterns: list[str]) -> list[LocalFile]:
    """The files under root matching patterns, hashed, sorted by path."""
    found: list[LocalFile] = []
    for rel, abspath in sorted(list_local(root).items()):
        if matches(rel, patterns):
            size, sha, oid = hash_file(abspath)
            found.append(LocalFile(rel, abspath, size, sha, oid))
    return found


def effective_patterns(paths: Iterable[str], opts: Options) -> list[str]:
    """--allow-patterns, plus *.bin when --allow-bin and no *.safetensors would be staged."""
    patterns = list(opts.allow_patterns)
    paths = list(paths)
    if opts.allow_bin and not any(p.endswith(".safetensors") and matches(p, patterns) for p in paths):
        patterns += [b for b in BIN_PATTERNS if b not in patterns]
    return patterns


def check_weights(names: list[str], opts: Options, patterns: list[str]) -> None:
    """Fail unless the files to stage include *.safetensors (or *.bin with --allow-bin)."""
    if not names:
        raise StageError(
            EXIT_SOURCE,
            f"no files in {opts.repo_id}@{opts.revision} match --allow-patterns {','.join(patterns)}",
        )
    if opts.weights:
        if any(matches(n, opts.weights) for n in names):
            return
        raise StageError(
            EXIT_SOURCE,
            f"{opts.repo_id}@{opts.revision} has no file matching --weights {','.join(opts.weights)} among the "
            f"staged files ({', '.join(names)})",
        )
    if any(n.endswith(".safetensors") for n in names):
        return
    if opts.allow_bin and any(n.endswith(".bin") for n in names):
        log("warning: no *.safetensors in the snapshot; staging *.bin weights because of --allow-bin")
        return
    hint = (
        "and no *.bin either"
        if opts.allow_bin
        else "TGI on a read-only mount cannot convert *.bin weights; stage a revision with safetensors, "
        "or pass --allow-bin to stage *.bin weights anyway"
    )
    raise StageError(
        EXIT_SOURCE,
        f"{opts.repo_id}@{opts.revision} has no *.safetensors among the staged files ({', '.join(names)}): {hint}",
    )


# ------------------------------------------------------------------------- Hub
# Module-level functions so tests can replace them; the real ones use huggingface_hub.


@dataclass(frozen=True)
class HubFile:
    size: int
    sha256: str | None  # LFS files
    git_oid: str | None  # non-LFS files: git blob id


def hub_resolve_commit(repo_id: str, revision: str) -> str:
    """The commit sha a tag/branch points to (not called for 40-hex revisions)."""
    from huggingface_hub import HfApi

    info = HfApi().repo_info(repo_id=repo_id, revision=revision)
    if not info.sha:
        raise StageError(EXIT_SOURCE, f"the Hub did not resolve {repo_id}@{revision} to a commit")
    return info.sha


def hub_list_files(repo_id: str, commit: str) -> dict[str, HubFile]:
    from huggingface_hub import HfApi
    from huggingface_hub.hf_api import RepoFile

    out: dict[str, HubFile] = {}
    for entry in HfApi().list_repo_tree(repo_id=repo_id, revision=commit, recursive=True):
        if isinstance(entry, RepoFile):
            if entry.lfs is not None:
                out[entry.path] = HubFile(size=entry.size, sha256=entry.lfs.sha256, git_oid=None)
            else:
                out[entry.path] = HubFile(size=entry.size, sha256=None, git_oid=entry.blob_id)
    return out


def hub_snapshot_download(repo_id: str, revision: str, allow_patterns: list[str], local_dir: str) -> str:
    from huggingface_hub import snapshot_download

    return snapshot_download(repo_id=repo_id, revision=revision, allow_patterns=allow_patterns, local_dir=local_dir)


def _hub_call(what: str, opts: Options, fn: Callable[[], Any]) -> Any:
    try:
        return fn()
    except StageError:
        raise
    except Exception as e:  # huggingface_hub/httpx errors: report, don't trace
        name = type(e).__name__
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        hint = ""
        if name in ("GatedRepoError",) or "401" in first:
            hint = " (gated or private repo: set HF_TOKEN)"
        elif name in ("RepositoryNotFoundError", "RevisionNotFoundError"):
            hint = " (check repo id and revision)"
        raise StageError(EXIT_SOURCE, f"{what} {opts.repo_id}@{opts.revision} failed: {name}: {first}{hint}") from None


def verify_against_hub(
    files: list[LocalFile], expected: dict[str, HubFile], opts: Options, patterns: list[str]
) -> None:
    wanted = {p for p in expected if matches(p, patterns)}
    have = {f.path for f in files}
    missing = sorted(wanted - have)
    if missing:
        raise StageError(EXIT_SOURCE, f"download of {opts.repo_id}@{opts.revision} is missing {', '.join(missing)}")
    for f in files:
        exp = expected.get(f.path)
        if exp is None:
            raise StageError(
                EXIT_SOURCE,
                f"{f.path} was downloaded but is not in the Hub's listing of {opts.repo_id}@{opts.revision}",
            )
        if f.size != exp.size:
            raise StageError(
                EXIT_SOURCE, f"{f.path}: downloaded {f.size} bytes but the Hub lists {exp.size} for {opts.revision}"
            )
        if exp.sha256 is not None and f.sha256 != exp.sha256:
            raise StageError(
                EXIT_SOURCE, f"{f.path}: sha256 {f.sha256} of the download differs from the Hub's {exp.sha256}"
            )
        if exp.sha256 is None and exp.git_oid is not None and f.git_oid != exp.git_oid:
            raise StageError(
                EXIT_SOURCE, f"{f.path}: git blob id {f.git_oid} of the download differs from the Hub's {exp.git_oid}"
            )


# -------------------------------------------------------------------------- S3


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
            EXIT_S3,
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
            EXIT_S3,
            f"S3 rejected the credentials for endpoint {opts.endpoint_label} ({code}): check the staging Secret",
        )
    if code in ACCESS_DENIED_CODES or (status == 403 and not code.isalpha()):
        return StageError(
            EXIT_S3,
            f"S3 denied access to bucket '{opts.bucket}' at endpoint {opts.endpoint_label} ({code or status}): the "
            "staging credentials need s3:ListBucket, s3:GetObject, s3:PutObject and s3:DeleteObject on it",
        )
    if code == "NoSuchBucket":
        return StageError(
            EXIT_S3,
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
    --wait-seconds have passed; credential, permission and missing-bucket
    answers fail at once.
    """
    from botocore.exceptions import BotoCoreError, ClientError, ConnectionError, HTTPClientError

    client = make_client(opts, probe=True, session=session)
    deadline = clock() + opts.wait_seconds
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
            if code in RETRYABLE_CODES or status >= 500:
                last = f"{code or status}"
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


def head(client: Any, bucket: str, key: str) -> dict | None:
    from botocore.exceptions import ClientError

    try:
        return client.head_object(Bucket=bucket, Key=key)
    except ClientError as e:
        if _error_code(e) in ("404", "NoSuchKey", "NotFound"):
            return None
        raise


def object_matches(info: dict | None, size: int, sha256: str) -> str | None:
    """None if the HEAD result has this size and sha256 metadata, else why not."""
    if info is None:
        return "missing"
    if info.get("ContentLength") != size:
        return f"size {info.get('ContentLength')} != {size}"
    got = (info.get("Metadata") or {}).get(META_SHA256)
    if got != sha256:
        return f"sha256 metadata {got or '(none)'} != {sha256}"
    return None


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
            raise ValueError(f"format {manifest.get('format')!r}")
        for entry in manifest["files"]:
            if not (isinstance(entry.get("path"), str) and isinstance(entry.get("size"), int) and entry.get("sha256")):
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
        why = object_matches(head(client, opts.bucket, opts.key(entry["path"])), entry["size"], entry["sha256"])
        if why:
            return f"{entry['path']}: {why}"
    return None


def upload_file(client: Any, opts: Options, f: LocalFile, transfer_config: Any) -> None:
    """Upload one file with its sha256 as metadata (multipart above the threshold)."""
    client.upload_file(
        f.abspath,
        opts.bucket,
        opts.key(f.path),
        ExtraArgs={"Metadata": {META_SHA256: f.sha256}},
        Config=transfer_config,
    )


def list_keys(client: Any, opts: Options) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=opts.bucket, Prefix=f"{opts.prefix}/"):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


# ----------------------------------------------------------------------- stage


@dataclass
class Result:
    status: str  # "staged" | "already-staged"
    opts: Options
    commit: str | None = None
    files: list[dict] = field(default_factory=list)
    uploaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
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
            "reason": self.reason,
        }


def stage(opts: Options) -> Result:
    import boto3
    from boto3.exceptions import Boto3Error  # S3UploadFailedError and friends
    from botocore.exceptions import BotoCoreError, ClientError

    session = boto3.session.Session()  # one per run: clients share its loaded service model
    wait_for_bucket(opts, session=session)
    client = make_client(opts, session=session)
    try:
        return _stage(client, opts)
    except (ClientError, BotoCoreError, Boto3Error) as e:
        raise describe_s3_error(e, opts) from None


def _stage(client: Any, opts: Options) -> Result:
    where = f"s3://{opts.bucket}/{opts.prefix}/"
    hub = opts.source_dir is None
    commit: str | None = None
    if hub:
        if COMMIT_RE.match(opts.revision):
            commit = opts.revision
        else:
            log(f"warning: revision {opts.revision!r} is not a commit sha; pin a commit for reproducible variants")
            commit = _hub_call("resolving", opts, lambda: hub_resolve_commit(opts.repo_id, opts.revision))

    manifest = read_manifest(client, opts)
    why = staged_state(client, opts, manifest, commit)
    if why is None:
        assert manifest is not None
        log(f"{opts.repo_id}@{opts.revision} already staged at {where} ({len(manifest['files'])} files); nothing to do")
        return Result(
            "already-staged", opts, commit=manifest.get("commit"), files=manifest["files"], reason="already staged"
        )
    log(f"staging {opts.repo_id}@{opts.revision} to {where} ({why})")

    with tempfile.TemporaryDirectory(prefix="stage-model-", dir=opts.work_dir) as tmp:
        if hub:
            assert commit is not None
            expected = _hub_call("listing", opts, lambda: hub_list_files(opts.repo_id, commit))
            patterns = effective_patterns(expected, opts)
            check_weights(sorted(p for p in expected if matches(p, patterns)), opts, patterns)  # before downloading
            local_dir = os.path.join(tmp, "snapshot")
            started = time.monotonic()
            root = _hub_call(
                "downloading", opts, lambda: hub_snapshot_download(opts.repo_id, commit, patterns, local_dir)
            )
            files = collect_files(str(root), patterns)
            took = time.monotonic() - started
            log(f"downloaded {len(files)} files ({human(sum(f.size for f in files))}) in {took:.1f}s")
            verify_against_hub(files, expected, opts, patterns)
        else:
            patterns = effective_patterns(list_local(opts.source_dir), opts)  # type: ignore[arg-type]
            files = collect_files(opts.source_dir, patterns)  # type: ignore[arg-type]
            check_weights([f.path for f in files], opts, patterns)

        from boto3.s3.transfer import TransferConfig

        transfer = TransferConfig(
            multipart_threshold=opts.multipart_threshold,
            multipart_chunksize=opts.multipart_threshold,
            max_concurrency=4,
        )
        # A manifest present means "complete and matching": remove it before touching anything.
        if manifest is not None or head(client, opts.bucket, opts.manifest_key) is not None:
            client.delete_object(Bucket=opts.bucket, Key=opts.manifest_key)

        result = Result("staged", opts, commit=commit)
        for f in files:
            key = opts.key(f.path)
            if object_matches(head(client, opts.bucket, key), f.size, f.sha256) is None:
                result.unchanged.append(f.path)
                log(f"unchanged {f.path} ({human(f.size)})")
                continue
            started = time.monotonic()
            upload_file(client, opts, f, transfer)
            why_not = object_matches(head(client, opts.bucket, key), f.size, f.sha256)
            if why_not:
                raise StageError(
                    EXIT_VERIFY, f"verification failed for {f.path} (s3://{opts.bucket}/{key}) after upload: {why_not}"
                )
            result.uploaded.append(f.path)
            log(f"uploaded {f.path} ({human(f.size)}) in {time.monotonic() - started:.1f}s, verified")

    keep = {opts.key(f.path) for f in files}
    for key in list_keys(client, opts):
        if key not in keep and key != opts.manifest_key:
            client.delete_object(Bucket=opts.bucket, Key=key)
            result.deleted.append(key[len(opts.prefix) + 1 :])
            log(f"deleted {key} (not in {opts.repo_id}@{opts.revision})")

    result.files = [{"path": f.path, "size": f.size, "sha256": f.sha256} for f in files]
    new_manifest = {
        "format": MANIFEST_FORMAT,
        "repo_id": opts.repo_id,
        "revision": opts.revision,
        "commit": commit,
        "source": "hub" if hub else "local",
        "allow_patterns": list(opts.allow_patterns),
        "allow_bin": opts.allow_bin,
        "files": result.files,
        "total_bytes": sum(f.size for f in files),
        "staged_at": _dt.datetime.now(_dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }
    body = (json.dumps(new_manifest, indent=2, sort_keys=True) + "\n").encode()
    client.put_object(
        Bucket=opts.bucket,
        Key=opts.manifest_key,
        Body=body,
        ContentType="application/json",
        Metadata={META_SHA256: hashlib.sha256(body).hexdigest()},
    )
    why_not = object_matches(head(client, opts.bucket, opts.manifest_key), len(body), hashlib.sha256(body).hexdigest())
    if why_not:
        raise StageError(EXIT_VERIFY, f"verification failed for {MANIFEST_NAME} after upload: {why_not}")
    total = sum(f.size for f in files)
    log(
        f"staged {opts.repo_id}@{opts.revision} to {where}: {len(files)} files, {human(total)} "
        f"({len(result.uploaded)} uploaded, {len(result.unchanged)} unchanged, {len(result.deleted)} deleted)"
    )
    return result


# ------------------------------------------------------------------------ main


def main(argv: list[str] | None = None) -> int:
    want_json = "--json" in (argv if argv is not None else sys.argv[1:])
    if not sys.stderr.isatty():  # Job logs: no tqdm bars (read when huggingface_hub is imported)
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    try:
        opts = parse_options(argv)
        want_json = opts.json
        result = stage(opts)
    except StageError as e:
        print(f"stage_model: error: {e.message}", file=sys.stderr, flush=True)
        if want_json:
            print(json.dumps({"status": "error", "exit_code": e.code, "error": e.message}))
        return e.code
    except KeyboardInterrupt:
        print("stage_model: interrupted", file=sys.stderr)
        return 130
    if opts.json:
        print(json.dumps(result.summary(), indent=2))
    elif result.status == "already-staged":
        print(f"already staged: {opts.repo_id}@{opts.revision} at s3://{opts.bucket}/{opts.prefix}/")
    else:
        print(
            f"staged: {opts.repo_id}@{opts.revision} at s3://{opts.bucket}/{opts.prefix}/ "
            f"({len(result.files)} files, {len(result.uploaded)} uploaded)"
        )
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
