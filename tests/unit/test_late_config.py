"""Config that the API server (or EKS) would refuse only at `pulumi up` fails at preview instead,
naming the key, the value and what is allowed (issue 11, "Config that fails late")."""

from __future__ import annotations

from datetime import date
from fractions import Fraction
from typing import Any

import pytest

from stacks.config_types import ConfigError, quantity_value
from stacks.eks_settings import EKS_VERSIONS, supported_eks_versions
from stacks.settings import parse_settings
from tests.harness import raw_config
from tests.samples import PRIMARY, minimal, staging_config, with_value


def error_of(raw: dict[str, Any]) -> str:
    with pytest.raises(ConfigError) as err:
        parse_settings(raw)
    return str(err.value)


@pytest.mark.parametrize(("text", "value"), [
    ("500m", Fraction(1, 2)), ("4", Fraction(4)), ("1.5", Fraction(3, 2)), ("1Ki", Fraction(1024)),
    ("16Gi", Fraction(16 * 1024 ** 3)), ("2G", Fraction(2 * 10 ** 9)), ("0", Fraction(0)), ("0.5Gi", Fraction(2 ** 29)),
])
def test_quantities_are_read_exactly(text: str, value: Fraction) -> None:
    assert quantity_value(text) == value


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("serving.resources", {"requests": {"cpu": "8"}},
     "llm-ab:serving.resources.requests.cpu must be at most limits.cpu ('4'): a container cannot request more than its "
     "limit, got '8'"),
    ("serving.resources", {"requests": {"memory": "9Gi"}, "limits": {"memory": "8192Mi"}},
     "llm-ab:serving.resources.requests.memory must be at most limits.memory ('8192Mi'): a container cannot request "
     "more than its limit, got '9Gi'"),
    ("serving.resources", {"requests": {"cpu": "4001m"}},
     "llm-ab:serving.resources.requests.cpu must be at most limits.cpu ('4')"),
    ("storage.size", "0", "llm-ab:storage.size must be a Kubernetes quantity greater than 0 such as 500m, 4 or 16Gi, "
                          "got '0'"),
    ("storage.size", "0Gi", "llm-ab:storage.size must be a Kubernetes quantity greater than 0"),
    ("storage.size", 0, "llm-ab:storage.size must be a Kubernetes quantity greater than 0 such as 500m, 4 or 16Gi, "
                        "got 0"),
    ("serving.shmSize", "0Mi", "llm-ab:serving.shmSize must be a Kubernetes quantity greater than 0"),
    ("namespace", "kube-system",
     "llm-ab:namespace must be a namespace of the experiment's own, not one of Kubernetes' (default, kube-node-lease, "
     "kube-public, kube-system): the stack labels it, denies all traffic in it but what its policies allow and keeps "
     "it on destroy, got 'kube-system'"),
    ("namespace", "kube-public", "llm-ab:namespace must be a namespace of the experiment's own"),
    ("namespace", "default", "llm-ab:namespace must be a namespace of the experiment's own"),
    ("datashim.operatorNamespace", "kube-system",
     "llm-ab:datashim.operatorNamespace must be a namespace of Datashim's own such as dlf, not kube-system"),
    ("datashim.operatorNamespace", "llm-ab",
     "llm-ab:datashim.operatorNamespace must differ from namespace ('llm-ab'): the operator needs its own network "
     "and pod-security rules, got 'llm-ab'"),
    ("network.internalCidrs", [],
     "llm-ab:network.internalCidrs must list at least one IPv4 CIDR block (the cluster's own networks; default "
     "10.0.0.0/8, 172.16.0.0/12, 192.168.0.0/16, 100.64.0.0/10, 169.254.0.0/16): an empty list would open HTTPS "
     "egress to every address, the API server included, got []"),
    ("datashim.operatorPodLabels", {},
     "llm-ab:datashim.operatorPodLabels must name at least one pod label of Datashim's pods (default "
     "app.kubernetes.io/name: datashim): an empty selector would let every pod of datashim.operatorNamespace reach "
     "MinIO, got {}"),
    ("split.tolerance", 51, "llm-ab:split.tolerance must be a number from 0 to 50, got 51"),
    ("split.tolerance", "75", "llm-ab:split.tolerance must be a number from 0 to 50, got '75'"),
    ("eks.kubernetesVersion", "1.29", "llm-ab:eks.kubernetesVersion must be an EKS Kubernetes minor version EKS "
                                      "supports today (1.32, 1.33, 1.34, 1.35, 1.36)"),
    ("eks.kubernetesVersion", "1.99", "llm-ab:eks.kubernetesVersion must be an EKS Kubernetes minor version EKS "
                                      "supports today"),
    ("eks.kubernetesVersion", "1.3", "llm-ab:eks.kubernetesVersion must be an EKS Kubernetes minor version"),
])
def test_late_failures_fail_at_preview(path: str, value: Any, expected: str) -> None:
    assert error_of(with_value(path, value)).startswith(expected)


