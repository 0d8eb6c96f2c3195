"""The whole program in gateway mode under mocks: the HTTPRoute instead of the shared Service, per-variant
replicas or HPAs, the outputs a preview shows, the smoke gate through the Gateway, and the policy pack."""

from __future__ import annotations

from typing import Any

import pulumi
import pytest

from tests.samples import GATEWAY_URL, dev_config, dev_gateway_config, gateway_split

HTTPROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
SERVICE = "kubernetes:core/v1:Service"


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_gateway_mode_routes_by_weight_over_the_variants_own_services(run_main, pulumi_mocks, resolve) -> None:
    exported = run_main(dev_gateway_config())
    (route,) = pulumi_mocks.of_type(HTTPROUTE)
    assert route.inputs["metadata"] == {"name": "text-generation-inference", "namespace": "llm-ab-dev",
                                        "labels": route.inputs["metadata"]["labels"]}
    weighted = route.inputs["spec"]["rules"][-1]["backendRefs"]
    assert [(b["name"], b["weight"]) for b in weighted] == [("text-generation-inference-stable", 9000),
                                                            ("text-generation-inference-canary", 1000)]
    assert route.inputs["spec"]["parentRefs"] == [{"group": "gateway.networking.k8s.io", "kind": "Gateway",
                                                   "name": "llm-gw", "namespace": "gateway-system"}]
    # no Service over both variants: it would split by replicas beside the route
    assert sorted(s.inputs["metadata"]["name"] for s in pulumi_mocks.of_type(SERVICE)
                  if s.inputs["metadata"]["name"].startswith("text-generation")) == [
        "text-generation-inference-canary", "text-generation-inference-stable"]
    assert pulumi_mocks.depends_on("traffic-route-httproute") >= {"tgi-stable", "tgi-canary"}
    assert resolve(exported["trafficUrl"]) == GATEWAY_URL


def test_the_gateways_namespace_may_reach_tgi(run_main, pulumi_mocks) -> None:
    run_main(dev_gateway_config())
    (rule,) = pulumi_mocks.named("traffic-netpol").inputs["spec"]["ingress"]
    assert {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "gateway-system"}}} in rule["from"]


def test_preview_shows_declared_equals_effective_and_the_gpus_next_to_replica_mode(run_main, resolve) -> None:
    config = {**dev_config(), "llm-ab:split": gateway_split(canaryPercent=1, stableReplicas=2),
              "llm-ab:serving": {**dev_config()["llm-ab:serving"], "gpusPerReplica": 1}}
    exported = run_main(config)
    split = resolve(exported["split"])
    assert split["declaredCanaryPercent"] == split["effectiveCanaryPercent"] == 1
    assert split["weights"] == {"stable": 9900, "canary": 100}
    assert (split["stableReplicas"], split["canaryReplicas"]) == (2, 1)
    assert split["cost"] == {"replicas": 3, "gpus": 3,
                             "replicaMode": {"replicas": 17, "gpus": 17, "effectiveCanaryPercent": 5.88}}
    assert exported["replicas"] == {"stable": 2, "canary": 1} and exported["gpus"] == {"stable": 2, "canary": 1}


def test_fixed_replicas_per_variant_without_autoscaling(run_main, pulumi_mocks) -> None:
    run_main({**dev_config(), "llm-ab:split": gateway_split(stableReplicas=3, canaryReplicas=1)})
    replicas = {d.inputs["metadata"]["name"]: d.inputs["spec"]["replicas"]
                for d in pulumi_mocks.of_type("kubernetes:apps/v1:Deployment")
                if d.inputs["metadata"].get("name", "").startswith("text-generation")}
    assert replicas == {"text-generation-inference-stable": 3, "text-generation-inference-canary": 1}
    assert pulumi_mocks.of_type(HPA) == []


def test_autoscaling_adds_an_hpa_per_variant_and_leaves_replicas_to_it(run_main, pulumi_mocks, resolve) -> None:
    exported = run_main(dev_gateway_config())
    hpas = {h.inputs["spec"]["scaleTargetRef"]["name"]: h.inputs["spec"] for h in pulumi_mocks.of_type(HPA)}
    assert set(hpas) == {"text-generation-inference-stable", "text-generation-inference-canary"}
    assert all((s["minReplicas"], s["maxReplicas"]) == (1, 3) for s in hpas.values())
    assert hpas["text-generation-inference-canary"]["metrics"][0]["pods"]["metric"] == {"name": "tgi_queue_size"}
    for deploy in ("tgi-stable-deploy", "tgi-canary-deploy"):
        assert "replicas" not in pulumi_mocks.named(deploy).inputs["spec"], deploy
    assert resolve(exported["autoscaling"])["canary"] == {
        "minReplicas": 1, "maxReplicas": 3, "target": "pods metric tgi_queue_size averaging 4 per pod"}


