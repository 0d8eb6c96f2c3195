"""Who may talk to whom (issue 11 item 10): the NetworkPolicies the whole program renders, evaluated
the way Kubernetes evaluates them, for every workload's pods.

A connection from pod A to pod B is allowed when an egress rule of a policy selecting A admits B (or
no policy with Egress selects A) and an ingress rule of a policy selecting B admits A (or none with
Ingress selects B). The namespace's default-deny selects every pod in both directions, so every
allowed connection below is one a policy opened on purpose.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pytest

from components import netpol
from tests.golden.render import dev_with_modelmesh
from tests.samples import dev_config, dev_gateway_config

NS = dev_config()["llm-ab:namespace"]
NETPOL = "kubernetes:networking.k8s.io/v1:NetworkPolicy"
INTERNET = "198.51.100.7"  # a public address (the Hub, PyPI)


@dataclass(frozen=True)
class Pod:
    labels: Mapping[str, str]
    namespace: str = NS
    ip: str | None = None
    """Set for destinations outside the cluster (matched by ipBlock only)."""


KUBE_DNS = Pod({"k8s-app": "kube-dns"}, "kube-system")
ETCD = Pod({"app": "etcd"}, "modelmesh-serving")
OUTSIDE = Pod({}, "", INTERNET)
METADATA_SERVICE = Pod({}, "", "169.254.169.254")
NODE_OR_VPC = Pod({}, "", "10.0.12.34")


def selects(selector: Mapping[str, Any], labels: Mapping[str, str]) -> bool:
    for key, value in (selector.get("matchLabels") or {}).items():
        if labels.get(key) != value:
            return False
    for expr in selector.get("matchExpressions") or []:
        assert expr["operator"] == "Exists", expr  # the only operator the program uses
        if expr["key"] not in labels:
            return False
    return True


def peer_admits(peer: Mapping[str, Any], other: Pod, policy_ns: str) -> bool:
    if "ipBlock" in peer:
        if other.ip is None:
            return False
        block = peer["ipBlock"]
        address = ipaddress.ip_address(other.ip)
        return address in ipaddress.ip_network(block["cidr"]) and \
            not any(address in ipaddress.ip_network(c) for c in block.get("except", []))
    if other.ip is not None:
        return False
    if "namespaceSelector" in peer:
        ns_ok = selects(peer["namespaceSelector"], {"kubernetes.io/metadata.name": other.namespace})
    else:
        ns_ok = other.namespace == policy_ns
    return ns_ok and selects(peer.get("podSelector") or {}, other.labels)


def ports_admit(ports: list[Mapping[str, Any]] | None, port: int, protocol: str) -> bool:
    return not ports or any(p.get("protocol", "TCP") == protocol and int(p["port"]) == port for p in ports)


class Network:
    def __init__(self, policies: list[Mapping[str, Any]]) -> None:
        self.policies = policies

    def _side_allows(self, pod: Pod, other: Pod, port: int, protocol: str, direction: str) -> bool:
        key, peers_key = ("egress", "to") if direction == "Egress" else ("ingress", "from")
        selecting = [p for p in self.policies if p["namespace"] == pod.namespace
                     and direction in p["spec"]["policyTypes"] and selects(p["spec"]["podSelector"], pod.labels)]
        if not selecting:
            return pod.namespace != NS  # pods outside the experiment: not ours to judge
        return any(ports_admit(rule.get("ports"), port, protocol)
                   and any(peer_admits(peer, other, policy["namespace"]) for peer in rule.get(peers_key, []))
                   for policy in selecting for rule in policy["spec"].get(key, []))

    def allows(self, src: Pod, dst: Pod, port: int, protocol: str = "TCP") -> bool:
        egress = self._side_allows(src, dst, port, protocol, "Egress")
        ingress = dst.ip is not None or self._side_allows(dst, src, port, protocol, "Ingress")
        return egress and ingress


def rendered(mocks: Any) -> tuple[Network, dict[str, Pod]]:
    policies = [{"namespace": r.inputs["metadata"]["namespace"], "spec": r.inputs["spec"]}
                for r in mocks.of_type(NETPOL)]
    pods: dict[str, Pod] = {}
    for r in mocks.resources:
        if r.typ.endswith(("apps/v1:Deployment", "batch/v1:Job")):
            pods[r.name] = Pod(r.inputs["spec"]["template"]["metadata"]["labels"], r.inputs["metadata"]["namespace"])
    return Network(policies), pods


@pytest.fixture
def dev(run_main, pulumi_mocks) -> tuple[Network, dict[str, Pod]]:
    run_main(dev_config())
    return rendered(pulumi_mocks)


@pytest.fixture
def with_modelmesh(run_main, pulumi_mocks) -> tuple[Network, dict[str, Pod]]:
    run_main(dev_with_modelmesh())
    return rendered(pulumi_mocks)


MINIO_PORT, TGI_PORT = 9000, 8080


def test_the_namespace_denies_both_directions_and_every_pod_resolves_names(dev) -> None:
    net, pods = dev
    deny = [p for p in net.policies if p["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}]
    assert [p["namespace"] for p in deny] == [NS]
    assert pods, "no workloads rendered"
    for name, pod in pods.items():
        assert net.allows(pod, KUBE_DNS, 53, "UDP") and net.allows(pod, KUBE_DNS, 53, "TCP"), name
        assert not net.allows(pod, Pod({"app": "other"}, "kube-system"), 53, "UDP"), name


def test_serving_pods_reach_nothing_but_dns(dev) -> None:
    net, pods = dev
    tgi = pods["tgi-stable-deploy"]
    for target, port in ((pods["weights-deploy"], MINIO_PORT), (OUTSIDE, 443), (pods["tgi-canary-deploy"], TGI_PORT),
                         (METADATA_SERVICE, 80), (NODE_OR_VPC, 443)):
        assert not net.allows(tgi, target, port), (target, port)


def test_minio_reaches_nothing_and_only_its_clients_reach_it(dev) -> None:
    net, pods = dev
    minio = pods["weights-deploy"]
    assert not net.allows(minio, OUTSIDE, 443)
    assert net.allows(pods["weights-bucket"], minio, MINIO_PORT)
    assert net.allows(pods["staging-stable"], minio, MINIO_PORT)
    datashim = {"app": "csi-s3", "app.kubernetes.io/name": "datashim"}  # the labels of Datashim's manifest
    assert net.allows(Pod(datashim, "dlf"), minio, MINIO_PORT)  # Datashim mounts for the TGI pods
    # Any other pod of Datashim's namespace is just a pod (issue 22): the namespace is not a pass.
    assert not net.allows(Pod({"app": "csi-s3"}, "dlf"), minio, MINIO_PORT)
    assert not net.allows(Pod({"app.kubernetes.io/name": "datashim"}, "other"), minio, MINIO_PORT)
    for other in ("tgi-stable-deploy", "smoke-job"):
        assert not net.allows(pods[other], minio, MINIO_PORT), other
    assert not net.allows(pods["weights-bucket"], minio, 22)


def test_only_staging_jobs_and_the_pip_installing_gate_reach_the_internet_and_only_on_https(dev) -> None:
    net, pods = dev
    reach = {name for name, pod in pods.items() if net.allows(pod, OUTSIDE, 443)}
    assert reach == {"staging-stable", "staging-canary", "smoke-job"}
    staging = pods["staging-stable"]
    assert not net.allows(staging, OUTSIDE, 80)
    # Never the cluster, the VPC or the node's role credentials through the internet rule.
    assert not net.allows(staging, METADATA_SERVICE, 443) and not net.allows(staging, NODE_OR_VPC, 443)
    assert not net.allows(staging, pods["tgi-stable-deploy"], TGI_PORT)


def test_serving_pods_are_reached_by_the_smoke_job_and_the_allowed_namespaces_only(run_main, pulumi_mocks) -> None:
    config = dev_config()
    config["llm-ab:traffic"] = {"allowedNamespaces": ["apps"]}
    run_main(config)
    net, pods = rendered(pulumi_mocks)
    smoke = pods["smoke-job"]
    for variant in ("stable", "canary"):
        tgi = pods[f"tgi-{variant}-deploy"]
        assert net.allows(smoke, tgi, TGI_PORT)
        assert not net.allows(smoke, tgi, 9000)
        assert net.allows(Pod({"app": "client"}, "apps"), tgi, TGI_PORT)
        assert net.allows(Pod({"llm-ab/inference-client": "true"}), tgi, TGI_PORT)  # a labelled client of the team's
        for other in ("weights-deploy", "weights-bucket", "staging-stable"):
            assert not net.allows(pods[other], tgi, TGI_PORT), other
        assert not net.allows(Pod({"app": "client"}), tgi, TGI_PORT)  # unlabelled, in the namespace
        assert not net.allows(Pod({"app": "client"}, "elsewhere"), tgi, TGI_PORT)


def test_modelmesh_pods_reach_each_other_etcd_and_minio_on_their_ports_only(with_modelmesh) -> None:
    net, pods = with_modelmesh
    runtime = Pod({"modelmesh-service": "modelmesh-serving", "name": "modelmesh-serving-llm-ab-mlserver"})
    other_runtime = Pod({"modelmesh-service": "modelmesh-serving", "name": "other"})
    for port in (8033, 8080):
        assert net.allows(runtime, other_runtime, port)
    assert not net.allows(runtime, other_runtime, 8085)  # the SPI stays inside the pod
    assert net.allows(runtime, ETCD, 2379) and not net.allows(runtime, ETCD, 2380)
    assert net.allows(runtime, pods["weights-deploy"], MINIO_PORT)
    assert not net.allows(runtime, OUTSIDE, 443)
    smoke = pods["smoke-job"]
    assert net.allows(smoke, runtime, 8008) and net.allows(smoke, runtime, 8033)
    assert not net.allows(smoke, runtime, 2112) and not net.allows(smoke, runtime, 8080)
    assert not net.allows(pods["tgi-stable-deploy"], runtime, 8008)
    assert not net.allows(Pod({"app": "client"}), runtime, 8008)
    # Its staging Jobs are staging Jobs: S3 and the Hub.
    mm_staging = next(p for n, p in pods.items() if n.startswith("modelmesh-staging-"))
    assert net.allows(mm_staging, OUTSIDE, 443) and net.allows(mm_staging, pods["weights-deploy"], MINIO_PORT)


def test_the_internal_blocks_are_configurable(run_main, pulumi_mocks) -> None:
    config = dev_config()
    config["llm-ab:network"] = {"internalCidrs": ["10.0.0.0/8", "203.0.113.0/24"]}
    run_main(config)
    net, pods = rendered(pulumi_mocks)
    staging = pods["staging-stable"]
    assert not net.allows(staging, Pod({}, "", "203.0.113.9"), 443)
    assert net.allows(staging, Pod({}, "", "192.168.1.1"), 443)  # no longer excluded


def test_the_datashim_pods_minio_admits_are_configurable(run_main, pulumi_mocks) -> None:
    config = dev_config()
    config["llm-ab:datashim"] = {**config.get("llm-ab:datashim", {}), "operatorNamespace": "storage",
                                 "operatorPodLabels": {"app": "csi-s3"}}
    run_main(config)
    net, pods = rendered(pulumi_mocks)
    minio = pods["weights-deploy"]
    assert net.allows(Pod({"app": "csi-s3"}, "storage"), minio, MINIO_PORT)
    assert not net.allows(Pod({"app": "other"}, "storage"), minio, MINIO_PORT)


def test_builders_are_what_kubernetes_reads() -> None:
    assert netpol.default_deny() == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    dns = netpol.dns_egress()
    assert dns["egress"][0]["ports"] == [{"protocol": "UDP", "port": 53}, {"protocol": "TCP", "port": 53}]
    https = netpol.https_egress({"a": "b"}, ["10.0.0.0/8"])
    assert https["egress"] == [{"to": [{"ipBlock": {"cidr": "0.0.0.0/0", "except": ["10.0.0.0/8"]}}],
                                "ports": [{"protocol": "TCP", "port": 443}]}]
    assert not any(ipaddress.ip_network(c).is_global for c in netpol.DEFAULT_INTERNAL_CIDRS)


def test_https_egress_is_never_built_open_to_every_address() -> None:
    with pytest.raises(ValueError, match="internal CIDR blocks it must never reach, got none"):
        netpol.https_egress({"a": "b"}, [])


def test_the_analysis_gate_is_a_gate_client_like_the_smoke_job(run_main, pulumi_mocks) -> None:
    config = dev_config()
    config["llm-ab:analysis"] = {"enabled": True}
    run_main(config)
    net, pods = rendered(pulumi_mocks)
    analysis = pods["analysis-job"]
    for variant in ("stable", "canary"):
        assert net.allows(analysis, pods[f"tgi-{variant}-deploy"], TGI_PORT)
    assert net.allows(analysis, OUTSIDE, 443)  # PyPI, its run-time install
    assert not net.allows(analysis, pods["weights-deploy"], MINIO_PORT)


def test_in_gateway_mode_the_gateways_pods_reach_the_variants_and_the_gates_reach_the_gateway(
        run_main, pulumi_mocks) -> None:
    run_main(dev_gateway_config())
    net, pods = rendered(pulumi_mocks)
    gateway = Pod({"gateway.envoyproxy.io/owning-gateway-name": "llm-gw"}, "gateway-system")
    smoke = pods["smoke-job"]
    for variant in ("stable", "canary"):
        tgi = pods[f"tgi-{variant}-deploy"]
        assert net.allows(gateway, tgi, TGI_PORT) and net.allows(smoke, tgi, TGI_PORT)
    assert net.allows(smoke, gateway, 10080)  # the Gateway's listener behind its Service's port 80
    assert not net.allows(pods["tgi-stable-deploy"], gateway, 10080)
    assert not net.allows(smoke, Pod({"app": "x"}, "elsewhere"), 10080)
