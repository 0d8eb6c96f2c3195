"""Local snapshot files: which to stage (allow patterns), their sizes and digests, the weights check."""

from __future__ import annotations

import base64
import fnmatch
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

from .common import (
    BIN_PATTERNS,
    CHUNK,
    EXIT_SOURCE,
    LEASE_NAME,
    MANIFEST_NAME,
    MAX_PART,
    MAX_PARTS,
    MIN_PART,
    Options,
    StageError,
    log,
)


@dataclass(frozen=True)
class LocalFile:
    path: str  # relative, '/'-separated
    abspath: str
    size: int
    sha256: str
    git_oid: str  # git blob id of the content (what the Hub lists for non-LFS files)
    part_size: int | None = None
    """The part size the upload uses (None: one PUT)."""
    checksum: str = ""
    """The S3 SHA-256 checksum the object gets from that upload: base64 of the sha256, or for a multipart
    upload base64 of the sha256 of the parts' sha256 digests, then ``-<parts>``."""


def upload_part_size(size: int, threshold: int) -> int | None:
    """The part size boto3's transfer manager uploads ``size`` bytes with when its multipart threshold
    and chunk size are both ``threshold`` (at most 10,000 parts, 5 MiB to 5 GiB each); None: one PUT."""
    if size < threshold:
        return None
    part = threshold
    while -(-size // part) > MAX_PARTS:
        part *= 2
    return min(max(part, MIN_PART), MAX_PART)


def b64(digest: bytes) -> str:
    return base64.b64encode(digest).decode()


def s3_checksum(abspath: str, part_size: int | None) -> str:
    """The S3 SHA-256 checksum of a file uploaded in parts of ``part_size`` (None: one PUT)."""
    return hash_file(abspath, part_size)[3]


def matches(path: str, patterns: Iterable[str]) -> bool:
    """huggingface_hub's allow_patterns semantics: fnmatch, 'dir/' means 'dir/*'."""
    for pattern in patterns:
        if pattern.endswith("/"):
            pattern += "*"
        if fnmatch.fnmatchcase(path, pattern):
            return True
    return False


def hash_file(abspath: str, part_size: int | None = None) -> tuple[int, str, str, str]:
    """(size, sha256 hex, git blob id, S3 SHA-256 checksum for parts of ``part_size``), in one read."""
    size = os.path.getsize(abspath)
    sha = hashlib.sha256()
    git = hashlib.sha1(f"blob {size}\0".encode())
    parts: list[bytes] = []
    part = hashlib.sha256()
    in_part = 0
    with open(abspath, "rb") as f:
        while True:
            chunk = f.read(min(CHUNK, part_size - in_part) if part_size else CHUNK)
            if not chunk:
                break
            sha.update(chunk)
            git.update(chunk)
            if part_size:
                part.update(chunk)
                in_part += len(chunk)
                if in_part == part_size:
                    parts.append(part.digest())
                    part, in_part = hashlib.sha256(), 0
    if part_size and in_part:
        parts.append(part.digest())
    checksum = f"{b64(hashlib.sha256(b''.join(parts)).digest())}-{len(parts)}" if part_size else b64(sha.digest())
    return size, sha.hexdigest(), git.hexdigest(), checksum


def _inside(path: str, root: str) -> bool:
    return os.path.commonpath([path, root]) == root


def _refuse_escaping_link(abspath: str, rel: str, root: str, real_root: str) -> None:
    if os.path.islink(abspath):
        target = os.path.realpath(abspath)
        if not _inside(target, real_root):
            raise StageError(
                EXIT_SOURCE,
                f"{rel} in {root} is a symlink to {target}, outside the snapshot: refusing to stage it (copy the "
                "file in, or download with --local-dir so the snapshot holds the files themselves)",
            )


def list_local(root: str) -> dict[str, str]:
    """Relative path -> absolute path of the files under root, skipping huggingface_hub's .cache/ and .git/.

    A symlink (file or directory) that resolves outside root is refused (StageError, EXIT_SOURCE): the
    snapshot must not pull in other files of the machine. Symlinked directories are not descended."""
    found: dict[str, str] = {}
    real_root = os.path.realpath(root)
    for dirpath, dirnames, filenames in os.walk(root):
        rel_dir = os.path.relpath(dirpath, root)
        rel_dir = "" if rel_dir == "." else rel_dir.replace(os.sep, "/")
        dirnames[:] = sorted(d for d in dirnames if d != ".git" and not (rel_dir == "" and d == ".cache"))
        for name in [*dirnames, *filenames]:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            _refuse_escaping_link(os.path.join(dirpath, name), rel, root, real_root)
        for name in filenames:
            rel = f"{rel_dir}/{name}" if rel_dir else name
            abspath = os.path.join(dirpath, name)
            if rel not in (MANIFEST_NAME, LEASE_NAME) and os.path.isfile(abspath):
                found[rel] = abspath
    return found


def collect_files(root: str, patterns: list[str], threshold: int) -> list[LocalFile]:
    """The files under root matching patterns, hashed (with the S3 checksum of their upload in parts of
    the multipart ``threshold``), sorted by path."""
    found: list[LocalFile] = []
    for rel, abspath in sorted(list_local(root).items()):
        if matches(rel, patterns):
            part_size = upload_part_size(os.path.getsize(abspath), threshold)
            size, sha, oid, checksum = hash_file(abspath, part_size)
            found.append(LocalFile(rel, abspath, size, sha, oid, part_size, checksum))
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
