"""k8s-namespace-default-deny: every namespace the stack creates denies ingress and egress by default."""

from __future__ import annotations

import copy
from typing import Any

import pulumi

from policy.network import denied_directions
from tests.policy.pack_runner import (
    POLICY_DIR,
    check,
    check_stack,
    load_pack_config,
    mandatory,
    resource,
    run_pack,
    run_stack_program,
    to_policy_resources,
)
from tests.samples import dev_config, staging_config

RULE = "k8s-namespace-default-deny"
NAMESPACE = "kubernetes:core/v1:Namespace"
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"


def namespace(name: str) -> Any:
    return resource(NAMESPACE, f"{name}-ns", {"metadata": {"name": name}})


def policy(ns: str, spec: dict[str, Any], name: str = "deny") -> Any:
    return resource(NETPOL, f"{ns}-{name}", {"metadata": {"namespace": ns}, "spec": spec})


BOTH = {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def test_a_namespace_denying_both_directions_passes() -> None:
    assert check_stack(RULE, [namespace("exp"), policy("exp", BOTH)]).violations == []


def test_two_policies_one_per_direction_pass_too() -> None:
    found = check_stack(RULE, [namespace("exp"), policy("exp", {"podSelector": {}, "policyTypes": ["Ingress"]}, "in"),
                               policy("exp", {"podSelector": {}, "policyTypes": ["Egress"]}, "out")])
    assert found.violations == []


def test_ingress_only_default_deny_fails_naming_the_missing_direction() -> None:
    found = check_stack(RULE, [namespace("exp"), policy("exp", {"podSelector": {}, "policyTypes": ["Ingress"]})])
    assert found.violations == [
        "namespace 'exp' has no default-deny egress: add a NetworkPolicy selecting every pod (podSelector {}) with "
        "policyTypes ['Egress'] and no rules, then allow what each workload needs"]
    assert found.urns == ["urn:pulumi:test::llm-ab::kubernetes:core/v1:Namespace::exp-ns"]


def test_a_namespace_without_policies_misses_both() -> None:
    (message,) = check_stack(RULE, [namespace("exp"), policy("other", BOTH)]).violations
    assert message.startswith("namespace 'exp' has no default-deny ingress or egress:")


def test_a_policy_that_allows_something_or_selects_some_pods_is_no_default_deny() -> None:
    allows_dns = {"podSelector": {}, "policyTypes": ["Egress"],
                  "egress": [{"ports": [{"protocol": "UDP", "port": 53}]}]}
    some_pods = {"podSelector": {"matchLabels": {"app": "x"}}, "policyTypes": ["Ingress", "Egress"]}
    found = check_stack(RULE, [namespace("exp"), policy("exp", allows_dns, "dns"), policy("exp", some_pods, "x")])
    assert len(found.violations) == 1
    assert denied_directions(allows_dns) == set() and denied_directions(some_pods) == set()
    # Without policyTypes Kubernetes takes Ingress (plus Egress only when egress rules are given).
    assert denied_directions({"podSelector": {}}) == {"Ingress"}
    assert denied_directions({"podSelector": {}, "ingress": [{}]}) == set()


def test_exempt_namespaces_and_stacks_without_namespaces_are_not_checked() -> None:
    assert check_stack(RULE, [namespace("dlf")], config={"exemptNamespaces": ["dlf"]}).violations == []
    assert check_stack(RULE, [policy("exp", BOTH)]).violations == []


# --- k8s-egress-excludes-internal --------------------------------------------------------------------

EGRESS_RULE = "k8s-egress-excludes-internal"
INTERNAL = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "100.64.0.0/10", "169.254.0.0/16"]


def https_to(cidr: str, excepted: list[str] | None) -> dict[str, Any]:
    block: dict[str, Any] = {"cidr": cidr, **({"except": excepted} if excepted is not None else {})}
    return {"metadata": {"namespace": "exp"},
            "spec": {"podSelector": {"matchLabels": {"llm-ab/https-egress": "true"}}, "policyTypes": ["Egress"],
                     "egress": [{"to": [{"ipBlock": block}], "ports": [{"protocol": "TCP", "port": 443}]}]}}


def test_https_to_the_internet_excepting_the_internal_blocks_passes() -> None:
    assert check(EGRESS_RULE, NETPOL, https_to("0.0.0.0/0", INTERNAL)).violations == []
    assert check(EGRESS_RULE, NETPOL, https_to("0.0.0.0/0", ["0.0.0.0/1", "128.0.0.0/1"])).violations == []
    assert check(EGRESS_RULE, NETPOL, https_to("203.0.113.0/24", None)).violations == []  # a public block


