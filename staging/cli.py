"""The tool's command line: flags and environment, validated into :class:`Options`; :func:`main`
runs the staging and prints the outcome (exit codes in :mod:`staging`)."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from collections.abc import Iterable
from typing import Any

from .common import DEFAULT_ALLOW_PATTERNS, EXIT_OK, EXIT_USAGE, MiB, Options, StageError
from .stage import stage


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
        prog="python -m staging",
        allow_abbrev=False,
        description="Copy a pinned Hugging Face model revision into an S3 bucket, idempotently and verified.",
        epilog="Credentials come from the standard boto3 chain (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, "
        "IRSA, ...). Hub token: HF_TOKEN. Exit codes: 0 ok, 2 usage, 3 S3 unreachable or failing, 4 source wrong, "
        "5 verification, 6 S3 refuses (credentials, access, bucket), 7 Hub unreachable or failing, 8 prefix busy "
        "(another stager). 2, 4, 5 and 6 won't heal on a retry.",
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
    p.add_argument(
        "--lease-seconds",
        default=_env("STAGING_LEASE_SECONDS", "120"),
        help="how long our lease on the prefix lasts unrenewed (renewed every third of it; a stager that died "
        "holds the prefix this long; default 120) [STAGING_LEASE_SECONDS]",
    )
    p.add_argument(
        "--lease-wait-seconds",
        default=_env("STAGING_LEASE_WAIT_SECONDS", "3600"),
        help="how long to wait while another stager holds the prefix (default 3600) [STAGING_LEASE_WAIT_SECONDS]",
    )
    p.add_argument(
        "--auth-grace-seconds",
        default=_env("STAGING_AUTH_GRACE_SECONDS", "0"),
        help="retry rejected credentials and access denied this long before failing (exit 6), for an IAM role "
        "(IRSA) that was just created; default 0 [STAGING_AUTH_GRACE_SECONDS]",
    )
    p.add_argument("--json", action="store_true", default=None, help="print a JSON summary on stdout [STAGING_JSON]")
    return p


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

    def seconds(flag: str, value: str, minimum: float) -> float:
        try:
            number = float(value)
            if not number >= minimum:
                raise ValueError
            return number
        except ValueError:
            raise StageError(EXIT_USAGE, f"{flag} must be a number >= {minimum:g}: {value!r}") from None

    lease_seconds = seconds("--lease-seconds", args.lease_seconds, 3)
    lease_wait_seconds = seconds("--lease-wait-seconds", args.lease_wait_seconds, 0)
    auth_grace_seconds = seconds("--auth-grace-seconds", args.auth_grace_seconds, 0)

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
        lease_seconds=lease_seconds,
        lease_wait_seconds=lease_wait_seconds,
        auth_grace_seconds=auth_grace_seconds,
    )


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

