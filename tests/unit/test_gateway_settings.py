"""split.mode gateway and autoscaling.*: what they parse to, and a clear error naming the key for each bad input."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stacks.config_types import ConfigError
from stacks.settings import Settings, Variant, parse_settings
from tests.samples import GATEWAY_URL, gateway_split, minimal

HPA = {"enabled": True, "minReplicas": 1, "maxReplicas": 4}


def config(split: dict[str, Any] | None = None, autoscaling: dict[str, Any] | None = None,
           **sections: Any) -> dict[str, Any]:
    raw = copy.deepcopy(minimal())
    if split is not None:
        raw["split"] = split
    if autoscaling is not None:
        raw["autoscaling"] = autoscaling
    raw.update(sections)
    return raw


def parsed(**kwargs: Any) -> Settings:
    return parse_settings(config(**kwargs))


def error(**kwargs: Any) -> str:
    with pytest.raises(ConfigError) as err:
        parse_settings(config(**kwargs))
    return str(err.value)


# What the Pulumi.yaml defaults fill in: the whole object. Every "was it set" check compares with these.
DEFAULTS = {"mode": "replicas", "canaryPercent": 50, "replicas": 2, "tolerance": 5, "stableReplicas": 1,
            "canaryReplicas": 1, "gateway": {"name": "", "namespace": "", "sectionName": "", "url": ""},
            "canaryHeader": "", "stableHeader": ""}


def test_replicas_mode_is_the_default_and_the_generated_defaults_parse() -> None:
    s = parsed(split=DEFAULTS)
    assert not s.split.gateway_mode and s.replicas(Variant.CANARY) == 1 and s.split.plan().total == 2


def test_gateway_mode_over_the_generated_defaults() -> None:
    s = parsed(split={**DEFAULTS, **gateway_split(canaryPercent=12.34)})
    assert s.split.gateway_mode
    assert (s.split.weights().stable, s.split.weights().canary) == (8766, 1234)
    assert s.split.weights().effective_percent == pytest.approx(12.34, abs=1e-9)
    assert s.split.headers() == {"stable": ("x-llm-ab-variant", "stable"), "canary": ("x-llm-ab-variant", "canary")}
    assert (s.replicas(Variant.STABLE), s.replicas(Variant.CANARY)) == (1, 1)
    assert s.split.gateway.namespace == "gateway-system" and s.split.gateway.url == GATEWAY_URL


def test_gateway_mode_replicas_are_independent_of_the_split() -> None:
    s = parsed(split=gateway_split(canaryPercent=1, stableReplicas=3, canaryReplicas=1))
    assert (s.replicas(Variant.STABLE), s.replicas(Variant.CANARY)) == (3, 1)
    assert s.max_total_replicas == 4


@pytest.mark.parametrize(("split", "expected"), [
    ({**gateway_split(), "gateway": {"name": "gw", "url": GATEWAY_URL}},
     "llm-ab:split.gateway.namespace is required in split.mode gateway: the namespace of the Gateway"),
    ({**gateway_split(), "gateway": {"name": "gw", "namespace": "llm-ab", "url": GATEWAY_URL}},
     "llm-ab:split.gateway.namespace must not be the experiment's namespace ('llm-ab'): it denies traffic both ways"),
    ({"mode": "gateway", "gateway": {"url": GATEWAY_URL}},
     "llm-ab:split.gateway.name is required in split.mode gateway: the name of the existing Gateway"),
    ({"mode": "gateway", "gateway": {"name": "gw"}}, "llm-ab:split.gateway.url is required in split.mode gateway"),
    ({**gateway_split(), "canaryPercent": 0.005},
     "llm-ab:split.canaryPercent cannot be a route weight: a 0.005% canary has no exact route weight: weights are "
     "out of 10000, so the canary percent must be a multiple of 0.01 (e.g. 0), got 0.005"),
    ({**gateway_split(), "canaryPercent": 33.333},
     "llm-ab:split.canaryPercent cannot be a route weight: a 33.333% canary has no exact route weight"),
    ({**gateway_split(), "replicas": 10},
     "llm-ab:split.replicas is the replicas-mode total; in split.mode gateway set split.stableReplicas and "
     "split.canaryReplicas instead, got 10"),
    ({**gateway_split(), "canaryReplicas": 0},
     "llm-ab:split.canaryReplicas must be at least 1 while the canary gets traffic (canaryPercent 10), got 0"),
    ({**gateway_split(), "canaryHeader": "x-llm-ab-variant canary"},
     "llm-ab:split.canaryHeader must be an HTTP header match written 'name: value'"),
    ({**gateway_split(), "stableHeader": "X-LLM-AB-Variant: canary"},
     "llm-ab:split.stableHeader must differ from split.canaryHeader, got 'X-LLM-AB-Variant: canary'"),
    ({**gateway_split(), "gateway": {"name": "Bad_Name", "namespace": "gw", "url": GATEWAY_URL}},
     "llm-ab:split.gateway.name must be a Gateway name (a DNS subdomain), got 'Bad_Name'"),
    ({**gateway_split(), "gateway": {"name": "gw", "namespace": "gw", "url": "gw:80"}},
     "llm-ab:split.gateway.url must be an http(s) URL"),
    ({"mode": "ingress"}, "llm-ab:split.mode must be one of replicas, gateway, got 'ingress'"),
    ({"canaryHeader": "x-llm-ab-variant: canary"},
     "llm-ab:split.canaryHeader applies to split.mode gateway only (a Service cannot route by header)"),
    ({"canaryReplicas": 3}, "llm-ab:split.canaryReplicas applies to split.mode gateway only"),
    ({"gateway": {"name": "gw"}}, "llm-ab:split.gateway applies to split.mode gateway only"),
])
def test_bad_split_input_names_the_key(split: dict[str, Any], expected: str) -> None:
    assert error(split=split).startswith(expected)


def test_a_fractional_percent_in_hundredths_is_exact() -> None:
    s = parsed(split=gateway_split(canaryPercent=0.01))
    assert (s.split.weights().stable, s.split.weights().canary) == (9999, 1)


# autoscaling


def test_autoscaling_is_off_by_default_and_gives_the_hpa_minimum_when_on() -> None:
    assert not parsed().autoscaling.enabled
    s = parsed(split=gateway_split(), autoscaling=HPA)
    assert s.autoscaling.metric == "cpu" and s.autoscaling.cpu_utilization == 70
    assert s.replicas(Variant.CANARY) == 1 and s.max_total_replicas == 8
    assert s.replicas_key == "autoscaling.maxReplicas (per variant, both variants)"


def test_a_pods_metric_needs_its_name_and_target() -> None:
    s = parsed(split=gateway_split(), autoscaling={**HPA, "metric": "pods", "metricName": "tgi_queue_size",
                                                   "averageValue": 4})
    assert (s.autoscaling.metric_name, s.autoscaling.average_value) == ("tgi_queue_size", "4")


QUEUE = {**HPA, "metric": "pods", "metricName": "tgi_queue_size", "averageValue": 4}


def vllm_canary(**sections: Any) -> dict[str, Any]:
    """A TGI stable and a vLLM canary (one GPU each, TGI 2.4 so the pair shares the OpenAI routes)."""
    raw = config(split=gateway_split(), serving={"gpusPerReplica": 1},
                 tgi={"image": "ghcr.io/huggingface/text-generation-inference:2.4.1"}, **sections)
    raw["models"]["canary"]["engine"] = "vllm"
    return raw


def test_each_engine_scales_on_the_metric_it_serves() -> None:
    a = parse_settings(vllm_canary(autoscaling={**QUEUE, "metricNameByEngine": {
        "vllm": "vllm:num_requests_waiting"}})).autoscaling
    assert (a.metric_name_for("tgi"), a.metric_name_for("vllm")) == ("tgi_queue_size", "vllm:num_requests_waiting")


@pytest.mark.parametrize(("autoscaling", "expected"), [
    (QUEUE, "llm-ab:autoscaling.metricName names a tgi metric, which the canary's engine vllm does not serve, so "
            "its HPA could never read it: set autoscaling.metricNameByEngine.vllm (e.g. vllm:num_requests_waiting, "
            "as your metrics adapter names it), got 'tgi_queue_size'"),
    ({**QUEUE, "metricName": "vllm:num_requests_waiting"},
     "llm-ab:autoscaling.metricName names a vllm metric, which the stable's engine tgi does not serve"),
    ({**QUEUE, "metricNameByEngine": {"vllm": "tgi_queue_size"}},
     "llm-ab:autoscaling.metricNameByEngine.vllm names a tgi metric"),
    ({**QUEUE, "metricNameByEngine": {"sglang": "sglang:num_queue_reqs"}},
     "llm-ab:autoscaling.metricNameByEngine.sglang must be one of tgi, vllm, got 'sglang'"),
    ({**HPA, "metricNameByEngine": {"vllm": "vllm:num_requests_waiting"}},
     "llm-ab:autoscaling.metricNameByEngine applies to metric pods or external only (metric is cpu)"),
])
def test_a_variant_cannot_scale_on_another_engines_metric(autoscaling: dict[str, Any], expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(vllm_canary(autoscaling=autoscaling))
    assert str(err.value).startswith(expected), str(err.value)


def test_a_metric_both_engines_serve_needs_no_per_engine_name() -> None:
    """A recording rule or an adapter's own name (no engine prefix) is for the stack to know."""
    a = parse_settings(vllm_canary(autoscaling={**QUEUE, "metricName": "llm_queue_depth"})).autoscaling
    assert a.metric_name_for("vllm") == a.metric_name_for("tgi") == "llm_queue_depth"


