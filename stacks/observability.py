"""``observability.prometheus``: PodMonitors for both variants, the scrape NetworkPolicy and the A/B
Grafana dashboard (:class:`components.observability.AbMonitoring`), in the experiment's namespace."""

from __future__ import annotations

from typing import Any

from components.dashboard import ENGINE_METRICS, EngineMetrics
from components.namespace import ExperimentNamespace
from components.observability import AbMonitoring, AbMonitoringArgs
from stacks import outputs as OUT
from stacks.experiment import serving_engine
from stacks.platform import Platform
from stacks.settings import Settings, Variant


def variant_metrics(settings: Settings) -> dict[str, EngineMetrics]:
    """Each variant and the metric names of the engine serving it (:func:`stacks.experiment.serving_engine`)."""
    return {v.value: ENGINE_METRICS[serving_engine(settings, v).name] for v in Variant}


def metrics_paths(settings: Settings) -> dict[str, str]:
    """Where each variant's engine serves its Prometheus metrics (on the ``http`` port)."""
    return {v.value: serving_engine(settings, v).metrics_path for v in Variant}


def build_observability(settings: Settings, platform: Platform, namespace: ExperimentNamespace) -> dict[str, Any]:
    """The monitoring objects once the namespace exists; their stack output."""
    obs = settings.observability
    monitoring = AbMonitoring(
        "observability",
        AbMonitoringArgs(namespace=settings.namespace, stack=settings.stack, variants=variant_metrics(settings),
                         metrics_paths=metrics_paths(settings),
                         prometheus_namespace=obs.prometheus_namespace,
                         prometheus_pod_labels=obs.prometheus_pod_labels, pod_monitor_labels=obs.pod_monitor_labels,
                         scrape_interval=obs.scrape_interval, dashboard_namespace=obs.dashboard_namespace),
        opts=platform.opts(depends_on=[namespace]),
    )
    return {OUT.OBSERVABILITY: {"podMonitors": monitoring.pod_monitors, "dashboard": monitoring.dashboard,
                                "dashboardNamespace": obs.dashboard_namespace or settings.namespace}}
