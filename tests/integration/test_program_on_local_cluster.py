"""The dev program's Kubernetes objects, rendered under Pulumi mocks, applied to the embedded
local cluster (real kube-apiserver + controllers + scheduler, kwok-simulated nodes and pods).

This checks what unit tests cannot: that every object passes the API server's validation
(including our Datashim/KServe CRD schemas), that pods fit on the nodes and get scheduled, that
Deployments become Available, Jobs Complete and PVCs Bound. It does not run the Pulumi engine
(no pulumi CLI/providers here); `scripts/stack up` does that where the engine is installed."""

from __future__ import annotations

import json
import runpy
import time
from collections.abc import Callable
from typing import Any

import pytest
import yaml

from tests.harness import ROOT, RecordingMocks, set_stack_config
from tests.integration.render import manifests
from tests.samples import dev_config

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture
def render(monkeypatch: pytest.MonkeyPatch, run_program, pulumi_mocks: RecordingMocks
           ) -> Callable[[dict[str, Any]], list[dict[str, Any]]]:
    """The program's Kubernetes objects for a stack config, rendered under the mocks."""
    def rendered(config: dict[str, Any]) -> list[dict[str, Any]]:
        set_stack_config(config)
        monkeypatch.setattr("pulumi.export", lambda *_: None)
        run_program(lambda: runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__"))
        objs = manifests(pulumi_mocks.resources)
        assert objs, "the program registered no Kubernetes objects"
        return objs
    return rendered


@pytest.fixture
def dev_manifests(render) -> list[dict[str, Any]]:
    return render(dev_config())


def _apply(cluster, objs: list[dict[str, Any]]) -> None:
    first = [o for o in objs if o["kind"] in ("Namespace", "CustomResourceDefinition", "StorageClass")]
    rest = [o for o in objs if o not in first]
    for batch in (first, rest):
        if batch:
            cluster.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-",
                            input=yaml.safe_dump_all(batch, sort_keys=False))


def _wait(cluster, objs: list[dict[str, Any]], timeout: float = 120) -> list[str]:
    """Names of objects not ready after ``timeout`` seconds (empty when all are ready)."""
    deadline = time.monotonic() + timeout
    while True:
        pending = []
        for o in objs:
            kind, meta = o["kind"], o["metadata"]
            ref = [f"{kind.lower()}/{meta['name']}"] + (["-n", meta["namespace"]] if meta.get("namespace") else [])
            if kind not in ("Deployment", "StatefulSet", "Job", "PersistentVolumeClaim"):
                continue
            st = cluster.get_json(*ref).get("status", {})
            if kind == "Deployment":
                ok = any(c["type"] == "Available" and c["status"] == "True" for c in st.get("conditions", [])) \
                    and st.get("readyReplicas", 0) == (o["spec"].get("replicas", 1))
            elif kind == "StatefulSet":
                ok = st.get("readyReplicas", 0) == o["spec"].get("replicas", 1)
            elif kind == "Job":
                ok = any(c["type"] == "Complete" and c["status"] == "True" for c in st.get("conditions", []))
            else:
                ok = st.get("phase") == "Bound"
            if not ok:
                pending.append(f"{kind}/{meta.get('namespace', '')}/{meta['name']}: {json.dumps(st)[:300]}")
        if not pending or time.monotonic() > deadline:
            return pending
        time.sleep(2)


def test_dev_objects_are_accepted_and_become_ready(local_cluster, dev_manifests) -> None:
    # server-side dry run first: reports every invalid object at once
    _apply(local_cluster, dev_manifests)
    pending = _wait(local_cluster, dev_manifests)
    assert not pending, "not ready:\n" + "\n".join(pending)


GATEWAY_SYSTEM = [
    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "gateway-system"}},
    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "GatewayClass", "metadata": {"name": "llm-ab-it"},
     "spec": {"controllerName": "example.com/llm-ab-it"}},
    {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "Gateway",
     "metadata": {"name": "llm-gw", "namespace": "gateway-system"},
     "spec": {"gatewayClassName": "llm-ab-it", "listeners": [
         {"name": "http", "protocol": "HTTP", "port": 80, "allowedRoutes": {"namespaces": {"from": "All"}}}]}},
]
"""What the platform team would own: the Gateway the route attaches to (no controller runs here)."""


