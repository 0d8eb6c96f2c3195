"""Refuse a change that would replace the weights volume, unless it is asked for (components/minio.py).

A claim's storage class and namespace can't change and its size can't shrink, so such a change means
a new, empty volume; so does a new ``storage.volumeGeneration`` (a new claim name) or dropping MinIO.
Pure functions: the driver feeds them the deployed claim (from the exported state) and the
configured one (from the stack's settings) before anything is previewed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from components.quantity import quantity_value
from components.weights_volume import CLAIM_URN_MARK, Claim, claim_name, generation_of
from deploy.workspace import DriverError

ALLOW_KEY = "storage.allowReplace"
GENERATION_KEY = "storage.volumeGeneration"


def deployed_claim(deployment: Mapping[str, Any]) -> Claim | None:
    """The weights claim in an exported deployment (its inputs, as last applied), or None."""
    for resource in deployment.get("resources") or []:
        if CLAIM_URN_MARK in str(resource.get("urn", "")) and not resource.get("delete"):
            inputs = resource.get("inputs") or {}
            meta, spec = inputs.get("metadata") or {}, inputs.get("spec") or {}
            return Claim(namespace=str(meta.get("namespace", "")), name=str(meta.get("name", "")),
                         storage_class=spec.get("storageClassName") or None,
                         size=str(((spec.get("resources") or {}).get("requests") or {}).get("storage", "0")),
                         retained=bool(resource.get("retainOnDelete")))
    return None


def configured_claim(settings) -> Claim | None:  # noqa: ANN001 - stacks.settings.Settings (imported lazily)
    """The weights claim the program will declare for these settings (None: no MinIO, the weights are on S3)."""
    if settings.storage.kind != "minio":
        return None
    return Claim(namespace=settings.namespace, name=claim_name(settings.storage.volume_generation),
                 storage_class=settings.storage.storage_class or None, size=settings.storage.size)


@dataclass(frozen=True)
class Verdict:
    replaces: bool
    """True when this update moves the weights to a new volume (allowed by storage.allowReplace)."""
    notes: tuple[str, ...] = ()


def _set(key: str, value: object) -> str:
    return f"pulumi config set --path {key} {value if value not in (None, '') else chr(34) * 2}"


def check(deployed: Claim | None, configured: Claim | None, *, allow_replace: bool) -> Verdict:
    """What the configured claim means for the deployed one; DriverError when it would replace the
    volume without ``storage.allowReplace``, or can't be done in place at all."""
    if deployed is None:
        return Verdict(False)
    where = f"{deployed.namespace}/{deployed.name}"
    kept = (f"the old claim {where} is kept in the cluster (retainOnDelete), not in the stack; delete it once "
            f"nothing needs it: kubectl -n {deployed.namespace} delete pvc {deployed.name}" if deployed.retained else
            f"the old claim {where} is deleted with its data (storage.protect is false)")
    if configured is None:
        if not allow_replace:
            raise DriverError(
                f"storage.kind is no longer minio, so the weights claim {where} would leave the stack (it is "
                f"protected, so the update would fail). Set it back ({_set('storage.kind', 'minio')}), or set "
                f"{ALLOW_KEY} true for this update: {kept}.")
        return Verdict(True, (f"the weights leave MinIO: {kept}",))
    same_object = (configured.namespace, configured.name) == (deployed.namespace, deployed.name)
    class_changes = configured.storage_class != deployed.storage_class
    shrinks = quantity_value(configured.size) < quantity_value(deployed.size)
    next_generation = (generation_of(deployed.name) or 1) + 1
    move = (f"to move the weights to a new, empty volume on purpose, set {GENERATION_KEY} to {next_generation} "
            f"and {ALLOW_KEY} to true for one update (bucket setup and staging then run again into the new "
            f"volume; {kept})")
    if same_object:
        problems = []
        if class_changes:
            problems.append((f"storage.storageClass changes from {deployed.storage_class or '(cluster default)'!r} "
                             f"to {configured.storage_class or '(cluster default)'!r}, which a claim can't change",
                             _set("storage.storageClass", deployed.storage_class)))
        if shrinks:
            problems.append((f"storage.size shrinks from {deployed.size} to {configured.size}, which a claim "
                             "can't do", _set("storage.size", deployed.size)))
        if problems:
            raise DriverError(
                "; ".join(p for p, _ in problems) + f": the weights claim {where} would be replaced by an empty "
                "volume under the same name. Set it back (" + "; ".join(f for _, f in problems) + f"), or {move}.")
        notes = []
        if allow_replace:
            notes.append(f"{ALLOW_KEY} is true but nothing replaces the weights claim {where}: set it back to "
                         f"false ({_set(ALLOW_KEY, 'false')}); while it is true the claim is not protected")
        if quantity_value(configured.size) > quantity_value(deployed.size):
            notes.append(f"the weights claim {where} grows from {deployed.size} to {configured.size} in place "
                         "(its storage class must allow volume expansion)")
        return Verdict(False, tuple(notes))
    changed = []
    if configured.namespace != deployed.namespace:
        changed.append(f"namespace changes from {deployed.namespace!r} to {configured.namespace!r}")
    if configured.name != deployed.name:
        changed.append(f"{GENERATION_KEY} changes from {generation_of(deployed.name)} to "
                       f"{generation_of(configured.name)}")
    what = " and ".join(changed)
    new = f"{configured.namespace}/{configured.name}"
    if not allow_replace:
        raise DriverError(
            f"{what}: the weights claim {where} would be replaced by a new, empty {new}. Set it back, or set "
            f"{ALLOW_KEY} true for this update ({_set(ALLOW_KEY, 'true')}): bucket setup and staging then run "
            f"again into the new volume; {kept}. Set {ALLOW_KEY} back to false afterwards.")
    return Verdict(True, (f"{what}: the weights move to a new, empty volume {new}; bucket setup and staging run "
                          f"again into it; {kept}. Set {ALLOW_KEY} back to false after this update.",))
