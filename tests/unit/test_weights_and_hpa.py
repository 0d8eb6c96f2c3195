"""Gateway mode's pure logic: exact route weights, what a split costs in GPUs, the route's rules, the HPA spec."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.autoscaling import MetricTarget, hpa_behavior, hpa_metric, hpa_spec
from components.route import GatewayRef, route_rules, route_spec
from components.split import WEIGHT_TOTAL, RouteWeights, SplitError, route_weights, smallest_fitting_total, split_cost


@pytest.mark.parametrize(("percent", "stable", "canary"), [
    (0, 10000, 0), (100, 0, 10000), (10, 9000, 1000), (1, 9900, 100), (0.01, 9999, 1), (12.34, 8766, 1234),
    (99.99, 1, 9999), (0.29, 9971, 29), (57.7, 4230, 5770)])
def test_route_weights_are_exact_out_of_ten_thousand(percent: float, stable: int, canary: int) -> None:
    weights = route_weights(percent)
    assert (weights.stable, weights.canary) == (stable, canary)
    assert weights.effective_percent == pytest.approx(percent, abs=1e-12)


@given(hundredths=st.integers(min_value=0, max_value=10000))
def test_every_hundredth_of_a_percent_has_a_weight_that_gives_it_exactly(hundredths: int) -> None:
    percent = hundredths / 100
    weights = route_weights(percent)
    assert weights.stable + weights.canary == WEIGHT_TOTAL
    assert weights.canary == hundredths


@pytest.mark.parametrize("percent", [0.001, 0.005, 33.333, 12.345])
def test_a_percent_finer_than_the_weights_is_refused(percent: float) -> None:
    with pytest.raises(SplitError, match="must be a multiple of 0.01"):
        route_weights(percent)


def test_a_percent_outside_0_to_100_is_refused() -> None:
    with pytest.raises(SplitError, match="from 0 to 100"):
        route_weights(100.5)


def test_split_cost_compares_the_route_with_the_smallest_replica_split() -> None:
    cost = split_cost(1, 5, 1)
    # Replica mode: 1 canary of 17 is 5.88 %, the first ratio within 5 points of 1 %.
    assert (cost.replicas, cost.gpus) == (2, 2)
    assert (cost.replica_mode_replicas, cost.replica_mode_gpus) == (17, 17)
    assert cost.replica_mode_effective_percent == pytest.approx(100 / 17)
    assert cost.summary() == {"replicas": 2, "gpus": 2,
                              "replicaMode": {"replicas": 17, "gpus": 17, "effectiveCanaryPercent": 5.88}}


def test_split_cost_counts_the_configured_replicas_and_gpus_per_replica() -> None:
    cost = split_cost(10, 1, 4, stable_replicas=3, canary_replicas=1)
    assert (cost.replicas, cost.gpus) == (4, 16)
    assert cost.replica_mode_replicas == smallest_fitting_total(10, 1) == 10
    assert cost.replica_mode_gpus == 40


def test_split_cost_at_the_edges_needs_one_variant_only() -> None:
    assert split_cost(0, 5, 1).replicas == 1 and split_cost(100, 5, 1).replicas == 1
    assert split_cost(0.01, 0, 1).replica_mode_replicas is None  # no ratio up to 1000 replicas is exact


def test_header_rules_come_first_and_the_weighted_rule_takes_the_rest() -> None:
    rules = route_rules(RouteWeights(9000, 1000), {"canary": ("x-llm-ab-variant", "canary")})
    assert rules == [
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"},
                      "headers": [{"type": "Exact", "name": "x-llm-ab-variant", "value": "canary"}]}],
         "backendRefs": [{"group": "", "kind": "Service", "name": "text-generation-inference-canary", "port": 8080}]},
        {"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
         "backendRefs": [
             {"group": "", "kind": "Service", "name": "text-generation-inference-stable", "port": 8080, "weight": 9000},
             {"group": "", "kind": "Service", "name": "text-generation-inference-canary", "port": 8080,
              "weight": 1000}]},
    ]


def test_the_route_attaches_to_the_named_gateway_and_listener() -> None:
    spec = route_spec(GatewayRef(name="gw", namespace="infra", section_name="http"), RouteWeights(1, 1))
    assert spec["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw",
                                   "namespace": "infra", "sectionName": "http"}]
    assert route_spec(GatewayRef(name="gw"), RouteWeights(1, 1))["parentRefs"] == [
        {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": "gw"}]
    assert len(spec["rules"]) == 1


def test_hpa_targets_the_variant_deployment_by_name_with_slow_start_behaviour() -> None:
    spec = hpa_spec("canary", min_replicas=1, max_replicas=4, target=MetricTarget(kind="cpu", cpu_utilization=60),
                    scale_up_period_seconds=300, scale_down_stabilization_seconds=600)
    assert spec["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                      "name": "text-generation-inference-canary"}
    assert (spec["minReplicas"], spec["maxReplicas"]) == (1, 4)
    assert spec["metrics"] == [{"type": "Resource", "resource": {
        "name": "cpu", "target": {"type": "Utilization", "averageUtilization": 60}}}]
    up, down = spec["behavior"]["scaleUp"], spec["behavior"]["scaleDown"]
    assert up["policies"] == [{"type": "Pods", "value": 1, "periodSeconds": 300},
                              {"type": "Percent", "value": 50, "periodSeconds": 300}]
    assert up["selectPolicy"] == "Max" and up["stabilizationWindowSeconds"] == 60
    assert down == {"stabilizationWindowSeconds": 600, "selectPolicy": "Min",
                    "policies": [{"type": "Pods", "value": 1, "periodSeconds": 300}]}


def test_pods_and_external_metrics() -> None:
    pods = hpa_metric(MetricTarget(kind="pods", metric_name="tgi_queue_size", average_value="4"), "stable")
    assert pods == {"type": "Pods", "pods": {"metric": {"name": "tgi_queue_size"},
                                             "target": {"type": "AverageValue", "averageValue": "4"}}}
    external = hpa_metric(MetricTarget(kind="external", metric_name="queue", average_value="10"), "canary")
    assert external["external"]["metric"] == {
        "name": "queue", "selector": {"matchLabels": {"run": "text-generation-inference", "type": "canary"}}}


def test_hpa_spec_refuses_an_empty_range() -> None:
    with pytest.raises(ValueError, match="min_replicas <= max_replicas"):
        hpa_spec("stable", min_replicas=3, max_replicas=2, target=MetricTarget(kind="cpu"),
                 scale_up_period_seconds=300, scale_down_stabilization_seconds=600)
    with pytest.raises(ValueError, match="needs metric_name and average_value"):
        MetricTarget(kind="pods")
    assert hpa_behavior(120, 0)["scaleDown"]["stabilizationWindowSeconds"] == 0


def test_the_bench_table_is_the_programs_cost_at_the_default_tolerance() -> None:
    import subprocess
    import sys

    from tests.harness import ROOT

    out = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_split_cost.py")], capture_output=True,
                         text=True, check=True).stdout
    one_percent = next(line for line in out.splitlines() if line.strip().startswith("1%"))
    assert one_percent.split() == ["1%", "|", "17", "5.88%", "17", "|", "2", "9900/100", "1.00%", "2", "|", "8.5x"]
    assert "tolerance of 5 points" in out