@pytest.fixture
def gateway_manifests(render) -> list[dict[str, Any]]:
    from tests.samples import dev_gateway_config

    return render(dev_gateway_config())


def test_gateway_mode_objects_are_accepted_by_the_gateway_api_crds(local_cluster, gateway_manifests) -> None:
    """The HTTPRoute (header rules + weighted rule, against the release's own CRD schema and CEL rules) and the
    HPAs (autoscaling/v2) are accepted; the Deployments under an HPA come up without spec.replicas."""
    _apply(local_cluster, GATEWAY_SYSTEM)
    _apply(local_cluster, gateway_manifests)
    route = local_cluster.get_json("httproute/text-generation-inference", "-n", "llm-ab-dev")
    *headers, weighted = route["spec"]["rules"]
    assert [(b["name"], b["weight"]) for b in weighted["backendRefs"]] == [
        ("text-generation-inference-stable", 9000), ("text-generation-inference-canary", 1000)]
    assert [m["headers"][0]["value"] for rule in headers for m in rule["matches"]] == ["canary", "stable"]
    assert route["spec"]["parentRefs"][0]["name"] == "llm-gw"
    for variant in ("stable", "canary"):
        hpa = local_cluster.get_json(f"hpa/text-generation-inference-{variant}", "-n", "llm-ab-dev")
        assert hpa["spec"]["scaleTargetRef"]["name"] == f"text-generation-inference-{variant}"
        assert hpa["spec"]["behavior"]["scaleDown"]["stabilizationWindowSeconds"] == 600
    names = {(o["kind"], o["metadata"]["name"]) for o in gateway_manifests}
    assert ("Service", "text-generation-inference") not in names
    pending = _wait(local_cluster, gateway_manifests)
    assert not pending, "not ready:\n" + "\n".join(pending)


def test_the_gateway_api_crds_reject_a_route_weight_out_of_range(local_cluster) -> None:
    """The CRDs are the release's, validations included: a weight above 1,000,000 is refused."""
    bad = {"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute",
           "metadata": {"name": "too-heavy", "namespace": "default"},
           "spec": {"rules": [{"backendRefs": [{"name": "svc", "port": 8080, "weight": 2_000_000}]}]}}
    proc = local_cluster.kubectl("apply", "--server-side", "-f", "-", input=json.dumps(bad), check=False)
    assert proc.returncode != 0 and "weight" in proc.stderr


@pytest.fixture
def mixed_manifests(render) -> list[dict[str, Any]]:
    """The engine-migration pair (TGI stable, vLLM canary, one GPU each) of tests/golden/render.py."""
    from tests.golden.render import dev_mixed

    return render(dev_mixed())


def test_a_mixed_tgi_and_vllm_pair_is_accepted_and_lands_on_the_gpu_nodes(local_cluster, mixed_manifests) -> None:
    """Both engines' Deployments pass the API server's validation, their pods get a GPU each on the simulated
    GPU node (the local platform's GPU Feature Discovery selector), and the one traffic Service selects both."""
    namespace = "llm-ab-dev-vllm"
    _apply(local_cluster, mixed_manifests)
    pending = _wait(local_cluster, mixed_manifests)
    assert not pending, "not ready:\n" + "\n".join(pending)
    pods = local_cluster.get_json("pods", "-n", namespace, "-l", "run=text-generation-inference")["items"]
    engines = {p["metadata"]["labels"]["type"]: p["spec"]["containers"][0]["name"] for p in pods}
    assert engines == {"stable": "tgi", "canary": "vllm"}
    for pod in pods:
        node = local_cluster.get_json(f"node/{pod['spec']['nodeName']}")
        assert node["metadata"]["labels"].get("nvidia.com/gpu.present") == "true", pod["metadata"]["name"]
        assert pod["spec"]["containers"][0]["resources"]["limits"]["nvidia.com/gpu"] == "1"
    canary = next(p for p in pods if p["metadata"]["labels"]["type"] == "canary")
    assert canary["spec"]["containers"][0]["command"] == ["vllm", "serve"]
    endpoints = local_cluster.get_json("endpoints/text-generation-inference", "-n", namespace)
    addresses = [a for subset in endpoints.get("subsets", []) for a in subset.get("addresses", [])]
    assert sorted(a["targetRef"]["name"] for a in addresses) == sorted(p["metadata"]["name"] for p in pods)
