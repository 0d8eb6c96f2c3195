"""The experiment's namespace: Datashim opt-in label and a default-deny ingress policy."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.naming import common_labels


@dataclass(frozen=True, kw_only=True)
class ExperimentNamespaceArgs:
    """Inputs for ExperimentNamespace."""

    name: str
    """Explicit namespace name (users and their kubectl commands refer to it)."""
    stack: str
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra labels, e.g. Datashim's ``monitor-pods-datasets: enabled`` opt-in."""
    retain: bool = True
    """Keep the namespace on ``pulumi destroy``: it holds the protected weights volume."""


class ExperimentNamespace(pulumi.ComponentResource):
    """A namespace where nothing is reachable unless a policy allows it."""

    name: pulumi.Output[str]

    def __init__(self, name: str, args: ExperimentNamespaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:platform:ExperimentNamespace", name, None, opts)
        ns = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={"name": args.name, "labels": {**common_labels("namespace", args.stack), **args.labels}},
            # Deleting a namespace deletes every claim in it, so it shares the data's protection.
            # Protected too: `make destroy` (--exclude-protected) keeps it and the weights claim in the state,
            # so the next `make up` finds both as they were.
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=args.retain, protect=args.retain),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-default-deny",
            metadata={"namespace": ns.metadata.name, "labels": common_labels("namespace", args.stack)},
            spec={"podSelector": {}, "policyTypes": ["Ingress"]},
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.name = ns.metadata.name
        self.register_outputs({"name": self.name})
