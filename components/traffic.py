"""The traffic Service that splits requests between stable and canary, and who may call it.

One ClusterIP Service selects only ``run: text-generation-inference``, i.e. the pods of both
variants, so the split follows the replica counts that :mod:`components.split` computed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from components.naming import TGI_APP, TGI_PORT, common_labels, service_url, tgi_traffic_selector
from components.split import SplitPlan


def split_summary(plan: SplitPlan) -> dict[str, float | int]:
    """What every PR preview should show about the split."""
    return {
        "declaredCanaryPercent": plan.declared_percent,
        "effectiveCanaryPercent": round(plan.effective_percent, 2),
        "stableReplicas": plan.stable_replicas,
        "canaryReplicas": plan.canary_replicas,
    }


@dataclass(frozen=True, kw_only=True)
class TrafficSplitArgs:
    """Inputs for TrafficSplit."""

    namespace: pulumi.Input[str]
    stack: str
    plan: SplitPlan
    allowed_namespaces: Sequence[str] = ()
    """Other namespaces whose pods may call TGI; the experiment's own namespace always may."""


class TrafficSplit(pulumi.ComponentResource):
    """ClusterIP Service over both variants plus a NetworkPolicy limiting who reaches TGI."""

    service_name: pulumi.Output[str]
    url: pulumi.Output[str]
    split: pulumi.Output[dict[str, float | int]]

    def __init__(self, name: str, args: TrafficSplitArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:routing:TrafficSplit", name, None, opts)
        labels = {**common_labels("traffic", args.stack), "app.kubernetes.io/name": TGI_APP}
        service = k8s.core.v1.Service(
            f"{name}-svc",
            # No declared-split annotations here: they sit on the TGI Deployments (components/naming.py
            # ``split_annotations``), so a new split changes only the Deployments.
            metadata={"name": TGI_APP, "namespace": args.namespace, "labels": labels},
            spec={
                "type": "ClusterIP",
                "selector": tgi_traffic_selector(),
                "ports": [{"name": "http", "port": TGI_PORT, "targetPort": "http"}],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        peers: list[dict[str, object]] = [{"podSelector": {}}]  # any pod in this namespace
        peers += [{"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": ns}}}
                  for ns in args.allowed_namespaces]
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata={"namespace": args.namespace, "labels": labels},
            spec={
                "podSelector": {"matchLabels": tgi_traffic_selector()},
                "policyTypes": ["Ingress"],
                "ingress": [{"from": peers, "ports": [{"protocol": "TCP", "port": TGI_PORT}]}],
            },
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.service_name = service.metadata.name
        self.url = pulumi.Output.all(service.metadata.name, args.namespace).apply(
            lambda v: service_url(v[0], v[1], TGI_PORT))
        self.split = pulumi.Output.from_input(split_summary(args.plan))
        self.register_outputs({"service_name": self.service_name, "url": self.url, "split": self.split})
