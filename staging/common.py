"""What every part of the staging tool shares: the object layout's names, exit codes, S3 error
classes, :class:`StageError` and the log line."""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field

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
