"""The weights claim MinIO stores the bucket on: its name, its spec, and how it and its namespace are
kept (pure).

One owner for what the program renders (components/minio.py, components/namespace.py) and what the
deploy driver compares with the deployed claim and namespace before a preview (deploy/volume.py,
deploy/namespace.py).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from components.naming import MINIO_SERVICE

CLAIM_BASE = f"{MINIO_SERVICE}-data"
"""Name of the first generation's claim (``minio-data``); later generations add ``-<n>``."""
CLAIM_URN_MARK = "llmab:storage:MinioStore$kubernetes:core/v1:PersistentVolumeClaim::"
"""What the weights claim's URN contains (MinioStore's child PersistentVolumeClaim)."""


def claim_name(generation: int) -> str:
    """The claim of ``storage.volumeGeneration``: ``minio-data``, ``minio-data-2``, ..."""
    if generation < 1:
        raise ValueError(f"volume generation must be >= 1, got {generation}")
    return CLAIM_BASE if generation == 1 else f"{CLAIM_BASE}-{generation}"


def generation_of(name: str) -> int | None:
    """The generation a claim name stands for (None for a name of another scheme)."""
    if name == CLAIM_BASE:
        return 1
    match = re.fullmatch(rf"{re.escape(CLAIM_BASE)}-(\d+)", name)
    return int(match.group(1)) if match else None


def claim_spec(size: str, storage_class: str | None) -> dict[str, Any]:
    """``spec`` of the claim: one ReadWriteOnce volume of ``size`` (the cluster's default class when None)."""
    spec: dict[str, Any] = {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": size}}}
    if storage_class:
        spec["storageClassName"] = storage_class
    return spec


@dataclass(frozen=True)
class Claim:
    """What identifies the weights claim and can't change in place."""

    namespace: str
    name: str
    storage_class: str | None
    size: str
    retained: bool = True
    """retainOnDelete: a replaced (or destroyed) claim stays in the cluster."""


@dataclass(frozen=True)
class Keep:
    """Pulumi's two ways of keeping a resource."""

    protect: bool
    """No update may replace or delete it, and ``make destroy`` (``--exclude-protected``) keeps it in the stack."""
    retain_on_delete: bool
    """A delete (destroy, replacement, leaving the program) leaves it in the cluster."""


@dataclass(frozen=True)
class WeightsKeep:
    """How the weights claim and the namespace holding it are kept: one decision (:func:`weights_keep`)."""

    claim: Keep
    namespace: Keep


def weights_keep(*, protect: bool, allow_replace: bool, minio: bool, adopted: bool = False) -> WeightsKeep:
    """``storage.protect``, ``storage.allowReplace``, whether the weights are on MinIO (``storage.kind``) and
    ``adopt.namespace`` -> how the claim and its namespace are kept.

    The claim: protected unless this update may replace it; retained whenever either is set, so a replaced
    claim stays in the cluster. The namespace: deleting a namespace deletes every claim in it, so while it
    holds the claim it is kept exactly like the claim (``allowReplace`` lifts its protection too: a new
    ``namespace`` replaces it, and it is still retained with the old claim). The update that moves the
    weights off MinIO (``storage.kind: s3`` with ``allowReplace``) leaves the old claim, retained, in the
    namespace: the namespace keeps ``storage.protect``'s protection and is retained; after that update the
    program can't see the kept claim, and the deploy driver refuses to drop the namespace's protection while
    the cluster still has it (deploy/namespace.py). An adopted namespace is someone else's: always retained.
    """
    claim = Keep(protect=protect and not allow_replace, retain_on_delete=protect or allow_replace)
    if minio:
        namespace = claim
    elif allow_replace:
        namespace = Keep(protect=protect, retain_on_delete=claim.retain_on_delete)
    else:
        namespace = Keep(protect=False, retain_on_delete=False)
    if adopted:
        namespace = Keep(protect=namespace.protect, retain_on_delete=True)
    return WeightsKeep(claim=claim, namespace=namespace)
