"""The experiment's namespace, checked before a preview: never someone else's unless adopted on purpose,
and never left unprotected while it still holds a weights claim the stack kept (components/namespace.py).

Server-side apply creates a namespace by applying it, so an existing one would be taken over silently:
labelled, locked down by the stack's default-deny policies and, unless kept, deleted with everything in
it by ``destroy``. Pure functions over the exported state and a :class:`Cluster` (the driver's
:class:`deploy.cluster.Kubectl`; a fake in the tests), which is asked only when the state can't tell.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from components.naming import ADOPTED_ANNOTATION
from components.weights_volume import Keep
from deploy.workspace import DriverError

ADOPT_KEY = "adopt.namespace"
NAMESPACE_URN_MARK = "llmab:platform:ExperimentNamespace$kubernetes:core/v1:Namespace::"
"""What the experiment namespace's URN contains (ExperimentNamespace's child Namespace)."""


class Cluster(Protocol):
    """What the checks ask the cluster."""

    def namespace_exists(self, name: str) -> bool: ...

    def weights_claims(self, namespace: str) -> list[str]:
        """Names of the stack's weights claims in ``namespace`` (by their labels)."""
        ...


@dataclass(frozen=True)
class DeployedNamespace:
    name: str
    protect: bool
    retained: bool
    adopted: bool = False
    """Annotated ``ADOPTED_ANNOTATION``: it existed before the stack."""


def deployed_namespace(deployment: Mapping[str, Any]) -> DeployedNamespace | None:
    """The experiment's namespace in an exported deployment (as last applied), or None."""
    for resource in deployment.get("resources") or []:
        if NAMESPACE_URN_MARK in str(resource.get("urn", "")) and not resource.get("delete"):
            meta = (resource.get("inputs") or {}).get("metadata") or {}
            return DeployedNamespace(name=str(meta.get("name", "")), protect=bool(resource.get("protect")),
                                     retained=bool(resource.get("retainOnDelete")),
                                     adopted=(meta.get("annotations") or {}).get(ADOPTED_ANNOTATION) == "true")
    return None


def _set(key: str, value: object) -> str:
    return f"pulumi config set --path {key} {value}"


def check(deployed: DeployedNamespace | None, configured: str, keep: Keep, *, adopt: bool, protect_storage: bool,
          cluster: Cluster) -> list[str]:
    """Notes for the log; DriverError when the update would take over a namespace the stack did not create
    (without ``adopt.namespace``), or drop the protection of its namespace while a weights claim the stack
    kept is still in it."""
    notes: list[str] = []
    ours = deployed is not None and deployed.name == configured
    if ours and deployed is not None and deployed.adopted and not adopt:
        raise DriverError(
            f"namespace {configured!r} was adopted ({ADOPT_KEY}): it existed before this stack, and with "
            f"{ADOPT_KEY} false a destroy could delete it with everything in it. Keep {ADOPT_KEY} true, or move "
            "the stack to a namespace of its own (pulumi config set namespace <new-name>).")
    if not ours and cluster.namespace_exists(configured):
        if not adopt:
            raise DriverError(
                f"namespace {configured!r} already exists in the cluster and this stack did not create it: "
                "the update would take it over (label it, deny its pods all traffic the stack's policies don't "
                "allow) and a destroy would delete it with everything in it. Set namespace to one of the "
                "stack's own (pulumi config set namespace <new-name>), or adopt this one on "
                f"purpose ({_set(ADOPT_KEY, 'true')}): it is then never deleted, by destroy either. A namespace "
                "an earlier destroy of this stack kept (retainOnDelete) is adopted the same way.")
        notes.append(f"adopting the existing namespace {configured!r} ({ADOPT_KEY}): it is labelled and locked "
                     "down like the stack's own, and never deleted")
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
