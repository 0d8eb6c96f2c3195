"""The traffic split between stable and canary, and who may call TGI.

Replicas mode: one ClusterIP Service selects only ``run: text-generation-inference``, i.e. the pods of both
variants, so the split follows the replica counts that :mod:`components.split` computed. Gateway mode: no
shared Service; an HTTPRoute (:class:`components.route.WeightedRoute`) on an existing Gateway splits by weight
over the variants' own Services, and the Gateway's namespace may reach TGI.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.naming import (
    INFERENCE_CLIENT_LABEL,
    TGI_APP,
    TGI_PORT,
    common_labels,
    service_url,
    tgi_traffic_selector,
)
from components.netpol import Spec, egress_to, ingress_from, namespace_peer, pods_peer, tcp
from components.route import GatewayRef, WeightedRoute, WeightedRouteArgs, route_summary
from components.split import RouteWeights, SplitCost, SplitPlan


def split_summary(plan: SplitPlan) -> dict[str, float | int]:
    """What every PR preview should show about the split."""
    return {
        "declaredCanaryPercent": plan.declared_percent,
        "effectiveCanaryPercent": round(plan.effective_percent, 2),
        "stableReplicas": plan.stable_replicas,
        "canaryReplicas": plan.canary_replicas,
    }


@dataclass(frozen=True, kw_only=True)
class GatewaySplit:
    """Gateway mode's inputs: the Gateway, the weights, the header matches, and the replicas per variant."""

    gateway: GatewayRef
    weights: RouteWeights
    declared_percent: float
    url: str
    headers: dict[str, tuple[str, str]]
    replicas: dict[str, int | str]
    """Per variant: a count, or the HPA's range (e.g. ``"1-4 (HPA)"``)."""
    cost: SplitCost


def gateway_split_summary(split: GatewaySplit) -> dict[str, Any]:
    """What the preview shows in gateway mode: declared = effective, weights, replicas, and the GPUs next to
    what replica mode would need for the same split."""
    return {
        "mode": "gateway",
        **route_summary(split.weights, split.declared_percent),
        "stableReplicas": split.replicas["stable"],
        "canaryReplicas": split.replicas["canary"],
        "headers": {variant: f"{name}: {value}" for variant, (name, value) in sorted(split.headers.items())},
        "cost": split.cost.summary(),
    }


INFERENCE_CLIENTS = {INFERENCE_CLIENT_LABEL: "true"}


def tgi_ingress_peers(allowed_namespaces: Sequence[str]) -> list[dict[str, object]]:
    """Who may reach the serving pods: the namespace's labelled inference clients (the smoke and analysis
    Jobs carry the label) and every pod of ``allowed_namespaces``. Nothing else, not even the namespace's
    other pods (MinIO, staging)."""
    return [pods_peer(INFERENCE_CLIENTS), *[namespace_peer(ns) for ns in allowed_namespaces]]


def inference_client_egress(gateway_namespace: str | None) -> Spec:
    """Where the namespace's inference clients may connect: the serving pods' port and, in gateway mode, the
    Gateway's pods (any port: a Gateway's pods listen on ports of its implementation's choosing behind the
    Service port of its URL)."""
    spec = egress_to(INFERENCE_CLIENTS, [pods_peer(tgi_traffic_selector())], tcp(TGI_PORT))
    if gateway_namespace:
        spec["egress"].append({"to": [namespace_peer(gateway_namespace)]})
    return spec


def serving_ingress(allowed_namespaces: Sequence[str]) -> Spec:
    """The serving pods of both variants accept :func:`tgi_ingress_peers` on the serving port only."""
    return ingress_from(tgi_traffic_selector(), [(tgi_ingress_peers(allowed_namespaces), tcp(TGI_PORT))])


@dataclass(frozen=True, kw_only=True)
class TrafficSplitArgs:
    """Inputs for TrafficSplit."""

    namespace: pulumi.Input[str]
    stack: str
    plan: SplitPlan | None = None
    """Replicas mode: the replica split (None in gateway mode)."""
    gateway: GatewaySplit | None = None
    """Gateway mode: the route (None in replicas mode)."""
    allowed_namespaces: Sequence[str] = ()
    """Other namespaces whose pods may call the serving pods (and, in gateway mode, the Gateway's); in the
    experiment's own namespace only the pods labelled ``INFERENCE_CLIENT_LABEL`` may."""
    backends: Sequence[pulumi.Resource] = ()
    """Gateway mode: the variants (their Services are the route's backends)."""

    def __post_init__(self) -> None:
        if (self.plan is None) == (self.gateway is None):
            raise ValueError("TrafficSplit needs exactly one of plan (replicas mode) and gateway (gateway mode)")


class TrafficSplit(pulumi.ComponentResource):
    """Replicas mode: a ClusterIP Service over both variants. Gateway mode: the weighted HTTPRoute. Both: a
    NetworkPolicy limiting who reaches TGI."""

    service_name: pulumi.Output[str]
    url: pulumi.Output[str]
    split: pulumi.Output[dict[str, Any]]

    def __init__(self, name: str, args: TrafficSplitArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:routing:TrafficSplit", name, None, opts)
        labels = {**common_labels("traffic", args.stack), "app.kubernetes.io/name": TGI_APP}
        allowed = list(args.allowed_namespaces)
        if args.gateway is not None:
            gateway_ns = args.gateway.gateway.namespace
            if gateway_ns and gateway_ns not in allowed:
                allowed.append(gateway_ns)  # the Gateway's data plane forwards to the pods
            route = WeightedRoute(f"{name}-route", WeightedRouteArgs(
                namespace=args.namespace, stack=args.stack, gateway=args.gateway.gateway,
                weights=args.gateway.weights, url=args.gateway.url, headers=args.gateway.headers,
                backends=args.backends), opts=pulumi.ResourceOptions(parent=self))
            self.service_name = route.route_name
            self.url = route.url
            self.split = pulumi.Output.from_input(gateway_split_summary(args.gateway))
        else:
            assert args.plan is not None
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
            self.service_name = service.metadata.name
            self.url = pulumi.Output.all(service.metadata.name, args.namespace).apply(
                lambda v: service_url(v[0], v[1], TGI_PORT))
            self.split = pulumi.Output.from_input(split_summary(args.plan))
        k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata={"namespace": args.namespace, "labels": labels},
            spec=serving_ingress(allowed),
            opts=pulumi.ResourceOptions(parent=self),
        )
        k8s.networking.v1.NetworkPolicy(
            f"{name}-clients-netpol",
            metadata={"namespace": args.namespace, "labels": labels},
            spec=inference_client_egress(args.gateway.gateway.namespace if args.gateway is not None else None),
            opts=pulumi.ResourceOptions(parent=self),
        )
        self.register_outputs({"service_name": self.service_name, "url": self.url, "split": self.split})
