"""What really ran: after ``up``, each pod of the stack's namespace, by part, with the node it is on and
whether that node runs containers (a real kubelet) or only pretends to (kwok's simulated nodes, where a
pod turns Ready without a process and a Job Succeeds without running). A gate Job that ran for real
shows the last lines of its report; one that was simulated says that nothing was checked.

:func:`classify` and :func:`render` are pure (tested on recorded API objects); :func:`report` asks the
cluster through the driver's client of it (deploy/cluster.py, the kubeconfig the provider uses).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from components.naming import INFERENCE_CLIENT_LABEL
from deploy.workspace import DriverError
from policy.contract import COMPONENT_LABEL, NODE_KIND_LABEL, REAL_NODE, SIMULATED_NODE, VARIANT_LABEL

REAL, SIMULATED, CLUSTER = REAL_NODE, SIMULATED_NODE, "cluster"
KWOK_NODE_ANNOTATION = "kwok.x-k8s.io/node"
GATE_LOG_LINES = 12


def node_kind(node: Mapping[str, Any]) -> str:
    """``real`` (the embedded cluster's kubelet), ``simulated`` (a kwok node) or ``cluster`` (any other
    cluster's node: real as far as we can tell)."""
    meta = node.get("metadata", {})
    if meta.get("annotations", {}).get(KWOK_NODE_ANNOTATION) == "fake":
        return SIMULATED
    if meta.get("labels", {}).get(NODE_KIND_LABEL) == REAL:
        return REAL
    return CLUSTER


@dataclass(frozen=True)
class PodReality:
    part: str
    """The component label's value, with the variant when the pod has one (``serving stable``)."""
    pod: str
    node: str
    kind: str
    """real, simulated, cluster, or ``unscheduled``."""
    phase: str
    job: str
    """The owning Job's name; empty for other pods."""
    gate: bool
    """A gate Job's pod (it calls the serving pods)."""


def classify(pods: Iterable[Mapping[str, Any]], nodes: Iterable[Mapping[str, Any]]) -> list[PodReality]:
    kinds = {n["metadata"]["name"]: node_kind(n) for n in nodes}
    found = []
    for pod in pods:
        meta, spec = pod.get("metadata", {}), pod.get("spec", {})
        labels = meta.get("labels", {})
        part = labels.get(COMPONENT_LABEL, meta.get("name", "?"))
        if labels.get(VARIANT_LABEL):
            part = f"{part} {labels[VARIANT_LABEL]}"
        node = spec.get("nodeName", "")
        job = labels.get("job-name", labels.get("batch.kubernetes.io/job-name", ""))
        found.append(PodReality(
            part=part, pod=meta.get("name", "?"), node=node,
            kind=kinds.get(node, CLUSTER) if node else "unscheduled",
            phase=pod.get("status", {}).get("phase", "?"),
            job=job, gate=labels.get(INFERENCE_CLIENT_LABEL) == "true" and bool(job),
        ))
    return sorted(found, key=lambda p: (p.part, p.pod))


WHAT_KIND_MEANS = {
    REAL: "ran for real",
    CLUSTER: "ran on the cluster",
    SIMULATED: "SIMULATED: nothing ran",
    "unscheduled": "not scheduled",
}


def render(namespace: str, pods: Sequence[PodReality], gate_logs: Mapping[str, Sequence[str]]) -> list[str]:
    """The lines of the report: one per part and node kind, then each gate Job's outcome."""
    if not pods:
        return [f"what ran in {namespace}: no pods"]
    lines = [f"what ran in {namespace} (real: containers ran on a real node; simulated: kwok faked the pod):"]
    groups: dict[tuple[str, str], list[PodReality]] = {}
    for p in pods:
        groups.setdefault((p.part, p.kind), []).append(p)
    width = max(len(part) for part, _ in groups)
    for (part, kind), members in groups.items():
        phases = ", ".join(sorted({m.phase for m in members}))
        nodes = ", ".join(sorted({m.node for m in members if m.node})) or "-"
        n = len(members)
        lines.append(f"  {part:<{width}}  {n} pod{'s' if n != 1 else ' '}  {WHAT_KIND_MEANS[kind]:<22} "
                     f"on {nodes} ({phases})")
    for p in pods:
        if not p.gate:
            continue
        if p.kind == SIMULATED:
            lines.append(f"  gate Job {p.job}: SIMULATED on {p.node}: kwok marked it {p.phase} without running "
                         "it; no inference was checked")
        elif p.kind in (REAL, CLUSTER):
            lines.append(f"  gate Job {p.job}: ran on {p.node}: {p.phase}; the last lines of its report:")
            lines += [f"    | {line}" for line in gate_logs.get(p.pod, ["(no log)"])]
    return [*lines, summary_line(pods)]


def summary_line(pods: Sequence[PodReality]) -> str:
    """One line for the reader in a hurry: which parts ran, which were only simulated."""
    ran = sorted({p.part for p in pods if p.kind in (REAL, CLUSTER)})
    simulated = sorted({p.part for p in pods if p.kind == SIMULATED} - set(ran))
    line = f"  in short: ran for real: {', '.join(ran) or 'nothing'}; simulated: {', '.join(simulated) or 'nothing'}"
    gates = [p for p in pods if p.gate]
    faked = [p for p in gates if p.kind == SIMULATED]
    if faked and len(faked) == len(gates):
        line += " (so no gate checked any inference)"
    elif faked:
        line += f" ({len(faked)} of {len(gates)} gate Jobs simulated)"
    return line


class Pods(Protocol):
    """What the report asks of the cluster (:class:`deploy.cluster.Kubectl`)."""

    def items(self, kind: str, namespace: str | None = None) -> list[dict[str, Any]]: ...

    def logs(self, namespace: str, pod: str, tail: int) -> list[str]: ...


def report(cluster: Pods, namespace: str) -> list[str]:
    """Ask the cluster and render; a cluster that does not answer is said so."""
    try:
        pods = classify(cluster.items("pods", namespace), cluster.items("nodes"))
        logs = {p.pod: cluster.logs(namespace, p.pod, GATE_LOG_LINES)
                for p in pods if p.gate and p.kind != SIMULATED and p.node}
    except DriverError as err:
        return [f"what ran in {namespace}: could not ask the cluster ({err})"]
    return render(namespace, pods, logs)
