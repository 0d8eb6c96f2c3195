"""The ``autoscaling`` section of the settings schema: one HPA (``autoscaling/v2``) per variant.

Off by default. Only in ``split.mode: gateway`` (:func:`check_autoscaling`): in replicas mode the replica
counts *are* the split, and an HPA changing them would change it. The target is CPU utilisation (of the
containers' requests) or a Pods/External metric served by a metrics adapter (e.g. TGI's
``tgi_queue_size`` through prometheus-adapter). The behaviour defaults suit servers that take minutes to
start (README: Autoscaling).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated

from pydantic import Field, model_validator

from components.dashboard import ENGINE_METRICS
from stacks.config_types import (
    Bool,
    OneOf,
    OptionalQuantity,
    OptionalText,
    Section,
    StringMap,
    WholeNumber,
    problem,
    show,
)

METRIC_TYPES = ("cpu", "pods", "external")


class AutoscalingSettings(Section):
    """An HPA per variant (gateway mode only)."""

    enabled: Bool = False
    """One HPA per variant between minReplicas and maxReplicas (needs split.mode gateway)"""
    min_replicas: Annotated[int, WholeNumber(1, 1000)] = 1
    """Fewest replicas of each variant"""
    max_replicas: Annotated[int, WholeNumber(1, 1000)] = 2
    """Most replicas of each variant (the GPUs to budget for)"""
    metric: Annotated[str, OneOf(METRIC_TYPES)] = "cpu"
    """`cpu` (utilisation of the requests), `pods` (a per-pod metric, e.g. `tgi_queue_size`) or `external`"""
    cpu_utilization: Annotated[int, WholeNumber(1, 1000)] = 70
    """Target average CPU utilisation in percent of the CPU request (metric cpu)"""
    metric_name: OptionalText = None
    """Name of the Pods or External metric, as the metrics adapter serves it (metric pods or external)"""
    average_value: OptionalQuantity = None
    """Target average value per pod of that metric, e.g. `4` queued requests (metric pods or external)"""
    metric_name_by_engine: StringMap = Field(default_factory=dict)
    """Per engine (`tgi`, `vllm`), the metric its variants scale on instead of `metricName`: each engine names its
    queue its own way (`tgi_queue_size`, `vllm:num_requests_waiting`)"""
    scale_up_period_seconds: Annotated[int, WholeNumber(15, 1800)] = 300
    """Scale-up adds at most 1 replica (or 50 %, whichever is more) per this period"""
    scale_down_stabilization_seconds: Annotated[int, WholeNumber(0, 3600)] = 600
    """Scale-down acts on the highest recommendation of this window"""

    @model_validator(mode="after")
    def _consistent(self) -> AutoscalingSettings:
        if self.min_replicas > self.max_replicas:
            raise problem(f"must be at most autoscaling.maxReplicas ({self.max_replicas}), got {self.min_replicas}",
                          at="minReplicas")
        if self.metric == "cpu":
            for key, value in (("metricName", self.metric_name), ("averageValue", self.average_value),
                               ("metricNameByEngine", self.metric_name_by_engine or None)):
                if value is not None:
                    raise problem(f"applies to metric pods or external only (metric is cpu), got {show(value)}",
                                  at=key)
        else:
            for key, value, what in (("metricName", self.metric_name, "the metric's name, e.g. tgi_queue_size"),
                                     ("averageValue", self.average_value, "the target per pod, e.g. 4")):
                if value is None:
                    raise problem(f"is required with metric {self.metric}: {what}", at=key)
            for engine in self.metric_name_by_engine:
                if engine not in ENGINE_METRICS:
                    raise problem(f"must be one of {', '.join(ENGINE_METRICS)}, got {show(engine)}",
                                  at=f"metricNameByEngine.{engine}")
            if self.cpu_utilization != AutoscalingSettings.model_construct().cpu_utilization:
                raise problem(f"applies to metric cpu only (metric is {self.metric}), got {self.cpu_utilization}",
                              at="cpuUtilization")
        return self


    def metric_name_for(self, engine: str) -> str | None:
        """The Pods/External metric a variant of ``engine`` scales on (None for metric cpu)."""
        return self.metric_name_by_engine.get(engine, self.metric_name)


def check_autoscaling(autoscaling: AutoscalingSettings, *, gateway_mode: bool, stable_replicas: int,
                      canary_replicas: int, default_replicas: int, engines: Mapping[str, str]) -> None:
    """Rules between ``autoscaling``, ``split`` and the engines (``engines``: variant -> engine): an HPA needs
    gateway mode and owns the replica counts, and each variant scales on a metric its engine serves."""
    if not autoscaling.enabled:
        return
    for variant, engine in engines.items():
        name = autoscaling.metric_name_for(engine)
        foreign = [other for other, metrics in ENGINE_METRICS.items()
                   if other != engine and name is not None and name.startswith(metrics.prefixes)]
        if foreign:
            key = (f"autoscaling.metricNameByEngine.{engine}" if engine in autoscaling.metric_name_by_engine
                   else "autoscaling.metricName")
            queue = ENGINE_METRICS[engine].queue_size
            raise problem(f"names a {foreign[0]} metric, which the {variant}'s engine {engine} does not serve, so "
                          f"its HPA could never read it: set autoscaling.metricNameByEngine.{engine} (e.g. "
                          f"{queue}, as your metrics adapter names it), got {show(name)}", at=key)
    if not gateway_mode:
        raise problem("must be false in split.mode replicas: there the replica counts are the split, and an HPA "
                      "would change them (and the split with them); set split.mode: gateway (an HTTPRoute splits "
                      "by weight) to autoscale each variant, got true", at="autoscaling.enabled")
    for key, value in (("split.stableReplicas", stable_replicas), ("split.canaryReplicas", canary_replicas)):
        if value != default_replicas:
            raise problem(f"is set by the HPA while autoscaling.enabled (between autoscaling.minReplicas and "
                          f"autoscaling.maxReplicas); leave it at {default_replicas}, got {value}", at=key)
