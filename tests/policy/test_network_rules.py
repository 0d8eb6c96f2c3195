"""k8s-namespace-default-deny: every namespace the stack creates denies ingress and egress by default."""

from __future__ import annotations

import copy
from typing import Any

import pulumi

from policy.network import denied_directions
from tests.policy.pack_runner import (
    POLICY_DIR,
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
