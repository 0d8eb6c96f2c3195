"""The split rules in gateway mode: an HTTPRoute over the variants' own Services, on hand-built resources."""

from __future__ import annotations

from typing import Any

from components.route import GatewayRef, route_spec
from components.split import route_weights
from tests.harness import RecordingMocks
from tests.policy.pack_runner import (
    POLICY_DIR,
    advisory,
    check_stack,
    load_pack_config,
    mandatory,
    resource,
    run_pack,
    run_stack_program,
    to_policy_resources,
    traffic_service,
    variant,
)
from tests.samples import dev_config, dev_gateway_config, gateway_split

HTTPROUTE = "kubernetes:gateway.networking.k8s.io/v1:HTTPRoute"
SERVICE = "kubernetes:core/v1:Service"
NS = "llm-ab-dev"


def variant_service(kind: str, selector: dict[str, str] | None = None, name: str | None = None) -> Any:
    return resource(SERVICE, f"tgi-{kind}-svc", {
        "metadata": {"name": name or f"text-generation-inference-{kind}", "namespace": NS},
        "spec": {"type": "ClusterIP",
                 "selector": selector if selector is not None else {"run": "text-generation-inference", "type": kind}},
    })


def route(spec: dict[str, Any] | None = None, *, percent: float = 10) -> Any:
    """The program's own route spec (components.route) unless ``spec`` is given."""
    return resource(HTTPROUTE, "traffic-route-httproute", {
        "apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
        "metadata": {"name": "text-generation-inference", "namespace": NS},
        "spec": spec if spec is not None else route_spec(
            GatewayRef(name="gw", namespace="gateway-system"), route_weights(percent),
            {"canary": ("x-llm-ab-variant", "canary")}),
    })


def gateway_stack(percent: float = 10, *, declared: str = "10", the_route: Any = None,
                  services: list[Any] | None = None) -> list[Any]:
    """Gateway mode as the program builds it: 1 + 1 replicas, their Services, the route; no traffic Service."""
    return [variant("stable", 1, declared=declared), variant("canary", 1, declared=declared),
            *(services if services is not None else [variant_service("stable"), variant_service("canary")]),
            the_route if the_route is not None else route(percent=percent)]


def weighted(stable: Any, canary: Any, **extra: Any) -> dict[str, Any]:
    return {"parentRefs": [{"name": "gw"}], "rules": [{"matches": [{"path": {"type": "PathPrefix", "value": "/"}}],
            "backendRefs": [{"name": "text-generation-inference-stable", "port": 8080, "weight": stable, **extra},
                            {"name": "text-generation-inference-canary", "port": 8080, "weight": canary}]}]}


# split-canary-share-cap


def test_the_cap_reads_the_weights_not_the_replicas() -> None:
    # 1 + 1 replicas would be a 50 % share; the route gives the canary 10 %.
    outcome = check_stack("split-canary-share-cap", gateway_stack(10), config={"maxCanaryPercent": 20})
    assert outcome.violations == [] and outcome.not_applicable is None


def test_a_canary_weight_above_the_cap_fails() -> None:
    stack = gateway_stack(25, declared="25")
    outcome = check_stack("split-canary-share-cap", stack, config={"maxCanaryPercent": 20})
    assert outcome.violations == [
        "the canary gets weight 2500 of 10000 on HTTPRoute 'text-generation-inference' (25%), above this stack's "
        "cap of 20%"]
    assert outcome.urns == [stack[-1].urn]


# split-selects-both-variants


def test_a_route_over_one_service_per_variant_passes_without_a_traffic_service() -> None:
    assert check_stack("split-selects-both-variants", gateway_stack()).violations == []


def test_a_backend_service_that_selects_both_variants_fails() -> None:
    both = variant_service("canary", selector={"run": "text-generation-inference"})
    outcome = check_stack("split-selects-both-variants",
                          gateway_stack(services=[variant_service("stable"), both]))
    assert outcome.violations == [
        "Service 'text-generation-inference-canary' (a backend of HTTPRoute 'text-generation-inference') selects "
        "the pods of canary and stable; each backend must select exactly one variant",
        "HTTPRoute 'text-generation-inference' has 0 backends selecting the canary pods in its weighted rule, not 1"]


def test_a_backend_without_its_service_fails() -> None:
    outcome = check_stack("split-selects-both-variants", gateway_stack(services=[variant_service("stable")]))
    assert outcome.violations == [
        "HTTPRoute 'text-generation-inference' sends traffic to Service 'text-generation-inference-canary', which "
        "is not a Service of this stack in the route's namespace",
        "HTTPRoute 'text-generation-inference' has 0 backends selecting the canary pods in its weighted rule, not 1"]