def test_https_to_anywhere_with_an_empty_except_fails_naming_every_internal_block() -> None:
    assert check(EGRESS_RULE, NETPOL, https_to("0.0.0.0/0", [])).violations == [
        "egress rule 0 allows ipBlock 0.0.0.0/0 without excepting 10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, "
        "100.64.0.0/10, 169.254.0.0/16: pods it selects could reach the cluster's own networks (the API server, "
        "nodes, the metadata service); list them in ipBlock.except (network.internalCidrs)"]


def test_a_block_inside_an_internal_network_or_a_partial_except_fails() -> None:
    (message,) = check(EGRESS_RULE, NETPOL, https_to("0.0.0.0/0", ["10.0.0.0/8"])).violations
    assert "without excepting 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, 169.254.0.0/16:" in message
    (message,) = check(EGRESS_RULE, NETPOL, https_to("169.0.0.0/8", None)).violations
    assert "allows ipBlock 169.0.0.0/8 without excepting 169.254.0.0/16:" in message


def test_the_internal_blocks_are_the_stacks_to_choose() -> None:
    narrow = {"internalCidrs": ["10.0.0.0/8"]}
    assert check(EGRESS_RULE, NETPOL, https_to("0.0.0.0/0", ["10.0.0.0/8"]), config=narrow).violations == []


def test_other_resources_are_not_checked() -> None:
    outcome = check(EGRESS_RULE, NAMESPACE, {"metadata": {"name": "exp"}})
    assert outcome.violations == [] and outcome.not_applicable


def open_https_egress(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    """What `network.internalCidrs: []` rendered before issue 22: 443 to every address."""
    if args.name != "experiment-https-egress":
        return None
    props = copy.copy(args.props)
    props["spec"] = copy.deepcopy(props["spec"])  # plain data (the metadata holds outputs)
    props["spec"]["egress"][0]["to"][0]["ipBlock"]["except"] = []
    return pulumi.ResourceTransformationResult(props, args.opts)


def test_the_dev_program_never_opens_https_to_the_cluster(pulumi_mocks, registrations) -> None:
    found = mandatory(run_with_pack(pulumi_mocks, registrations, "dev", dev_config()))
    assert [v for v in found if v[0] == EGRESS_RULE] == []


def test_an_open_https_egress_fails_the_pack(pulumi_mocks, registrations) -> None:
    pulumi.runtime.register_stack_transformation(open_https_egress)  # this test's runtime only
    found = [v for v in mandatory(run_with_pack(pulumi_mocks, registrations, "dev", dev_config()))
             if v[0] == EGRESS_RULE]
    assert [(rule, name) for rule, name, _ in found] == [(EGRESS_RULE, "experiment-https-egress")]


# --- the whole programs ----------------------------------------------------------------------------


def run_with_pack(mocks, captured, stack: str, config: dict[str, Any]) -> list[Any]:
    run_stack_program(config)
    return run_pack(to_policy_resources(mocks, captured), load_pack_config(POLICY_DIR / "config" / f"{stack}.json"))


def ingress_only_default_deny(args: pulumi.ResourceTransformationArgs) -> pulumi.ResourceTransformationResult | None:
    """What the program rendered before issue 11 item 10."""
    if args.name != "experiment-default-deny":
        return None
    props = copy.copy(args.props)
    props["spec"] = {"podSelector": {}, "policyTypes": ["Ingress"]}
    return pulumi.ResourceTransformationResult(props, args.opts)


def test_the_dev_program_passes(pulumi_mocks, registrations) -> None:
    assert [v for v in mandatory(run_with_pack(pulumi_mocks, registrations, "dev", dev_config())) if v[0] == RULE] == []


def test_the_old_ingress_only_namespace_fails(pulumi_mocks, registrations) -> None:
    pulumi.runtime.register_stack_transformation(ingress_only_default_deny)  # this test's runtime only
    found = [v for v in mandatory(run_with_pack(pulumi_mocks, registrations, "dev", dev_config())) if v[0] == RULE]
    assert found == [(RULE, "experiment-ns",
                      "namespace 'llm-ab-dev' has no default-deny egress: add a NetworkPolicy selecting every pod "
                      "(podSelector {}) with policyTypes ['Egress'] and no rules, then allow what each workload "
                      "needs")]


def test_staging_exempts_only_datashims_namespace(pulumi_mocks, registrations) -> None:
    found = run_with_pack(pulumi_mocks, registrations, "staging", staging_config())
    assert [v for v in mandatory(found) if v[0] == RULE] == []
    assert load_pack_config(POLICY_DIR / "config" / "staging.json")[RULE] == {"exemptNamespaces": ["dlf"]}
