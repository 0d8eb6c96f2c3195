"""The weights claim MinIO stores the bucket on: its name and its spec (pure).

One owner for what the program renders (components/minio.py) and what the deploy driver compares
with the deployed claim before a preview (deploy/volume.py).
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