@pytest.mark.parametrize(("split", "autoscaling", "expected"), [
    (None, HPA, "llm-ab:autoscaling.enabled must be false in split.mode replicas: there the replica counts are "
                "the split, and an HPA would change them (and the split with them); set split.mode: gateway"),
    (gateway_split(), {**HPA, "minReplicas": 5},
     "llm-ab:autoscaling.minReplicas must be at most autoscaling.maxReplicas (4), got 5"),
    (gateway_split(), {**HPA, "minReplicas": 0}, "llm-ab:autoscaling.minReplicas must be a whole number from 1"),
    (gateway_split(), {**HPA, "metric": "pods", "averageValue": "4"},
     "llm-ab:autoscaling.metricName is required with metric pods: the metric's name"),
    (gateway_split(), {**HPA, "metric": "external", "metricName": "queue"},
     "llm-ab:autoscaling.averageValue is required with metric external"),
    (gateway_split(), {**HPA, "metricName": "tgi_queue_size"},
     "llm-ab:autoscaling.metricName applies to metric pods or external only (metric is cpu)"),
    (gateway_split(), {**HPA, "averageValue": "four"}, "llm-ab:autoscaling.averageValue must be a Kubernetes quantity"),
    (gateway_split(canaryReplicas=2), HPA,
     "llm-ab:split.canaryReplicas is set by the HPA while autoscaling.enabled"),
])
def test_bad_autoscaling_input_names_the_key(split: dict[str, Any] | None, autoscaling: dict[str, Any],
                                             expected: str) -> None:
    assert error(split=split, autoscaling=autoscaling).startswith(expected)