def test_a_vllm_canary_scales_on_vllms_queue_and_the_tgi_stable_on_tgis(run_main, pulumi_mocks, resolve) -> None:
    config = dev_gateway_config()
    config["llm-ab:models"] = {**config["llm-ab:models"], "canary": {**config["llm-ab:models"]["canary"],
                                                                     "engine": "vllm"}}
    config["llm-ab:serving"] = {**config["llm-ab:serving"], "gpusPerReplica": 1}
    config["llm-ab:tgi"] = {**config["llm-ab:tgi"], "image": "ghcr.io/huggingface/text-generation-inference:2.4.1"}
    config["llm-ab:autoscaling"] = {**config["llm-ab:autoscaling"],
                                    "metricNameByEngine": {"vllm": "vllm:num_requests_waiting"}}
    exported = run_main(config)
    hpas = {h.inputs["spec"]["scaleTargetRef"]["name"]: h.inputs["spec"]["metrics"][0]["pods"]["metric"]["name"]
            for h in pulumi_mocks.of_type(HPA)}
    assert hpas == {"text-generation-inference-stable": "tgi_queue_size",
                    "text-generation-inference-canary": "vllm:num_requests_waiting"}
    assert resolve(exported["autoscaling"])["canary"]["target"] == (
        "pods metric vllm:num_requests_waiting averaging 4 per pod")


def test_smoke_gate_checks_each_variant_through_the_gateway_with_its_header(run_main, pulumi_mocks) -> None:
    run_main(dev_gateway_config())
    (job,) = [r for r in pulumi_mocks.of_type("kubernetes:batch/v1:Job") if r.name == "smoke-job"]
    args = job.inputs["spec"]["template"]["spec"]["containers"][0]["args"]
    assert flag(args, "--tgi-url") == GATEWAY_URL
    assert flag(args, "--canary-percent") == "10"  # the declared share: exact with weights
    assert flag(args, "--canary-url") == GATEWAY_URL and flag(args, "--canary-header") == "x-llm-ab-variant: canary"
    assert flag(args, "--stable-url") == GATEWAY_URL and flag(args, "--stable-header") == "x-llm-ab-variant: stable"


def test_without_headers_the_smoke_gate_checks_variants_on_their_own_services(run_main, pulumi_mocks) -> None:
    split = {k: v for k, v in gateway_split(canaryPercent=12.5).items() if not k.endswith("Header")}
    run_main({**dev_config(), "llm-ab:split": split})
    (job,) = [r for r in pulumi_mocks.of_type("kubernetes:batch/v1:Job") if r.name == "smoke-job"]
    args = job.inputs["spec"]["template"]["spec"]["containers"][0]["args"]
    assert flag(args, "--canary-percent") == "12.5"
    assert flag(args, "--canary-url") == "http://text-generation-inference-canary.llm-ab-dev.svc.cluster.local:8080"
    assert "--canary-header" not in args


@pytest.mark.parametrize(("key", "value", "message"), [
    ("llm-ab:split", {"mode": "gateway", "canaryPercent": 10},
     "llm-ab:split.gateway.name is required in split.mode gateway"),
    ("llm-ab:split", gateway_split(canaryPercent=0.125),
     "llm-ab:split.canaryPercent cannot be a route weight: a 0.125% canary has no exact route weight"),
    ("llm-ab:autoscaling", {"enabled": True},
     "llm-ab:autoscaling.enabled must be false in split.mode replicas"),
    ("llm-ab:autoscaling", {"enabled": True, "minReplicas": 3, "maxReplicas": 2},
     "llm-ab:autoscaling.minReplicas must be at most autoscaling.maxReplicas (2), got 3"),
])
def test_bad_gateway_or_hpa_config_fails_before_anything_is_registered(run_main, pulumi_mocks, key: str,
                                                                       value: Any, message: str) -> None:
    config = {**dev_config(), key: value}
    with pytest.raises(pulumi.RunError) as err:
        run_main(config)
    assert message in str(err.value)
    assert pulumi_mocks.resources == [], [r.name for r in pulumi_mocks.resources]


def test_the_analysis_traffic_phase_goes_through_the_gateway() -> None:
    from stacks.gates import analysis_plan
    from stacks.settings import parse_settings
    from tests.samples import minimal

    raw = {**minimal(), "split": gateway_split(), "analysis": {"includeTraffic": True}}
    assert analysis_plan(parse_settings(raw)).traffic_url == GATEWAY_URL
    replicas_mode = {**minimal(), "analysis": {"includeTraffic": True}}
    assert analysis_plan(parse_settings(replicas_mode)).traffic_url == (
        "http://text-generation-inference.llm-ab.svc.cluster.local:8080")


def test_a_rollback_in_gateway_mode_sets_the_canary_weight_to_0_and_keeps_its_pods(run_main, pulumi_mocks) -> None:
    from stacks.promote import apply, validate

    config = dev_gateway_config(autoscaling=False)
    changes, _ = apply(config, "rollback", "tgi")
    assert [(c.key, c.after) for c in changes] == [("llm-ab:split.canaryPercent", 0)]
    validate(config, "dev")
    run_main(config)
    (route,) = pulumi_mocks.of_type(HTTPROUTE)
    assert [b["weight"] for b in route.inputs["spec"]["rules"][-1]["backendRefs"]] == [10000, 0]
    assert pulumi_mocks.named("tgi-canary-deploy").inputs["spec"]["replicas"] == 1