LABELS = ("must be Kubernetes labels: each key an optional DNS-subdomain prefix and '/', then a name of at most 63 "
          "letters, digits, '-', '_' and '.' starting and ending with a letter or digit; each value empty or such a "
          "name, got ")
BUCKET = ("must be an S3 bucket name: 3-63 lower-case letters, digits, '.' and '-', in dot-separated parts that start "
          "and end with a letter or digit (so no '..'), not an IP address")


@pytest.mark.parametrize(("path", "value", "expected"), [
    ("serving.nodeSelector", {"gpu type": "a10"}, f"llm-ab:serving.nodeSelector {LABELS}'gpu type': 'a10'"),
    ("serving.nodeSelector", {"node.kubernetes.io/instance-type": "g5.xlarge/2"},
     f"llm-ab:serving.nodeSelector {LABELS}'node.kubernetes.io/instance-type': 'g5.xlarge/2'"),
    ("serving.nodeSelector", {"Example.com/gpu": "true"}, f"llm-ab:serving.nodeSelector {LABELS}'Example.com/gpu'"),
    ("serving.nodeSelector", {"a/b/c": "x"}, f"llm-ab:serving.nodeSelector {LABELS}'a/b/c'"),
    ("serving.nodeSelector", {"pool": "x" * 64}, f"llm-ab:serving.nodeSelector {LABELS}'pool': '{'x' * 64}'"),
    ("observability.prometheusPodLabels", {"app": "-prometheus"},
     f"llm-ab:observability.prometheusPodLabels {LABELS}'app': '-prometheus'"),
    ("observability.podMonitorLabels", {"release": "kube prometheus"},
     f"llm-ab:observability.podMonitorLabels {LABELS}'release': 'kube prometheus'"),
    ("storage.storageClass", "Fast_SSD",
     "llm-ab:storage.storageClass must be a DNS-1123 subdomain: lower-case letters, digits, '-' and '.', at most 253 "
     "characters, each dot-separated part starting and ending with a letter or digit, got 'Fast_SSD'"),
    ("storage.storageClass", "ssd.", "llm-ab:storage.storageClass must be a DNS-1123 subdomain"),
    ("storage.storageClass", "s" * 254, "llm-ab:storage.storageClass must be a DNS-1123 subdomain"),
    ("storage.bucket", "model..weights", f"llm-ab:storage.bucket {BUCKET}"),
    ("storage.bucket", "192.168.5.4", f"llm-ab:storage.bucket {BUCKET}"),
    ("storage.bucket", "model.-weights", f"llm-ab:storage.bucket {BUCKET}"),
    ("storage.bucket", "xn--weights", f"llm-ab:storage.bucket {BUCKET}"),
    ("storage.bucket", "weights-s3alias", f"llm-ab:storage.bucket {BUCKET}"),
    ("storage.size", "1000Pi", "llm-ab:storage.size must be a Kubernetes quantity greater than 0 and at most 64Ti "
                               "(the largest single cloud block volume), got '1000Pi'"),
    ("storage.size", "65Ti", "llm-ab:storage.size must be a Kubernetes quantity greater than 0 and at most 64Ti"),
    ("split.canaryHeader", "x-llm-ab-variant: kanarienvögel",
     "llm-ab:split.canaryHeader must be an HTTP header match written 'name: value', e.g. 'x-llm-ab-variant: canary' "
     "(name: letters, digits and !#$%&'*+-.^_`|~; value: non-empty, visible ASCII characters and spaces, at most "
     "4096), got 'x-llm-ab-variant: kanarienvögel'"),
    ("split.stableHeader", "x-cohort: sta\u00a0ble", "llm-ab:split.stableHeader must be an HTTP header match"),
    ("vllm.maxModelLen", 2 ** 31,
     "llm-ab:vllm.maxModelLen must be a whole number from 16 to 1048576 (a prompt and a reply need 16 tokens; 2^20 is "
     "a sanity bound, and vLLM refuses more than the model's own context, max_position_embeddings in its "
     "config.json, when it starts), got 2147483648"),
    ("vllm.maxModelLen", 0, "llm-ab:vllm.maxModelLen must be a whole number from 16 to 1048576 (a prompt"),
    ("vllm.maxModelLen", -2048, "llm-ab:vllm.maxModelLen must be a whole number from 16 to 1048576"),
])
def test_values_the_api_server_or_a_client_would_refuse_late_fail_at_preview(path: str, value: Any,
                                                                             expected: str) -> None:
    assert error_of(with_value(path, value)).startswith(expected), error_of(with_value(path, value))


