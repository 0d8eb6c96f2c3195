"""One HorizontalPodAutoscaler (``autoscaling/v2``) per TGI variant, for gateway mode.

The HPA targets the variant's Deployment by name (:func:`components.naming.tgi_deployment_name`); the
Deployment then leaves ``spec.replicas`` to it. The behaviour is set for servers that need minutes to load
and warm up before they take a request (README: Autoscaling):

* scale-up waits ``UP_STABILIZATION_SECONDS`` (one spike is not a trend) and then adds at most one replica,
  or half the current count when that is more, per ``scale_up_period_seconds``: a new replica counts only
  once it is Ready, so adding more while the last ones still start would overshoot;
* scale-down acts on the highest recommendation of ``scale_down_stabilization_seconds`` and removes one
  replica per ``DOWN_PERIOD_SECONDS``: a replica removed in a lull costs minutes (and perhaps a GPU node)
  to bring back.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.naming import TGI_APP, common_labels, tgi_deployment_name, tgi_selector

UP_STABILIZATION_SECONDS = 60
UP_PERCENT = 50
DOWN_PERIOD_SECONDS = 300


@dataclass(frozen=True, kw_only=True)
class MetricTarget:
    """What the HPA holds at its target: CPU utilisation, or a Pods/External metric's average value."""

    kind: str
    """``cpu``, ``pods`` or ``external``."""
    cpu_utilization: int = 70
    metric_name: str | None = None
    average_value: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in ("cpu", "pods", "external"):
            raise ValueError(f"metric kind must be cpu, pods or external, got {self.kind!r}")
        if self.kind != "cpu" and (not self.metric_name or not self.average_value):
            raise ValueError(f"a {self.kind} metric needs metric_name and average_value")


def hpa_metric(target: MetricTarget, variant: str) -> dict[str, Any]:
    """The ``spec.metrics`` entry. An External metric is selected by the variant's pod labels, so each variant's
    HPA reads its own series (a Pods metric is per pod of the target already)."""
    if target.kind == "cpu":
        return {"type": "Resource", "resource": {
            "name": "cpu", "target": {"type": "Utilization", "averageUtilization": target.cpu_utilization}}}
    value = {"type": "AverageValue", "averageValue": target.average_value}
    if target.kind == "pods":
        return {"type": "Pods", "pods": {"metric": {"name": target.metric_name}, "target": value}}
    return {"type": "External", "external": {
        "metric": {"name": target.metric_name, "selector": {"matchLabels": tgi_selector(variant)}}, "target": value}}


def target_summary(target: MetricTarget) -> str:
    """The target in a few words, for the preview."""
    if target.kind == "cpu":
        return f"cpu utilisation {target.cpu_utilization}% of requests"
    return f"{target.kind} metric {target.metric_name} averaging {target.average_value} per pod"


def hpa_behavior(scale_up_period_seconds: int, scale_down_stabilization_seconds: int) -> dict[str, Any]:
    """Slow-start behaviour (see the module docstring)."""
    return {
        "scaleUp": {
            "stabilizationWindowSeconds": UP_STABILIZATION_SECONDS,
            "selectPolicy": "Max",
            "policies": [
                {"type": "Pods", "value": 1, "periodSeconds": scale_up_period_seconds},
                {"type": "Percent", "value": UP_PERCENT, "periodSeconds": scale_up_period_seconds},
            ],
        },
        "scaleDown": {
            "stabilizationWindowSeconds": scale_down_stabilization_seconds,
            "selectPolicy": "Min",
            "policies": [{"type": "Pods", "value": 1, "periodSeconds": DOWN_PERIOD_SECONDS}],
        },
    }


def hpa_spec(variant: str, *, min_replicas: int, max_replicas: int, target: MetricTarget,
             scale_up_period_seconds: int, scale_down_stabilization_seconds: int) -> dict[str, Any]:
    """The HPA's ``spec`` for one variant."""
    if not 1 <= min_replicas <= max_replicas:
        raise ValueError(f"need 1 <= min_replicas <= max_replicas, got {min_replicas} and {max_replicas}")
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": tgi_deployment_name(variant)},
        "minReplicas": min_replicas,
        "maxReplicas": max_replicas,
        "metrics": [hpa_metric(target, variant)],
        "behavior": hpa_behavior(scale_up_period_seconds, scale_down_stabilization_seconds),
    }


@dataclass(frozen=True, kw_only=True)
class VariantAutoscalerArgs:
    """Inputs for VariantAutoscaler."""

    namespace: pulumi.Input[str]
    stack: str
    variant: str
    min_replicas: int
    max_replicas: int
    target: MetricTarget
    scale_up_period_seconds: int = 300
    scale_down_stabilization_seconds: int = 600
    deployment: pulumi.Resource | None = None
    """The Deployment it scales (created first)."""


class VariantAutoscaler(pulumi.ComponentResource):
    """The HPA of one TGI variant."""

    hpa_name: pulumi.Output[str]
    summary: pulumi.Output[Mapping[str, Any]]

    def __init__(self, name: str, args: VariantAutoscalerArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:serving:VariantAutoscaler", name, None, opts)
        labels = {**common_labels("autoscaling", args.stack), "app.kubernetes.io/name": TGI_APP,
                  **tgi_selector(args.variant)}
        hpa = k8s.autoscaling.v2.HorizontalPodAutoscaler(
            f"{name}-hpa",
            metadata={"name": tgi_deployment_name(args.variant), "namespace": args.namespace, "labels": labels},
            spec=hpa_spec(args.variant, min_replicas=args.min_replicas, max_replicas=args.max_replicas,
                          target=args.target, scale_up_period_seconds=args.scale_up_period_seconds,
                          scale_down_stabilization_seconds=args.scale_down_stabilization_seconds),
            opts=pulumi.ResourceOptions(parent=self, depends_on=[args.deployment] if args.deployment else None),
        )
        self.hpa_name = hpa.metadata.name
        self.summary = pulumi.Output.from_input({"minReplicas": args.min_replicas, "maxReplicas": args.max_replicas,
                                                 "target": target_summary(args.target)})
        self.register_outputs({"hpa_name": self.hpa_name, "summary": self.summary})
