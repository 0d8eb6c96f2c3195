"""Prometheus Operator PodMonitors for both variants, the NetworkPolicy that lets Prometheus scrape them,
and the Grafana dashboard ConfigMap (found by Grafana's dashboard sidecar through its label).

The PodMonitors need the Prometheus Operator's CRDs (``monitoring.coreos.com/v1``); the stack enables
this component only when told they are there (``observability.prometheus``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.dashboard import VARIANT_TARGET_LABEL, EngineMetrics, dashboard_json
from components.naming import TGI_PORT, common_labels, tgi_deployment_name, tgi_selector, tgi_traffic_selector
from policy.contract import RUN_LABEL

METRICS_PORT_NAME = "http"
"""Every engine serves its metrics on its HTTP port (the container port named ``http``)."""
METRICS_PATH = "/metrics"
DASHBOARD_LABEL = {"grafana_dashboard": "1"}
"""What Grafana's dashboard sidecar (the grafana and kube-prometheus-stack charts) looks for."""
COMPONENT = "observability"


def pod_monitor_spec(variant: str, namespace: str, interval: str, path: str = METRICS_PATH) -> dict[str, Any]:
    """A PodMonitor spec selecting one variant's pods; the variant and app labels go onto every series."""
    return {
        "selector": {"matchLabels": tgi_selector(variant)},
        "namespaceSelector": {"matchNames": [namespace]},
        "podTargetLabels": [VARIANT_TARGET_LABEL, RUN_LABEL],
        "podMetricsEndpoints": [{"port": METRICS_PORT_NAME, "path": path, "interval": interval,
                                 "scheme": "http"}],
    }


def scrape_policy_spec(prometheus_namespace: str, prometheus_pod_labels: Mapping[str, str]) -> dict[str, Any]:
    """Ingress to both variants' pods from the Prometheus pods, on the metrics port only."""
    peer: dict[str, Any] = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": prometheus_namespace}}}
    if prometheus_pod_labels:
        peer["podSelector"] = {"matchLabels": dict(prometheus_pod_labels)}
    return {
        "podSelector": {"matchLabels": tgi_traffic_selector()},
        "policyTypes": ["Ingress"],
        "ingress": [{"from": [peer], "ports": [{"protocol": "TCP", "port": TGI_PORT}]}],
    }


@dataclass(frozen=True, kw_only=True)
class AbMonitoringArgs:
    """Inputs for AbMonitoring."""

    namespace: str
    stack: str
    variants: Mapping[str, EngineMetrics]
    """Each variant and the metric names of the engine that serves it."""
    metrics_paths: Mapping[str, str] = field(default_factory=dict)
    """Each variant's metrics path (the engine's; default :data:`METRICS_PATH`)."""
    prometheus_namespace: str
    prometheus_pod_labels: Mapping[str, str] = field(default_factory=dict)
    pod_monitor_labels: Mapping[str, str] = field(default_factory=dict)
    scrape_interval: str = "15s"
    dashboard_namespace: str | None = None
    """Where the dashboard ConfigMap goes (None: ``namespace``)."""


class AbMonitoring(pulumi.ComponentResource):
    """A PodMonitor per variant, the scrape NetworkPolicy and the dashboard ConfigMap."""

    pod_monitors: pulumi.Output[list[str]]
    dashboard: pulumi.Output[str]

    def __init__(self, name: str, args: AbMonitoringArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:observability:AbMonitoring", name, None, opts)
        labels = common_labels(COMPONENT, args.stack)
        child = pulumi.ResourceOptions(parent=self)
        monitors = [
            k8s.apiextensions.CustomResource(
                f"{name}-{variant}",
                api_version="monitoring.coreos.com/v1",
                kind="PodMonitor",
                metadata={"name": tgi_deployment_name(variant), "namespace": args.namespace,
                          "labels": {**labels, **args.pod_monitor_labels}},
                spec=pod_monitor_spec(variant, args.namespace, args.scrape_interval,
                                      args.metrics_paths.get(variant, METRICS_PATH)),
                opts=child,
            )
            for variant in args.variants
        ]
        k8s.networking.v1.NetworkPolicy(
            f"{name}-scrape",
            metadata={"namespace": args.namespace, "labels": labels},
            spec=scrape_policy_spec(args.prometheus_namespace, args.prometheus_pod_labels),
            opts=child,
        )
        dashboard = k8s.core.v1.ConfigMap(
            f"{name}-dashboard",
            metadata={"namespace": args.dashboard_namespace or args.namespace, "labels": {**labels, **DASHBOARD_LABEL}},
            data={f"llm-ab-{args.stack}.json": dashboard_json(namespace=args.namespace, stack=args.stack,
                                                               variants=args.variants)},
            opts=child,
        )
        names = [tgi_deployment_name(variant) for variant in args.variants]  # set explicitly above
        self.pod_monitors = pulumi.Output.all(*[m.id for m in monitors]).apply(lambda _: names)
        self.dashboard = dashboard.metadata.name
        self.register_outputs({"pod_monitors": self.pod_monitors, "dashboard": self.dashboard})
