"""Rules on the network: every namespace the stack creates denies all traffic in both directions unless
another policy allows it (the program's own policies then open what each workload needs)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import PolicyConfigSchema, PolicyResource, ReportViolation, StackValidationArgs

from .props import config_of, get

NAMESPACE = "kubernetes:core/v1:Namespace"
NETWORK_POLICY = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
DIRECTIONS = {"Ingress": "ingress", "Egress": "egress"}

DEFAULT_DENY_SCHEMA = PolicyConfigSchema(properties={
    "exemptNamespaces": {
        "type": "array", "items": {"type": "string"}, "default": [],
        "description": "Namespaces the stack creates for third-party add-ons that bring their own network rules "
                       "(e.g. Datashim's dlf).",
    },
})


def _selects_every_pod(spec: Mapping[str, Any]) -> bool:
    selector = get(spec, "podSelector", default={})
    return not get(selector, "matchLabels", default={}) and not get(selector, "matchExpressions", default=[])


def denied_directions(spec: Mapping[str, Any]) -> set[str]:
    """The directions in which a NetworkPolicy spec denies everything for every pod of its namespace:
    it selects all pods, names the direction in ``policyTypes`` and allows nothing in it."""
    if not _selects_every_pod(spec):
        return set()
    types = get(spec, "policyTypes", default=None)
    if types is None:  # Kubernetes' default: Ingress, plus Egress when egress rules are given
        types = ["Ingress", *(["Egress"] if get(spec, "egress") is not None else [])]
    return {d for d in types if d in DIRECTIONS and not get(spec, DIRECTIONS[d], default=[])}


def _namespace_of(r: PolicyResource) -> str:
    return str(get(r.props, "metadata", "namespace", default="default"))


def namespace_default_deny(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Each Namespace the stack creates has default-deny NetworkPolicies for ingress and egress.

    Values unknown in a preview (a policy's namespace from a Namespace being created) raise, and the
    SDK reports the rule as not run during that preview; it runs on ``up``.
    """
    cfg = config_of(args, DEFAULT_DENY_SCHEMA)
    namespaces: Sequence[PolicyResource] = [r for r in args.resources if r.resource_type == NAMESPACE]
    if not namespaces:
        return
    denied: dict[str, set[str]] = {}
    for r in args.resources:
        if r.resource_type == NETWORK_POLICY:
            denied.setdefault(_namespace_of(r), set()).update(denied_directions(get(r.props, "spec", default={})))
    for ns in namespaces:
        name = str(get(ns.props, "metadata", "name", default=ns.name))
        if name in cfg["exemptNamespaces"]:
            continue
        missing = [d for d in DIRECTIONS if d not in denied.get(name, set())]
        if missing:
            report_violation(
                f"namespace '{name}' has no default-deny {' or '.join(d.lower() for d in missing)}: add a "
                f"NetworkPolicy selecting every pod (podSelector {{}}) with policyTypes {missing} and no rules, "
                f"then allow what each workload needs", ns.urn)