def test_autoscaling_defaults_as_generated_are_accepted_in_replicas_mode() -> None:
    generated = {"enabled": False, "minReplicas": 1, "maxReplicas": 2, "metric": "cpu", "cpuUtilization": 70,
                 "metricName": "", "averageValue": "", "scaleUpPeriodSeconds": 300,
                 "scaleDownStabilizationSeconds": 600}
    assert not parsed(split=DEFAULTS, autoscaling=generated).autoscaling.enabled


def test_eks_pools_must_hold_the_hpa_maximum() -> None:
    pools = {"nodePools": [{"name": "g5", "instanceTypes": ["g5.xlarge"], "desiredSize": 2, "maxSize": 3}]}
    message = error(platform="eks", split=gateway_split(), autoscaling={**HPA, "maxReplicas": 2},
                    serving={"gpusPerReplica": 1}, gpu=pools, storage={"kind": "minio"},
                    eks={"endpointPublicAccessCidrs": ["198.51.100.0/24"]})
    assert message == ("llm-ab:gpu.nodePools[0].maxSize gives room for 3 serving replica(s) (3 node(s) x 1 per node "
                       "at serving.gpusPerReplica 1), but autoscaling.maxReplicas (per variant, both variants) needs "
                       "4: set it to at least 4, got 3")
