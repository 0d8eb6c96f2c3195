"""The ``network`` section of the settings schema: what the NetworkPolicies treat as inside the cluster.

The namespace denies every connection in and out (components/netpol.py); pods labelled
``llm-ab/https-egress`` (the staging Jobs, the Jobs that install from PyPI) may open HTTPS connections to
anywhere but ``network.internalCidrs``, so they can't reach the cluster's pods, Services, nodes or the
cloud's metadata service that way.
"""

from __future__ import annotations

import ipaddress
from typing import Annotated, Any

from pydantic import BeforeValidator

from components.netpol import DEFAULT_INTERNAL_CIDRS
from stacks.config_types import Section, StringList, problem, show


def _cidrs(value: Any) -> Any:
    if isinstance(value, list | tuple):
        if not value:
            # Every block of the HTTPS egress rule is 0.0.0.0/0 minus these: none would be port 443 anywhere,
            # the API server, the nodes and the cloud's metadata service included (Jobs holding the writer key).
            raise problem(f"must list at least one IPv4 CIDR block (the cluster's own networks; default "
                          f"{', '.join(DEFAULT_INTERNAL_CIDRS)}): an empty list would open HTTPS egress to every "
                          f"address, the API server included, got []")
        for cidr in value:
            try:
                ipaddress.IPv4Network(cidr, strict=True)
            except (TypeError, ValueError):
                raise problem(f"must list IPv4 CIDR blocks such as 10.0.0.0/8, got {show(cidr)}") from None
    return value


class NetworkSettings(Section):
    """The experiment's network rules (``network``)."""

    internal_cidrs: Annotated[StringList, BeforeValidator(_cidrs)] = DEFAULT_INTERNAL_CIDRS
    """Blocks the HTTPS egress to the internet (staging's Hub downloads, PyPI) never reaches: the pod, Service,
    node and VPC networks, the API server and link-local (instance metadata); never empty"""


def check_network(network: NetworkSettings, *, vpc_cidr: str | None) -> None:
    """On eks with a new VPC: the VPC (nodes, pods, endpoints) is inside ``network.internalCidrs``, so the
    HTTPS egress to the internet can't reach it."""
    if vpc_cidr is None:
        return
    vpc = ipaddress.IPv4Network(vpc_cidr)
    if not any(vpc.subnet_of(ipaddress.IPv4Network(c)) for c in network.internal_cidrs):
        raise problem(f"must cover eks.vpc.cidr ({vpc_cidr}): the pods' HTTPS egress to the internet would reach "
                      f"the VPC's nodes and endpoints, got {list(network.internal_cidrs)}", at="network.internalCidrs")
