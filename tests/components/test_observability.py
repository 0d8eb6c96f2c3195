"""Observability: PodMonitors per variant, the scrape NetworkPolicy, the A/B Grafana dashboard.

The dashboard's queries are checked against a server that writes TGI's exposition (the analysis
tests' fake TGI, loaded with real requests): each query is evaluated over the scraped families the
way Prometheus would over one rate window, so a wrong metric name, type or suffix yields nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import re
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from analysis import metrics
from components.dashboard import (
    ENGINE_METRICS,
    TGI_METRICS,
    VARIANT_TARGET_LABEL,
    VLLM_METRICS,
    dashboard,
    dashboard_json,
)
from components.naming import TGI_PORT, tgi_selector
from components.observability import DASHBOARD_LABEL, pod_monitor_spec
from stacks import outputs as OUT
from tests.analysis.conftest import SMALL_ID
from tests.analysis.servers import start_tgi_stream
from tests.samples import dev_config

VARIANTS = {"stable": TGI_METRICS, "canary": TGI_METRICS}
SELECTOR = re.compile(r'\{namespace="(?P<ns>[^"]+)", ' + VARIANT_TARGET_LABEL + r'="(?P<variant>[^"]+)"'
                      r'(?P<extra>(, [a-z_]+="[^"]*")*)\}')
SHAPES = {  # the first that matches wins: a histogram's _sum before a plain counter
    "histogram_sum": re.compile(r"^sum\(rate\((?P<name>[a-z0-9_:]+)_sum(?P<sel>\{[^}]*\})\[\$__rate_interval\]\)\)$"),
    "counter": re.compile(r"^sum\(rate\((?P<name>[a-z0-9_:]+)(?P<sel>\{[^}]*\})\[\$__rate_interval\]\)\)$"),
    "counter_by": re.compile(
        r"^sum by \((?P<label>[a-z_]+)\) \(rate\((?P<name>[a-z0-9_:]+)(?P<sel>\{[^}]*\})\[\$__rate_interval\]\)\)$"),
    "quantile": re.compile(r"^histogram_quantile\((?P<q>0\.5|0\.95), sum by \(le\) \(rate\((?P<name>[a-z0-9_:]+)_bucket"
                           r"(?P<sel>\{[^}]*\})\[\$__rate_interval\]\)\)\)$"),
    "gauge": re.compile(r"^sum\((?P<name>[a-z0-9_:]+)(?P<sel>\{[^}]*\})\)$"),
}
FAMILY_TYPE = {"counter": "counter", "counter_by": "counter", "quantile": "histogram", "histogram_sum": "histogram",
               "gauge": "gauge"}


def evaluate(expr: str, before: metrics.Snapshot, after: metrics.Snapshot) -> Any:
    """One dashboard query over two scrapes of one pod: what Prometheus would plot for that window."""
    found = [(shape, m) for shape, pattern in SHAPES.items() if (m := pattern.match(expr))]
    assert found, f"not a query shape the dashboard uses: {expr}"
    shape, match = found[0]
    name = match["name"]
    if name not in after.families and name.endswith("_total"):
        name = name[: -len("_total")]  # a counter's family is named without its samples' _total
    family = after.families.get(name)
    assert family is not None, f"{expr}: the exposition has no family {name}"
    assert family.type == FAMILY_TYPE[shape], f"{expr}: {name} is a {family.type}, not a {FAMILY_TYPE[shape]}"
    selected = SELECTOR.fullmatch(match["sel"])
    assert selected, f"{expr}: not selected by namespace and variant"
    extra = [m.replace('"', "") for m in re.findall(r'[a-z_]+="[^"]*"', selected["extra"] or "")]
    delta = metrics.by_name(metrics.deltas(before, after))[name]
    if shape == "counter":
        if extra:
            return sum(v for k, v in delta.breakdown.items() if all(m in k.split(",") for m in extra))
        return delta.delta
    if shape == "counter_by":
        return {k.split("=", 1)[1]: v for k, v in delta.breakdown.items() if k.startswith(match["label"] + "=")}
    if shape == "quantile":
        return delta.p50 if match["q"] == "0.5" else delta.p95
    if shape == "histogram_sum":
        return delta.mean * delta.delta
    return after.gauge_values()[name]


def exprs(board: dict[str, Any]) -> list[tuple[str, str, str]]:
    return [(p["title"], t["expr"], t["legendFormat"]) for p in board["panels"] for t in p["targets"]]


def test_the_dashboard_is_json_with_a_series_per_variant_in_every_panel() -> None:
    text = dashboard_json(namespace="llm-ab-dev", stack="dev", variants=VARIANTS)
    board = json.loads(text)
    assert board["title"] == "llm-ab dev: stable vs canary" and board["uid"] == "llm-ab-dev"
    titles = [p["title"] for p in board["panels"]]
    assert titles == ["Request rate", "End-to-end latency p50 / p95", "Time to first token p50 / p95",
                      "Time per output token p50 / p95", "Generated tokens per second", "Queue size",
                      "Errors per second"]
    for panel in board["panels"]:
        selected = [SELECTOR.search(t["expr"]) for t in panel["targets"]]
        assert all(selected), panel["title"]
        assert {m["ns"] for m in selected} == {"llm-ab-dev"}
        assert {m["variant"] for m in selected} == {"stable", "canary"}, panel["title"]
        assert len({t["refId"] for t in panel["targets"]}) == len(panel["targets"])
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
    assert [v["name"] for v in board["templating"]["list"]] == ["datasource"]
    # stable key order: a preview shows a real change, not a reshuffle
    assert text == dashboard_json(namespace="llm-ab-dev", stack="dev", variants=dict(VARIANTS))


@pytest.fixture
def tgi_server() -> Iterator[Any]:
    stops: list[Callable[[], None]] = []
    yield start_tgi_stream(SMALL_ID, stops, ttft_s=0.02, token_s=0.002, error_rate=0.2, error_mode="http_500", seed=3)
    for stop in stops:
        stop()


def test_every_query_reads_real_numbers_from_tgi_metrics(tgi_server: Any) -> None:
    server = tgi_server
    with httpx.Client(trust_env=False, timeout=10) as client:
        before = metrics.parse(client.get(f"{server.url}/metrics").text)
        for i in range(30):
            client.post(f"{server.url}/generate_stream",
                        json={"inputs": f"prompt {i}", "parameters": {"max_new_tokens": 6, "details": True}})
        after = metrics.parse(client.get(f"{server.url}/metrics").text)
    board = dashboard(namespace="llm-ab-dev", stack="dev", variants=VARIANTS)
    values = {(title, legend): evaluate(expr, before, after) for title, expr, legend in exprs(board)}
    failed = server.behaviour.injected["http_500"]
    assert 0 < failed < 30
    assert values[("Request rate", "stable")] == 30
    assert values[("Errors per second", "stable {{err}}")] == {"generation": failed}
    assert values[("Generated tokens per second", "canary")] == pytest.approx(6 * (30 - failed))
    e2e_p50 = values[("End-to-end latency p50 / p95", "stable p50")]
    assert 0.02 <= e2e_p50 <= values[("End-to-end latency p50 / p95", "stable p95")] <= 1.0
    assert 0 < values[("Time to first token p50 / p95", "canary p50")] < e2e_p50
    assert values[("Time per output token p50 / p95", "stable p95")] is not None
    assert values[("Queue size", "canary")] == 0


def vllm_scrapes() -> tuple[metrics.Snapshot, metrics.Snapshot]:
    """Two scrapes of a registry holding vLLM's families as its production-metrics docs define them
    (prometheus_client, as vLLM itself uses), 20 requests apart, 3 of them aborted."""
    from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

    registry = CollectorRegistry()
    labels = ["model_name"]
    success = Counter("vllm:request_success", "finished", [*labels, "finished_reason"], registry=registry)
    Gauge("vllm:num_requests_waiting", "waiting", labels, registry=registry).labels("m").set(2)
    histograms = {name: Histogram(name, name, labels, registry=registry, buckets=buckets) for name, buckets in (
        ("vllm:e2e_request_latency_seconds", (0.1, 0.5, 1.0, 5.0)),
        ("vllm:time_to_first_token_seconds", (0.01, 0.05, 0.1, 0.5)),
        ("vllm:time_per_output_token_seconds", (0.01, 0.025, 0.05, 0.1)),
        ("vllm:request_generation_tokens", (1, 8, 32, 128)))}
    before = metrics.parse(generate_latest(registry).decode())
    for i in range(20):
        success.labels("m", "abort" if i < 3 else "stop").inc()
        for name, value in (("vllm:e2e_request_latency_seconds", 0.4), ("vllm:time_to_first_token_seconds", 0.04),
                            ("vllm:time_per_output_token_seconds", 0.02), ("vllm:request_generation_tokens", 16)):
            histograms[name].labels("m").observe(value)
    return before, metrics.parse(generate_latest(registry).decode())


def test_a_vllm_variant_reads_vllms_own_metrics() -> None:
    before, after = vllm_scrapes()
    board = dashboard(namespace="ns", stack="dev", variants={"stable": TGI_METRICS, "canary": VLLM_METRICS})
    values = {(title, legend): evaluate(expr, before, after) for title, expr, legend in exprs(board)
              if 'type="canary"' in expr}
    assert values[("Request rate", "canary")] == 20
    assert values[("Errors per second", "canary")] == 3  # aborted: vLLM counts no failures
    assert 0.1 <= values[("End-to-end latency p50 / p95", "canary p50")] <= 0.5
    assert 0.01 <= values[("Time to first token p50 / p95", "canary p95")] <= 0.05
    assert values[("Time per output token p50 / p95", "canary p50")] is not None
    assert values[("Generated tokens per second", "canary")] == 20 * 16
    assert values[("Queue size", "canary")] == 2
    assert ENGINE_METRICS["vllm"] is VLLM_METRICS


def test_the_dashboard_names_only_the_engines_metrics() -> None:
    board = dashboard(namespace="ns", stack="dev", variants=VARIANTS)
    used = {re.sub(r"_(bucket|sum)$", "", m) for _, e, _ in exprs(board) for m in re.findall(r"([a-z0-9_:]+)\{", e)}
    assert used == TGI_METRICS.names()
    assert ENGINE_METRICS["tgi"] is TGI_METRICS


def test_a_mixed_pair_queries_each_variant_with_its_engines_names() -> None:
    other = dataclasses.replace(TGI_METRICS, engine="other", requests="other:requests_total")
    board = dashboard(namespace="ns", stack="dev", variants={"stable": TGI_METRICS, "canary": other})
    rate = next(p for p in board["panels"] if p["title"] == "Request rate")
    assert [t["expr"] for t in rate["targets"]] == [
        'sum(rate(tgi_request_count{namespace="ns", type="stable"}[$__rate_interval]))',
        'sum(rate(other:requests_total{namespace="ns", type="canary"}[$__rate_interval]))']


def test_a_pod_monitor_selects_one_variant_and_labels_its_series() -> None:
    spec = pod_monitor_spec("canary", "llm-ab-dev", "30s")
    assert spec["selector"] == {"matchLabels": tgi_selector("canary")}
    assert spec["namespaceSelector"] == {"matchNames": ["llm-ab-dev"]}
    assert VARIANT_TARGET_LABEL in spec["podTargetLabels"]
    assert spec["podMetricsEndpoints"] == [{"port": "http", "path": "/metrics", "interval": "30s", "scheme": "http"}]


def with_observability(**obs: Any) -> dict[str, Any]:
    config = copy.deepcopy(dev_config())
    config["llm-ab:observability"] = {"prometheus": True, **obs}
    return config


def test_dev_adds_no_monitoring(run_main, pulumi_mocks) -> None:
    outputs = run_main(dev_config())
    assert not pulumi_mocks.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")
    assert OUT.OBSERVABILITY not in outputs


def test_prometheus_adds_pod_monitors_the_scrape_policy_and_the_dashboard(run_main, pulumi_mocks, resolve) -> None:
    outputs = run_main(with_observability(prometheusNamespace="obs", podMonitorLabels={"release": "kps"},
                                          dashboardNamespace="grafana"))
    monitors = {r.inputs["metadata"]["name"]: r.inputs
                for r in pulumi_mocks.of_type("kubernetes:monitoring.coreos.com/v1:PodMonitor")}
    assert set(monitors) == {"text-generation-inference-stable", "text-generation-inference-canary"}
    stable = monitors["text-generation-inference-stable"]
    assert stable["metadata"]["namespace"] == "llm-ab-dev" and stable["metadata"]["labels"]["release"] == "kps"
    assert stable["spec"] == pod_monitor_spec("stable", "llm-ab-dev", "15s")
    policy = pulumi_mocks.named("observability-scrape").inputs["spec"]
    assert policy["podSelector"] == {"matchLabels": {"run": "text-generation-inference"}}
    peer = {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "obs"}},
            "podSelector": {"matchLabels": {"app.kubernetes.io/name": "prometheus"}}}
    assert policy["ingress"] == [{"from": [peer], "ports": [{"protocol": "TCP", "port": TGI_PORT}]}]
    cm = pulumi_mocks.named("observability-dashboard").inputs
    assert cm["metadata"]["namespace"] == "grafana"
    assert DASHBOARD_LABEL.items() <= cm["metadata"]["labels"].items()
    (board,) = cm["data"].values()
    assert json.loads(board)["panels"][0]["targets"][0]["expr"].count('namespace="llm-ab-dev"') == 1
    out = resolve(outputs[OUT.OBSERVABILITY])
    assert out["podMonitors"] == ["text-generation-inference-stable", "text-generation-inference-canary"]
    assert out["dashboardNamespace"] == "grafana"


def test_empty_prometheus_pod_labels_let_the_whole_namespace_scrape(run_main, pulumi_mocks) -> None:
    run_main(with_observability(prometheusPodLabels={}))
    (peer,) = pulumi_mocks.named("observability-scrape").inputs["spec"]["ingress"][0]["from"]
    assert peer == {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "monitoring"}}}