def test_a_route_without_a_weighted_rule_fails() -> None:
    only_header = {"rules": [{"matches": [{"headers": [{"name": "x", "value": "y"}]}],
                              "backendRefs": [{"name": "text-generation-inference-canary", "port": 8080}]}]}
    outcome = check_stack("split-selects-both-variants", gateway_stack(the_route=route(only_header)))
    assert outcome.violations == [
        "HTTPRoute 'text-generation-inference' has no rule without header matches to split the other requests"]


# split-within-tolerance


def test_the_programs_weights_give_exactly_the_declared_split() -> None:
    outcome = check_stack("split-within-tolerance", gateway_stack(12.34, declared="12.34"))
    assert outcome.violations == [] and outcome.not_applicable is None


def test_weights_that_disagree_with_the_declared_split_fail() -> None:
    stack = gateway_stack(declared="10", the_route=route(weighted(1, 1)))
    outcome = check_stack("split-within-tolerance", stack)
    assert outcome.violations == [
        "HTTPRoute 'text-generation-inference' weights give a 50% canary (1 of 2), 40 points from the declared "
        "10%, more than the tolerance of 5"]


# split-route-weights


def test_valid_weights_pass_and_the_rule_needs_a_route() -> None:
    assert check_stack("split-route-weights", gateway_stack()).violations == []
    replicas_mode = [variant("stable", 1), variant("canary", 1), traffic_service()]
    assert check_stack("split-route-weights", replicas_mode).not_applicable == "no traffic HTTPRoute"


def test_weights_summing_to_zero_fail() -> None:
    outcome = check_stack("split-route-weights", gateway_stack(the_route=route(weighted(0, 0))))
    assert outcome.violations == [
        "HTTPRoute 'text-generation-inference' weights sum to 0 (or it has no backends), so every request it takes "
        "fails"]


def test_weights_that_are_not_whole_numbers_in_range_fail() -> None:
    outcome = check_stack("split-route-weights", gateway_stack(the_route=route(weighted(2_000_000, 0.5))))
    assert outcome.violations == [
        "HTTPRoute 'text-generation-inference' gives backend 'text-generation-inference-stable' weight 2000000: "
        "weights are whole numbers from 0 to 1000000",
        "HTTPRoute 'text-generation-inference' gives backend 'text-generation-inference-canary' weight 0.5: "
        "weights are whole numbers from 0 to 1000000"]


# split-route-backends-in-namespace


def test_backends_in_the_experiments_namespace_pass() -> None:
    outcome = check_stack("split-route-backends-in-namespace", gateway_stack())
    assert outcome.violations == [] and outcome.not_applicable is None


def test_a_backend_in_another_namespace_or_of_another_kind_fails() -> None:
    spec = weighted(9000, 1000, namespace="team-b")
    spec["rules"].insert(0, {"matches": [{"headers": [{"name": "x", "value": "y"}]}],
                             "backendRefs": [{"group": "example.io", "kind": "Bucket", "name": "b"}]})
    outcome = check_stack("split-route-backends-in-namespace", gateway_stack(the_route=route(spec)))
    assert outcome.violations == [
        "HTTPRoute 'text-generation-inference' sends traffic to example.io/Bucket 'b'; only core Services of the "
        "experiment may be backends",
        "HTTPRoute 'text-generation-inference' sends traffic to Service 'text-generation-inference-stable' in "
        "namespace 'team-b', outside the experiment's namespace 'llm-ab-dev'"]


# the whole gateway-mode program under mocks


def test_the_policy_pack_passes_the_gateway_program(pulumi_mocks: RecordingMocks, registrations) -> None:
    run_stack_program(dev_gateway_config())
    found = run_pack(to_policy_resources(pulumi_mocks, registrations), load_pack_config(POLICY_DIR / "config"
                                                                                          / "dev.json"))
    assert mandatory(found) == [] and advisory(found) == []


def test_the_policy_pack_caps_the_gateway_programs_weight(pulumi_mocks: RecordingMocks, registrations) -> None:
    run_stack_program({**dev_config(), "llm-ab:split": gateway_split(canaryPercent=30)})
    found = run_pack(to_policy_resources(pulumi_mocks, registrations), {"split-canary-share-cap": {
        "maxCanaryPercent": 20}})
    assert mandatory(found) == [("split-canary-share-cap", "traffic-route-httproute",
                                 "the canary gets weight 3000 of 10000 on HTTPRoute 'text-generation-inference' "
                                 "(30%), above this stack's cap of 20%")]