def test_gpu_pool_labels_are_checked_by_the_same_label_rule() -> None:
    raw = with_value("gpu.nodePools", [{"name": "gpu", "labels": {"team": "ml ops"}}])
    assert error_of(raw).startswith(f"llm-ab:gpu.nodePools[0].labels {LABELS}'team': 'ml ops'")


@pytest.mark.parametrize(("path", "value"), [
    ("serving.nodeSelector", {"nvidia.com/gpu.present": "true", "node.kubernetes.io/instance-type": "g5.xlarge",
                              "empty-value": ""}),
    ("observability.podMonitorLabels", {"release": "kube-prometheus-stack"}),
    ("storage.storageClass", "gp3.encrypted"),
    ("storage.bucket", "llm-ab-dev.weights-123456789012"),
    ("storage.size", "64Ti"),
    ("split.canaryHeader", "x-llm-ab-variant: canary cohort ~1"),
])
def test_valid_values_of_those_keys_are_accepted(path: str, value: Any) -> None:
    raw = with_value(path, value)
    if path.startswith("split."):
        raw["split"] |= {"mode": "gateway", "gateway": {"name": "gw", "namespace": "gw", "url": "http://gw"}}
    parse_settings(raw)


def test_values_at_the_bounds_are_accepted() -> None:
    s = parse_settings(with_value("serving.resources", {"requests": {"cpu": "4", "memory": "8Gi"}}))
    assert s.serving.resources.requests.cpu == "4"
    assert parse_settings(with_value("split.tolerance", 50)).split.tolerance == 50
    assert parse_settings(with_value("storage.size", "1Mi")).storage.size == "1Mi"
    assert parse_settings(with_value("namespace", "team-llm")).namespace == "team-llm"
    assert parse_settings(with_value("eks.kubernetesVersion", 1.34)).eks.kubernetes_version == "1.34"


def test_modelmesh_runtime_requests_above_limits_fail_too() -> None:
    raw = minimal()
    raw["modelmesh"] = {"enabled": True, "models": {"primary": PRIMARY},
                        "runtime": {"resources": {"requests": {"memory": "2Gi"}}}}
    raw["smoke"] = {"enabled": False}
    assert error_of(raw).startswith("llm-ab:modelmesh.runtime.resources.requests.memory must be at most "
                                    "limits.memory ('1Gi')")


