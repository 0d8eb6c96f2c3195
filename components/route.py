"""Gateway mode's entry point: an ``HTTPRoute`` (``gateway.networking.k8s.io/v1``) that splits requests between
the stable and canary Services by backendRef weight, attached to an existing Gateway.

Rules, in the order the Gateway API ranks them (same path, so the rule with more header matches wins):

* one per header match (``split.canaryHeader``, ``split.stableHeader``): all matching requests go to that
  variant's Service, whatever the weights (a cohort, and how the smoke gate reaches each variant through
  the Gateway);
* the weighted rule: every other request, ``stable`` and ``canary`` weighted out of
  :data:`components.split.WEIGHT_TOTAL`, so the split is exact (per request, not per connection).

The route needs the Gateway API CRDs and a Gateway controller on the cluster (neither is ours to install).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.naming import TGI_APP, TGI_PORT, common_labels, tgi_deployment_name
from components.split import RouteWeights

ROUTE_API_VERSION = "gateway.networking.k8s.io/v1"
ROUTE_KIND = "HTTPRoute"
ROUTE_NAME = TGI_APP
"""``metadata.name`` of the route (the replicas-mode traffic Service's name; the policy pack finds it by it)."""
VARIANTS = ("stable", "canary")


@dataclass(frozen=True, kw_only=True)
class GatewayRef:
    """The Gateway (and optionally its listener) the route attaches to."""

    name: str
    namespace: str | None = None
    """None: the route's own namespace."""
    section_name: str | None = None

    def parent_ref(self) -> dict[str, str]:
        ref = {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": self.name}
        if self.namespace:
            ref["namespace"] = self.namespace
        if self.section_name:
            ref["sectionName"] = self.section_name
        return ref


def backend_ref(variant: str, weight: int | None = None, port: int = TGI_PORT) -> dict[str, Any]:
    """A backendRef to one variant's own Service (``port`` is the Service port, required by the API)."""
    ref: dict[str, Any] = {"group": "", "kind": "Service", "name": tgi_deployment_name(variant), "port": port}
    if weight is not None:
        ref["weight"] = weight
    return ref


ALL_PATHS = {"path": {"type": "PathPrefix", "value": "/"}}


def route_rules(weights: RouteWeights, headers: Mapping[str, tuple[str, str]] | None = None,
                port: int = TGI_PORT) -> list[dict[str, Any]]:
    """Header rules (canary first), then the weighted rule over both variants' Services."""
    rules: list[dict[str, Any]] = []
    for variant in ("canary", "stable"):
        if headers and variant in headers:
            name, value = headers[variant]
            rules.append({
                "matches": [{**ALL_PATHS, "headers": [{"type": "Exact", "name": name, "value": value}]}],
                "backendRefs": [backend_ref(variant, port=port)],
            })
    rules.append({
        "matches": [ALL_PATHS],
        "backendRefs": [backend_ref("stable", weights.stable, port), backend_ref("canary", weights.canary, port)],
    })
    return rules


def route_spec(gateway: GatewayRef, weights: RouteWeights,
               headers: Mapping[str, tuple[str, str]] | None = None, port: int = TGI_PORT) -> dict[str, Any]:
    """The HTTPRoute's ``spec``."""
    return {"parentRefs": [gateway.parent_ref()], "rules": route_rules(weights, headers, port)}


def route_summary(weights: RouteWeights, declared_percent: float) -> dict[str, Any]:
    """What the preview shows of the route: declared = effective, and the weights that make it so."""
    return {
        "declaredCanaryPercent": declared_percent,
        "effectiveCanaryPercent": round(weights.effective_percent, 4),
        "weights": {"stable": weights.stable, "canary": weights.canary},
    }


@dataclass(frozen=True, kw_only=True)
class WeightedRouteArgs:
    """Inputs for WeightedRoute."""

    namespace: pulumi.Input[str]
    stack: str
    gateway: GatewayRef
    weights: RouteWeights
    url: str
    """The Gateway listener's URL (the route's entry point; the stack output ``trafficUrl``)."""
    headers: Mapping[str, tuple[str, str]] = field(default_factory=dict)
    backends: Sequence[pulumi.Resource] = ()
    """The variants' Services, created before the route refers to them."""


class WeightedRoute(pulumi.ComponentResource):
    """The HTTPRoute of gateway mode."""

    route_name: pulumi.Output[str]
    url: pulumi.Output[str]

    def __init__(self, name: str, args: WeightedRouteArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:routing:WeightedRoute", name, None, opts)
        labels = {**common_labels("traffic", args.stack), "app.kubernetes.io/name": TGI_APP}
        route = k8s.apiextensions.CustomResource(
            f"{name}-httproute",
            api_version=ROUTE_API_VERSION,
            kind=ROUTE_KIND,
            metadata={"name": ROUTE_NAME, "namespace": args.namespace, "labels": labels},
            spec=route_spec(args.gateway, args.weights, args.headers),
            opts=pulumi.ResourceOptions(parent=self, depends_on=list(args.backends)),
        )
        self.route_name = route.id.apply(lambda _: ROUTE_NAME)
        self.url = pulumi.Output.from_input(args.url)
        self.register_outputs({"route_name": self.route_name, "url": self.url})
