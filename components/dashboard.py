"""The Grafana dashboard that compares stable and canary, as JSON from a pure function.

Every panel draws one series per variant (or per variant and error kind), selected by the pod
label the PodMonitors copy onto every target (:data:`VARIANT_TARGET_LABEL`, the pods' ``type``)
and the experiment's namespace. The metric names come from the engine that serves the variant
(:data:`ENGINE_METRICS`): the seam for a second engine is one more :class:`EngineMetrics` entry
(vLLM's names are ``vllm:*``), and a mixed pair gets each variant's own names in the same panel.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from policy.contract import VARIANT_LABEL

VARIANT_TARGET_LABEL = VARIANT_LABEL
"""The label carrying the variant on every scraped series (PodMonitor ``podTargetLabels``)."""
RATE_WINDOW = "$__rate_interval"
SCHEMA_VERSION = 39
DATASOURCE = {"type": "prometheus", "uid": "${datasource}"}


@dataclass(frozen=True, kw_only=True)
class EngineMetrics:
    """The Prometheus names one engine exports for what the dashboard shows (and the autoscaling settings check
    a variant's metric against)."""

    engine: str
    prefixes: tuple[str, ...]
    """How its metric names start (an HPA metric with another engine's prefix is never served)."""
    requests: str
    """Counter of requests received."""
    failures: str
    """Counter of failed requests."""
    failure_label: str | None
    """Label of ``failures`` that names the kind of error, if any."""
    failure_matchers: str = ""
    """Extra label matchers of the failures query (``, reason="abort"``) when ``failures`` counts more."""
    e2e_seconds: str
    """Histogram of end-to-end request latency (seconds)."""
    ttft_seconds: str
    """Histogram closest to the time to first token (seconds)."""
    ttft_note: str
    """What the TTFT histogram measures exactly."""
    per_token_seconds: str
    """Histogram of the time per output token (seconds)."""
    generated_tokens: str
    """Histogram of generated tokens per request (its ``_sum`` rate is tokens/s)."""
    queue_size: str
    """Gauge of requests waiting."""

    def names(self) -> set[str]:
        """Every family name the dashboard's queries use."""
        return {self.requests, self.failures, self.e2e_seconds, self.ttft_seconds, self.per_token_seconds,
                self.generated_tokens, self.queue_size}


TGI_METRICS = EngineMetrics(
    engine="tgi",
    prefixes=("tgi_",),
    requests="tgi_request_count",
    failures="tgi_request_failure",
    failure_label="err",
    e2e_seconds="tgi_request_duration",
    ttft_seconds="tgi_request_queue_duration",
    ttft_note="TGI exports no first-token histogram: its queue wait is the part of the TTFT that load adds "
              "(the first token also waits for one prefill, tgi_batch_inference_duration{method=\"prefill\"})",
    per_token_seconds="tgi_request_mean_time_per_token_duration",
    generated_tokens="tgi_request_generated_tokens",
    queue_size="tgi_queue_size",
)
"""TGI's router metrics (the names of its docs' metrics reference; served on the HTTP port's /metrics)."""

VLLM_METRICS = EngineMetrics(
    engine="vllm",
    prefixes=("vllm:", "vllm_"),  # adapters that cannot serve a colon rename the series vllm_...
    requests="vllm:request_success_total",
    failures="vllm:request_success_total",
    failure_label=None,
    failure_matchers=', finished_reason="abort"',
    e2e_seconds="vllm:e2e_request_latency_seconds",
    ttft_seconds="vllm:time_to_first_token_seconds",
    ttft_note="vLLM's own time-to-first-token histogram",
    per_token_seconds="vllm:time_per_output_token_seconds",
    generated_tokens="vllm:request_generation_tokens",
    queue_size="vllm:num_requests_waiting",
)
"""vLLM's metrics (its docs' production metrics). It counts finished requests (by ``finished_reason``),
not received ones, and no failures: the errors panel shows the aborted ones."""

ENGINE_METRICS: Mapping[str, EngineMetrics] = {"tgi": TGI_METRICS, "vllm": VLLM_METRICS}
"""Metric names by engine (``models.<variant>.engine``)."""


def _selector(namespace: str, variant: str, extra: str = "") -> str:
    return f'{{namespace="{namespace}", {VARIANT_TARGET_LABEL}="{variant}"{extra}}}'


def _with(selector: str, matchers: str) -> str:
    """``selector`` with extra matchers (``, k="v"``) inside its braces."""
    return selector[:-1] + matchers + "}" if matchers else selector


def _target(expr: str, legend: str, ref: str) -> dict[str, Any]:
    return {"datasource": DATASOURCE, "expr": expr, "legendFormat": legend, "refId": ref, "range": True}


def _panel(pid: int, title: str, description: str, unit: str, targets: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "id": pid,
        "type": "timeseries",
        "title": title,
        "description": description,
        "datasource": DATASOURCE,
        "gridPos": {"h": 8, "w": 12, "x": 12 * ((pid - 1) % 2), "y": 8 * ((pid - 1) // 2)},
        "fieldConfig": {"defaults": {"unit": unit}, "overrides": []},
        "options": {"legend": {"displayMode": "table", "placement": "bottom", "calcs": ["mean", "max", "lastNotNull"]},
                    "tooltip": {"mode": "multi"}},
        "targets": targets,
    }


def _quantile(q: float, histogram: str, selector: str) -> str:
    return f"histogram_quantile({q}, sum by (le) (rate({histogram}_bucket{selector}[{RATE_WINDOW}])))"


def panels(namespace: str, variants: Mapping[str, EngineMetrics]) -> list[dict[str, Any]]:
    """The dashboard's panels: request rate, p50/p95 end-to-end latency, TTFT, time per token,
    tokens/s, queue size and errors, each with a series per variant."""
    def each(build: Any) -> list[dict[str, Any]]:
        queries = [query for variant, m in variants.items()
                   for query in build(variant, m, _selector(namespace, variant))]
        return [_target(expr, legend, chr(ord("A") + i)) for i, (expr, legend) in enumerate(queries)]

    def quantiles(attr: str) -> Any:
        return lambda v, m, s: [(_quantile(q, getattr(m, attr), s), f"{v} p{int(q * 100)}") for q in (0.5, 0.95)]

    ttft_notes = "; ".join(sorted({f"{m.engine}: {m.ttft_note}" for m in variants.values()}))
    specs: list[tuple[str, str, str, Any]] = [
        ("Request rate", "Requests received per second, per variant", "reqps",
         lambda v, m, s: [(f"sum(rate({m.requests}{s}[{RATE_WINDOW}]))", v)]),
        ("End-to-end latency p50 / p95", "Request duration quantiles from the engine's histogram", "s",
         quantiles("e2e_seconds")),
        ("Time to first token p50 / p95", ttft_notes, "s", quantiles("ttft_seconds")),
        ("Time per output token p50 / p95", "Mean time per generated token of each request", "s",
         quantiles("per_token_seconds")),
        ("Generated tokens per second", "Output tokens per second over all pods of the variant", "short",
         lambda v, m, s: [(f"sum(rate({m.generated_tokens}_sum{s}[{RATE_WINDOW}]))", v)]),
        ("Queue size", "Requests waiting for a batch, summed over the variant's pods", "short",
         lambda v, m, s: [(f"sum({m.queue_size}{s})", v)]),
        ("Errors per second", "Failed requests per second, by kind of error where the engine says "
         "(vLLM counts no failures: its aborted requests)", "reqps",
         lambda v, m, s: [(f"sum by ({m.failure_label}) (rate({m.failures}{_with(s, m.failure_matchers)}"
                           f"[{RATE_WINDOW}]))" if m.failure_label else
                           f"sum(rate({m.failures}{_with(s, m.failure_matchers)}[{RATE_WINDOW}]))",
                           f"{v} {{{{{m.failure_label}}}}}" if m.failure_label else v)]),
    ]
    return [_panel(pid, title, description, unit, each(build))
            for pid, (title, description, unit, build) in enumerate(specs, start=1)]


def dashboard(*, namespace: str, stack: str, variants: Mapping[str, EngineMetrics]) -> dict[str, Any]:
    """The whole dashboard model (Grafana's JSON), titled after the stack."""
    return {
        "uid": f"llm-ab-{stack}"[:40],
        "title": f"llm-ab {stack}: stable vs canary",
        "description": f"A/B comparison of the TGI variants in namespace {namespace} (generated by llm-ab)",
        "tags": ["llm-ab", "a/b", stack],
        "timezone": "browser",
        "schemaVersion": SCHEMA_VERSION,
        "editable": False,
        "refresh": "30s",
        "time": {"from": "now-1h", "to": "now"},
        "templating": {"list": [{"name": "datasource", "label": "Prometheus", "type": "datasource",
                                 "query": "prometheus", "current": {}, "hide": 0}]},
        "panels": panels(namespace, variants),
    }


def dashboard_json(*, namespace: str, stack: str, variants: Mapping[str, EngineMetrics]) -> str:
    """:func:`dashboard` as the text the ConfigMap holds (stable key order, so previews diff cleanly)."""
    return json.dumps(dashboard(namespace=namespace, stack=stack, variants=variants), indent=2, sort_keys=True)
