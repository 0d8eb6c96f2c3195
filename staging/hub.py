"""The Hugging Face Hub side: resolve a revision, list its files, download a snapshot, verify it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .common import EXIT_SOURCE, EXIT_SOURCE_UNREACHABLE, Options, StageError
from .files import LocalFile, matches

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


PERMANENT_HUB_ERRORS = {"RepositoryNotFoundError", "RevisionNotFoundError", "GatedRepoError", "EntryNotFoundError",
                        "RemoteEntryNotFoundError", "DisabledRepoError", "BadRequestError"}
"""huggingface_hub's errors for a wrong repo, revision or file, or no access: a retry won't help."""


def _http_status(e: Exception) -> int | None:
    response = getattr(e, "response", None)
    status = getattr(response, "status_code", None)
    if isinstance(status, int):
        return status
    import re

    match = re.match(r"^(\d{3}) (Client|Server) Error", str(e).strip())
    return int(match.group(1)) if match else None


def is_transient(e: Exception) -> bool:
    """A Hub failure that may heal on a retry: no connection, a timeout, 429 or a 5xx answer."""
    if type(e).__name__ in PERMANENT_HUB_ERRORS:
        return False
    status = _http_status(e)
    if status is not None:
        return status == 429 or status >= 500
    return isinstance(e, (ConnectionError, TimeoutError, OSError)) or any(
        word in type(e).__name__ for word in ("Connect", "Timeout", "Network", "Offline", "LocalEntryNotFound"))


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
        transient = is_transient(e)
        if transient:
            hint = " (the Hub may be down or unreachable: retried)"
        raise StageError(EXIT_SOURCE_UNREACHABLE if transient else EXIT_SOURCE,
                         f"{what} {opts.repo_id}@{opts.revision} failed: {name}: {first}{hint}") from None


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
