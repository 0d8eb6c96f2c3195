"""Rules on the network: every namespace the stack creates denies all traffic in both directions unless
another policy allows it (the program's own policies then open what each workload needs), and egress to
"the internet" never includes the cluster's own networks."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping, Sequence
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    ResourceValidationArgs,
    StackValidationArgs,
)

from .contract import INTERNAL_CIDRS
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


# --------------------------------------------------------------------------------------------------
# k8s-egress-excludes-internal

EGRESS_INTERNAL_SCHEMA = PolicyConfigSchema(properties={
    "internalCidrs": {
        "type": "array", "items": {"type": "string"}, "default": list(INTERNAL_CIDRS),
        "description": "Blocks an egress ipBlock to the outside must list in `except` whenever its cidr contains "
                       "them (the cluster's pod, Service, node and VPC networks, the API server, link-local).",
    },
})


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _network(cidr: Any) -> Network | None:
    try:
        return ipaddress.ip_network(str(cidr), strict=False)
    except ValueError:
        return None


def _within(inner: Network, outer: Network) -> bool:
    return inner.version == outer.version and inner.subnet_of(outer)  # type: ignore[arg-type]


def egress_excludes_internal(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """An egress ipBlock whose cidr contains one of the internal blocks lists it (or a larger block) in
    ``except``: "HTTPS to the internet" never reaches the cluster, its API server or the metadata service."""
    if args.resource_type != NETWORK_POLICY:
        args.not_applicable("not a NetworkPolicy")
        return
    internal = [n for n in (_network(c) for c in config_of(args, EGRESS_INTERNAL_SCHEMA)["internalCidrs"])
                if n is not None]
    for i, rule in enumerate(get(args.props, "spec", "egress", default=[])):
        for peer in get(rule, "to", default=[]):
            block = _network(get(peer, "ipBlock", "cidr", default=None))
            if block is None:
                continue
            excepted = [n for n in (_network(e) for e in get(peer, "ipBlock", "except", default=[])) if n is not None]
            open_to = [str(n) for n in internal if _within(n, block) and not any(_within(n, e) for e in excepted)]
            if open_to:
                report_violation(f"egress rule {i} allows ipBlock {block} without excepting {', '.join(open_to)}: "
                                 "pods it selects could reach the cluster's own networks (the API server, nodes, "
                                 "the metadata service); list them in ipBlock.except (network.internalCidrs)", None)
