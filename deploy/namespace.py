"""The experiment's namespace, checked before a preview: never left unprotected while it still holds a
weights claim the stack kept (components/namespace.py, components/weights_volume.weights_keep).

Pure functions over the exported state and a :class:`Cluster` (the driver's
:class:`deploy.cluster.Kubectl`; a fake in the tests), which is asked only when the state can't tell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Protocol

from components.weights_volume import Keep
from deploy.workspace import DriverError

NAMESPACE_URN_MARK = "llmab:platform:ExperimentNamespace$kubernetes:core/v1:Namespace::"
"""What the experiment namespace's URN contains (ExperimentNamespace's child Namespace)."""


class Cluster(Protocol):
    """What the checks ask the cluster."""

    def weights_claims(self, namespace: str) -> list[str]:
        """Names of the stack's weights claims in ``namespace`` (by their labels)."""
        ...


@dataclass(frozen=True)
class DeployedNamespace:
    name: str
    protect: bool
    retained: bool


def deployed_namespace(deployment: Mapping[str, object]) -> DeployedNamespace | None:
    """The experiment's namespace in an exported deployment (as last applied), or None."""
    for resource in deployment.get("resources") or []:  # type: ignore[attr-defined]
        if NAMESPACE_URN_MARK in str(resource.get("urn", "")) and not resource.get("delete"):
            meta = (resource.get("inputs") or {}).get("metadata") or {}
            return DeployedNamespace(name=str(meta.get("name", "")), protect=bool(resource.get("protect")),
                                     retained=bool(resource.get("retainOnDelete")))
    return None


def check(deployed: DeployedNamespace | None, configured: str, keep: Keep, *, protect_storage: bool,
          cluster: Cluster) -> list[str]:
    """Notes for the log; DriverError when the update would drop the protection of the stack's namespace
    while a weights claim the stack kept is still in it."""
    notes: list[str] = []
    ours = deployed is not None and deployed.name == configured
    if (ours and deployed is not None and (deployed.protect or deployed.retained)
            and not (keep.protect or keep.retain_on_delete) and protect_storage):
        kept = cluster.weights_claims(configured)
        if kept:
            claims = ", ".join(kept)
            raise DriverError(
                f"namespace {configured!r} still holds the weights claim(s) {claims} this stack kept (they left "
                "MinIO with storage.allowReplace): this update would drop the namespace's protection, and a "
                "destroy would then delete it with them. Keep storage.allowReplace true while you need them "
                f"(it keeps the namespace protected), or delete them once nothing needs them (kubectl -n "
                f"{configured} delete pvc {' '.join(kept)}) and run again.")
        notes.append(f"namespace {configured!r} holds no weights claim any more: it is no longer kept on destroy")
    return notes
