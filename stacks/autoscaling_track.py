"""Autoscaling per variant (``autoscaling.enabled``, gateway mode only): an HPA for each TGI Deployment."""

from __future__ import annotations

from typing import Any

from components.autoscaling import MetricTarget, VariantAutoscaler, VariantAutoscalerArgs
from stacks import outputs as OUT
from stacks.experiment import Experiment
from stacks.platform import Platform
from stacks.settings import Settings, Variant


def metric_target(settings: Settings, variant: Variant) -> MetricTarget:
    """What ``variant``'s HPA holds at its target: the metric its engine serves."""
    a = settings.autoscaling
    return MetricTarget(kind=a.metric, cpu_utilization=a.cpu_utilization,
                        metric_name=a.metric_name_for(settings.model(variant).engine), average_value=a.average_value)


def build_autoscaling(settings: Settings, platform: Platform, experiment: Experiment) -> dict[str, Any]:
    """One HPA per variant when enabled; the ``autoscaling`` output (the GPUs at the most replicas too)."""
    a = settings.autoscaling
    if not a.enabled:
        return {}
    scalers = {
        variant: VariantAutoscaler(
            f"hpa-{variant.value}",
            VariantAutoscalerArgs(
                namespace=experiment.namespace.name, stack=settings.stack, variant=variant.value,
                min_replicas=a.min_replicas, max_replicas=a.max_replicas, target=metric_target(settings, variant),
                scale_up_period_seconds=a.scale_up_period_seconds,
                scale_down_stabilization_seconds=a.scale_down_stabilization_seconds,
                deployment=experiment.servers[variant]),
            opts=platform.opts(),
        )
        for variant in Variant
    }
    return {OUT.AUTOSCALING: {
        **{v.value: s.summary for v, s in scalers.items()},
        "maxGpus": {v.value: a.max_replicas * settings.serving.gpus_per_replica for v in Variant},
    }}
