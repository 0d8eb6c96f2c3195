"""The ``observability`` section of the settings schema: Prometheus Operator PodMonitors for both
variants, the NetworkPolicy that lets Prometheus scrape them, and a Grafana dashboard ConfigMap
comparing stable and canary. Off by default: it needs the Prometheus Operator's CRDs on the cluster.
"""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, field_validator

from stacks.config_types import Bool, DnsLabel, LabelMap, OptionalText, Section, Text, is_dns_label, problem, show

DURATION = re.compile(r"^[0-9]+(ms|s|m|h)$")


class ObservabilitySettings(Section):
    """Prometheus scraping and the A/B dashboard."""

    prometheus: Bool = False
    """Add a PodMonitor per variant, a NetworkPolicy letting Prometheus scrape them and a Grafana dashboard
    ConfigMap (needs the Prometheus Operator's CRDs)"""
    prometheus_namespace: DnsLabel = "monitoring"
    """Namespace of the Prometheus that scrapes the variants"""
    prometheus_pod_labels: LabelMap = Field(default_factory=lambda: {"app.kubernetes.io/name": "prometheus"})
    """Labels of the Prometheus pods allowed to scrape (empty: every pod of `prometheusNamespace`)"""
    pod_monitor_labels: LabelMap = Field(default_factory=dict)
    """Extra labels of the PodMonitors, e.g. `release: <helm release>` for kube-prometheus-stack's default selector"""
    scrape_interval: Annotated[str, Text(DURATION, "a Prometheus duration such as 15s or 1m")] = "15s"
    """How often Prometheus scrapes each pod"""
    dashboard_namespace: OptionalText = None
    """Namespace of the dashboard ConfigMap (empty: the experiment's); Grafana's dashboard sidecar must watch it"""

    @field_validator("dashboard_namespace")
    @classmethod
    def _a_namespace(cls, value: str | None) -> str | None:
        if value is not None and not is_dns_label(value):
            raise problem(f"must be a namespace name (a DNS label), got {show(value)}")
        return value
