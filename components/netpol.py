"""NetworkPolicy specs (pure; creates no resources): the namespace denies every connection in and out,
and each component opens what its own pods need with these builders.

Facts this relies on: policies are additive (a pod selected by several may do what any allows); an
egress rule to a Service matches the pods behind it (policies see pod IPs after the Service's
translation, so the rule names the pods and their target port); ``ipBlock`` is meant for addresses
outside the cluster (pod IPs are not reliably matched by it, so in-cluster peers are pod and namespace
selectors); the namespace label ``kubernetes.io/metadata.name`` is set by the API server on every
namespace (Kubernetes 1.21+). What a policy cannot express: host names (a Hub or PyPI address is
only "HTTPS to the internet"), and traffic of host-network pods (they count as their node).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from policy.contract import INTERNAL_CIDRS

DNS_NAMESPACE = "kube-system"
DNS_POD_LABELS = {"k8s-app": "kube-dns"}
"""CoreDNS (and kube-dns) pods: the label both kubeadm's and EKS's CoreDNS carry."""
DNS_PORT = 53
HTTPS_PORT = 443
ANYWHERE = "0.0.0.0/0"
DEFAULT_INTERNAL_CIDRS = INTERNAL_CIDRS
"""Never "the internet" (:data:`policy.contract.INTERNAL_CIDRS`, which the policy pack checks against)."""

Spec = dict[str, Any]


def namespace_peer(namespace: str) -> dict[str, Any]:
    """Every pod of ``namespace``."""
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}}


def pods_peer(labels: Mapping[str, str], namespace: str | None = None) -> dict[str, Any]:
    """The pods labelled ``labels`` in the policy's namespace, or in ``namespace``."""
    peer: dict[str, Any] = {"podSelector": {"matchLabels": dict(labels)}}
    if namespace is not None:
        peer.update(namespace_peer(namespace))
    return peer


def tcp(*ports: int) -> list[dict[str, Any]]:
    return [{"protocol": "TCP", "port": port} for port in ports]


def default_deny() -> Spec:
    """Every pod of the namespace: no connection in or out unless another policy allows it."""
    return {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}


def dns_egress() -> Spec:
    """Every pod of the namespace may resolve names (UDP and TCP 53 to the cluster DNS)."""
    return {
        "podSelector": {},
        "policyTypes": ["Egress"],
        "egress": [{"to": [pods_peer(DNS_POD_LABELS, DNS_NAMESPACE)],
                    "ports": [{"protocol": "UDP", "port": DNS_PORT}, {"protocol": "TCP", "port": DNS_PORT}]}],
    }


def https_egress(selector: Mapping[str, str], internal_cidrs: Sequence[str]) -> Spec:
    """Pods labelled ``selector`` may open HTTPS connections outside the cluster: anywhere but
    ``internal_cidrs``, which must not be empty (that would be HTTPS to anywhere, the API server included)."""
    if not internal_cidrs:
        raise ValueError("https_egress needs the internal CIDR blocks it must never reach, got none")
    return egress_to(selector, [{"ipBlock": {"cidr": ANYWHERE, "except": list(internal_cidrs)}}], tcp(HTTPS_PORT))


def egress_to(selector: Mapping[str, str], peers: Iterable[dict[str, Any]], ports: list[dict[str, Any]]) -> Spec:
    """Pods labelled ``selector`` may connect to ``peers`` on ``ports`` (empty: any port)."""
    return {"podSelector": {"matchLabels": dict(selector)}, "policyTypes": ["Egress"],
            "egress": [{"to": list(peers), **({"ports": ports} if ports else {})}]}


def ingress_from(selector: Mapping[str, str], rules: Iterable[tuple[Iterable[dict[str, Any]], list[dict[str, Any]]]]
                 ) -> Spec:
    """Pods labelled ``selector`` accept connections from each rule's peers on its ports."""
    return {"podSelector": {"matchLabels": dict(selector)}, "policyTypes": ["Ingress"],
            "ingress": [{"from": list(peers), "ports": ports} for peers, ports in rules]}
