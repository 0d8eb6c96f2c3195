"""Local snapshot files: which to stage (allow patterns), their sizes and digests, the weights check."""

from __future__ import annotations

import fnmatch
import hashlib
import os
from collections.abc import Iterable
from dataclasses import dataclass

from .common import BIN_PATTERNS, CHUNK, EXIT_SOURCE, MANIFEST_NAME, Options, StageError, log


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
