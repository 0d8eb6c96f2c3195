"""Pod-spec fragments every component uses: hardened security contexts, probes, tolerations (pure)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from components.quantity import binary_quantity, quantity_value
from policy.contract import GPU_RESOURCE, GPU_TAINT_KEY, NODE_KIND_LABEL, SIMULATED_NODE, SIMULATED_TAINT_KEY

__all__ = ["GPU_RESOURCE", "GPU_TAINT_KEY", "LOG_ALLOWANCE", "container_security", "ephemeral_storage",
           "gpu_tolerations", "http_probe", "pip_then_python", "placed", "pod_security", "simulated_placement",
           "tmp_volume", "with_ephemeral_storage"]

NON_ROOT_UID = 1000


def pod_security(*, non_root: bool = True, uid: int = NON_ROOT_UID) -> dict[str, Any]:
    """Pod-level security context: a fixed non-root user and the runtime's seccomp profile."""
    ctx: dict[str, Any] = {"seccompProfile": {"type": "RuntimeDefault"}}
    if non_root:
        ctx.update(runAsNonRoot=True, runAsUser=uid, runAsGroup=uid, fsGroup=uid)
    return ctx


def container_security(*, read_only_root: bool = True) -> dict[str, Any]:
    """Container security context: no privilege escalation, no capabilities."""
    return {
        "allowPrivilegeEscalation": False,
        "readOnlyRootFilesystem": read_only_root,
        "capabilities": {"drop": ["ALL"]},
    }


def http_probe(path: str, port: str | int, *, period: int, failures: int, timeout: int = 5,
               initial_delay: int = 0) -> dict[str, Any]:
    probe: dict[str, Any] = {
        "httpGet": {"path": path, "port": port},
        "periodSeconds": period,
        "failureThreshold": failures,
        "timeoutSeconds": timeout,
    }
    if initial_delay:
        probe["initialDelaySeconds"] = initial_delay
    return probe


def gpu_tolerations() -> list[dict[str, str]]:
    """Tolerate the GPU node taint (``nvidia.com/gpu=true:NoSchedule`` on our EKS pools)."""
    return [{"key": GPU_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]


def simulated_placement() -> dict[str, Any]:
    """Pod placement on the local cluster's simulated (kwok) nodes: select them, tolerate the simulated CPU node's
    taint. A GPU pod keeps its own selector and GPU toleration beside these, so it lands on the simulated GPU node."""
    return {"nodeSelector": {NODE_KIND_LABEL: SIMULATED_NODE},
            "tolerations": [{"key": SIMULATED_TAINT_KEY, "operator": "Exists", "effect": "NoSchedule"}]}


def placed(spec: Mapping[str, Any], placement: Mapping[str, Any]) -> dict[str, Any]:
    """``spec`` (a pod spec, or a ServingRuntime's) with ``placement``'s node selector merged into its own and its
    tolerations added to its own; ``spec`` as it is when ``placement`` is empty."""
    out = dict(spec)
    selector = {**out.get("nodeSelector", {}), **placement.get("nodeSelector", {})}
    tolerations = [*out.get("tolerations", [])]
    tolerations += [dict(t) for t in placement.get("tolerations", []) if t not in tolerations]
    if selector:
        out["nodeSelector"] = selector
    if tolerations:
        out["tolerations"] = tolerations
    return out


def tmp_volume(name: str = "tmp", size: str = "1Gi") -> dict[str, Any]:
    return {"name": name, "emptyDir": {"sizeLimit": size}}


LOG_ALLOWANCE = "256Mi"
"""Node disk a container uses besides its emptyDirs: its logs (the kubelet keeps up to 5 x 10Mi a container by
default) and, for an image run without a read-only root, its writable layer."""


def ephemeral_storage(volumes: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """``ephemeral-storage`` of the one container of a pod with ``volumes``: the disk-backed emptyDirs' size
    limits plus :data:`LOG_ALLOWANCE`, requested (so the scheduler puts the pod on a node with that much free
    disk, instead of the kubelet evicting it mid-download) and, when every such emptyDir has a size, the limit
    too. Memory-backed emptyDirs (``/dev/shm``) count as memory, not here."""
    disks = [v["emptyDir"] for v in volumes if "emptyDir" in v and (v["emptyDir"] or {}).get("medium") != "Memory"]
    sized = [d["sizeLimit"] for d in disks if (d or {}).get("sizeLimit")]
    amount = binary_quantity(sum((quantity_value(s) for s in sized), quantity_value(LOG_ALLOWANCE)))
    storage = {"ephemeral-storage": amount}
    if disks and len(sized) == len(disks):
        return {"requests": storage, "limits": dict(storage)}
    return {"requests": storage}


def with_ephemeral_storage(resources: Mapping[str, Mapping[str, str]],
                           volumes: Sequence[Mapping[str, Any]]) -> dict[str, dict[str, str]]:
    """``resources`` (requests, limits) plus :func:`ephemeral_storage` of ``volumes``."""
    out = {kind: dict(amounts) for kind, amounts in resources.items()}
    for kind, amounts in ephemeral_storage(volumes).items():
        out[kind] = {**out.get(kind, {}), **amounts}
    return out


def pip_then_python(requirements: str, python_args: str, *, name: str, pythonpath: str = "") -> list[str]:
    """The one install command of every Job that runs our tools shipped by ConfigMap onto a stock
    python image: install the hash-locked ``requirements`` (a lock of :mod:`components.joblock`)
    into /tmp (the root file system is read-only), exactly the locked wheels and nothing else, then
    run ``python <python_args>`` with the container's ``args`` appended."""
    path = ":".join(p for p in ("/tmp/deps", pythonpath) if p)
    return [
        "/bin/sh", "-c",
        "pip install --quiet --no-cache-dir --disable-pip-version-check --require-hashes --no-deps "
        f"--only-binary=:all: --target /tmp/deps -r {requirements} "
        f"&& PYTHONPATH={path} exec python {python_args} \"$@\"",
        name,
    ]
