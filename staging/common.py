"""What every part of the staging tool shares: the object layout's names, exit codes, S3 error
classes, :class:`StageError` and the log line."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

MANIFEST_NAME = ".llm-ab-manifest.json"
MANIFEST_FORMAT = "llm-ab-staging/2"
"""Format 2 records each object's S3 SHA-256 checksum (``s3_checksum``); older manifests restage."""
LEASE_NAME = ".llm-ab-lease.json"
"""The lease object: one stager at a time writes a prefix (created with If-None-Match: *)."""
DEFAULT_ALLOW_PATTERNS = ("*.json", "*.safetensors", "*.model", "*.txt", "*.tiktoken")
BIN_PATTERNS = ("*.bin",)
META_SHA256 = "sha256"  # user metadata key: x-amz-meta-sha256 (informational; content is proved by S3 checksums)
MIN_PART = 5 * 1024 * 1024
MAX_PART = 5 * 1024 * 1024 * 1024
MAX_PARTS = 10_000

EXIT_OK = 0
EXIT_USAGE = 2
"""Bad flags or environment."""
EXIT_S3 = 3
"""S3 unreachable or failing (after --wait-seconds), 5xx, throttling: may heal, so retried."""
EXIT_SOURCE = 4
"""The source is wrong: repo or revision not found, gated, no weights, a download that differs from the
Hub's listing, a symlink leaving --source-dir."""
EXIT_VERIFY = 5
"""An uploaded object's content differs from the file."""
EXIT_S3_DENIED = 6
"""S3 refuses us: credentials rejected, access denied, bucket missing."""
EXIT_SOURCE_UNREACHABLE = 7
"""The Hub can't be reached or failed (connection, timeout, 429, 5xx): may heal, so retried."""
EXIT_BUSY = 8
"""Another stager holds the prefix's lease (past --lease-wait-seconds), or took it over: retried."""

FATAL_EXIT_CODES = (EXIT_USAGE, EXIT_SOURCE, EXIT_VERIFY, EXIT_S3_DENIED)
"""Exit codes a retry can't heal: the staging Job's podFailurePolicy fails the Job at once on these
(components/staging.py reads them here, the one owner); every other failure is retried."""

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
    lease_seconds: float = 120.0
    """How long our lease on the prefix lasts without renewal (renewed every third of it)."""
    lease_wait_seconds: float = 3600.0
    """How long to wait for another stager's live lease before giving up (EXIT_BUSY)."""
    auth_grace_seconds: float = 0.0
    """How long credential and access-denied answers are retried before they count as permanent."""

    @property
    def endpoint_label(self) -> str:
        return self.endpoint_url or "the default AWS S3 endpoint"

    @property
    def manifest_key(self) -> str:
        return f"{self.prefix}/{MANIFEST_NAME}"

    @property
    def lease_key(self) -> str:
        return f"{self.prefix}/{LEASE_NAME}"

    def key(self, path: str) -> str:
        return f"{self.prefix}/{path}"