def test_eks_versions_expire_with_their_extended_support() -> None:
    assert supported_eks_versions(date(2026, 7, 1))[:1] == ["1.32"]
    assert "1.32" not in supported_eks_versions(date(2027, 3, 24))
    assert supported_eks_versions(date(2030, 1, 1)) == ["1.36"]  # no verified end date yet
    assert list(EKS_VERSIONS) == sorted(EKS_VERSIONS, key=lambda v: int(v.split(".")[1]))


# --- item 12: the EKS endpoint is never public to the internet by default ------------------------


def staging(**eks: Any) -> dict[str, Any]:
    config = staging_config()
    config["llm-ab:eks"] = {k: v for k, v in {**config["llm-ab:eks"], **eks}.items() if v is not None}
    return raw_config(config)


def test_eks_without_endpoint_cidrs_fails_naming_the_key_and_both_ways_out() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(staging(endpointPublicAccessCidrs=None), stack="staging")
    assert str(err.value) == (
        "llm-ab:eks.endpointPublicAccessCidrs must list the CIDRs that may reach the cluster's public API endpoint, "
        "i.e. where `pulumi up` and kubectl run from (e.g. [198.51.100.0/24]; [0.0.0.0/0] opens it to the whole "
        "internet), or set eks.endpointPrivateOnly: true when they run inside the VPC, got []")


def test_eks_private_only_endpoint_and_cidrs_cannot_be_combined() -> None:
    with pytest.raises(ConfigError, match=r"^llm-ab:eks.endpointPublicAccessCidrs cannot be combined with "
                                          r"eks.endpointPrivateOnly: true"):
        parse_settings(staging(endpointPrivateOnly=True), stack="staging")
    s = parse_settings(staging(endpointPrivateOnly=True, endpointPublicAccessCidrs=None), stack="staging")
    assert s.eks.endpoint_private_only and s.eks.endpoint_public_access_cidrs == ()


def test_the_endpoint_rule_applies_on_eks_only() -> None:
    assert parse_settings(minimal()).eks.endpoint_public_access_cidrs == ()


def cluster_vpc_config(mocks: Any) -> dict[str, Any]:
    (cluster,) = mocks.of_type("aws:eks/cluster:Cluster")
    return cluster.inputs["vpcConfig"]


def test_a_private_only_cluster_has_no_public_endpoint(run_main, pulumi_mocks) -> None:
    config = staging_config()
    config["llm-ab:eks"] = {**config["llm-ab:eks"], "endpointPrivateOnly": True}
    del config["llm-ab:eks"]["endpointPublicAccessCidrs"]
    run_main(config)
    vpc = cluster_vpc_config(pulumi_mocks)
    assert vpc["endpointPublicAccess"] is False and vpc["endpointPrivateAccess"] is True
    assert "publicAccessCidrs" not in vpc


def test_a_public_endpoint_is_open_to_the_listed_cidrs_only(run_main, pulumi_mocks) -> None:
    config = staging_config()
    config["llm-ab:eks"] = {**config["llm-ab:eks"], "endpointPublicAccessCidrs": ["198.51.100.0/24"]}
    run_main(config)
    vpc = cluster_vpc_config(pulumi_mocks)
    assert vpc["endpointPublicAccess"] is True and vpc["publicAccessCidrs"] == ["198.51.100.0/24"]


def test_on_eks_the_internal_blocks_must_cover_the_new_vpc() -> None:
    config = staging_config()
    config["llm-ab:network"] = {"internalCidrs": ["192.168.0.0/16", "169.254.0.0/16"]}
    with pytest.raises(ConfigError) as err:
        parse_settings(raw_config(config), stack="staging")
    assert str(err.value).startswith("llm-ab:network.internalCidrs must cover eks.vpc.cidr (10.40.0.0/16): the pods' "
                                     "HTTPS egress to the internet would reach the VPC's nodes and endpoints")
    assert error_of(with_value("network.internalCidrs", ["10.0.0.0/33"])).startswith(
        "llm-ab:network.internalCidrs must list IPv4 CIDR blocks such as 10.0.0.0/8, got '10.0.0.0/33'")
