"""The experiment's namespace: Datashim opt-in label, default-deny in both directions, and the egress
every pod or a labelled kind of pod needs (DNS; HTTPS to the internet for ``HTTPS_EGRESS_LABEL``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from components.naming import ADOPTED_ANNOTATION, HTTPS_EGRESS_LABEL, common_labels
from components.netpol import DEFAULT_INTERNAL_CIDRS, default_deny, dns_egress, https_egress
from components.weights_volume import Keep


@dataclass(frozen=True, kw_only=True)
class ExperimentNamespaceArgs:
    """Inputs for ExperimentNamespace."""

    name: str
    """Explicit namespace name (users and their kubectl commands refer to it)."""
    stack: str
    labels: Mapping[str, str] = field(default_factory=dict)
    """Extra labels, e.g. Datashim's ``monitor-pods-datasets: enabled`` opt-in."""
    adopted: bool = False
    """The namespace existed before the stack (``adopt.namespace``): annotated ``ADOPTED_ANNOTATION``, so the
    deploy driver never lets a later update treat it as the stack's own."""
    keep: Keep = Keep(protect=True, retain_on_delete=True)
    """How the namespace is kept (``weights_keep(...).namespace``): it holds the weights claim, or is adopted."""
    internal_cidrs: Sequence[str] = DEFAULT_INTERNAL_CIDRS
    """Never reached by the HTTPS egress to the internet (the cluster's and the VPC's networks)."""


class ExperimentNamespace(pulumi.ComponentResource):
    """A namespace where no pod connects to or is reached by anything unless a policy allows it."""

    name: pulumi.Output[str]

    def __init__(self, name: str, args: ExperimentNamespaceArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:platform:ExperimentNamespace", name, None, opts)
        ns = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata={"name": args.name, "labels": {**common_labels("namespace", args.stack), **args.labels},
                      **({"annotations": {ADOPTED_ANNOTATION: "true"}} if args.adopted else {})},
            # Deleting a namespace deletes every claim in it, so it shares the data's protection
            # (components/weights_volume.weights_keep). Protected: `make destroy` (--exclude-protected) keeps it
            # and the weights claim in the state, so the next `make up` finds both as they were.
            opts=pulumi.ResourceOptions(parent=self, retain_on_delete=args.keep.retain_on_delete,
                                        protect=args.keep.protect),
        )
        labels = common_labels("namespace", args.stack)
        policies = {
            "default-deny": default_deny(),
            "dns": dns_egress(),
            "https-egress": https_egress({HTTPS_EGRESS_LABEL: "true"}, args.internal_cidrs),
        }
        for suffix, spec in policies.items():
            k8s.networking.v1.NetworkPolicy(
                f"{name}-{suffix}",
                metadata={"namespace": ns.metadata.name, "labels": labels},
                spec=spec,
                opts=pulumi.ResourceOptions(parent=self),
            )
        self.name = ns.metadata.name
        self.register_outputs({"name": self.name})
