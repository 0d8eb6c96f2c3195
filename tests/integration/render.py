"""Turn the Kubernetes resources recorded by the Pulumi mocks into plain manifests."""

from __future__ import annotations

from typing import Any

from tests.harness import SECRET_SIG

SKIP_PREFIXES = ("kubernetes:helm.sh/", "kubernetes:yaml", "kubernetes:kustomize", "pulumi:")


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        if SECRET_SIG in value:
            return _plain(value.get("value"))
        return {k: _plain(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


def manifests(resources: list[Any]) -> list[dict[str, Any]]:
    """One manifest per recorded ``kubernetes:<group>/<version>:<Kind>`` resource.

    Objects without ``metadata.name`` get the name the recording mock gives them
    (``<logical name>-abc123``, standing in for Pulumi's auto-naming), so that references made
    through outputs stay consistent."""
    out = []
    for r in resources:
        if not r.typ.startswith("kubernetes:") or r.typ.startswith(SKIP_PREFIXES):
            continue
        _, gv, kind = r.typ.split(":")
        group, version = gv.rsplit("/", 1)
        api_version = version if group == "core" else f"{group}/{version}"
        obj = _plain(dict(r.inputs))
        obj["apiVersion"] = obj.get("apiVersion") or api_version
        obj["kind"] = obj.get("kind") or kind
        meta = obj.setdefault("metadata", {})
        meta.setdefault("name", f"{r.name}-abc123")
        out.append(obj)
    return out
