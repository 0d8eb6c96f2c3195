"""The after-``up`` report of what really ran: real node, simulated node, gate Jobs (deploy/reality.py)."""

from __future__ import annotations

from deploy.reality import REAL, SIMULATED, classify, node_kind, render

REAL_NODE = {"metadata": {"name": "llm-ab-node", "labels": {"llm-ab.dev/node": "real"}}}
KWOK_GPU = {"metadata": {"name": "kwok-gpu-0", "labels": {"llm-ab.dev/node": "simulated"},
                         "annotations": {"kwok.x-k8s.io/node": "fake"}}}
EKS_NODE = {"metadata": {"name": "ip-10-0-1-2", "labels": {}}}


def pod(name: str, node: str, phase: str = "Running", **labels: str) -> dict:
    return {"metadata": {"name": name, "labels": labels}, "spec": {"nodeName": node}, "status": {"phase": phase}}


def test_a_kwok_node_is_simulated_even_if_labelled_real() -> None:
    lying = {"metadata": {"name": "x", "labels": {"llm-ab.dev/node": "real"},
                          "annotations": {"kwok.x-k8s.io/node": "fake"}}}
    assert node_kind(lying) == SIMULATED
    assert node_kind(REAL_NODE) == REAL
    assert node_kind(EKS_NODE) == "cluster"


def test_pods_are_grouped_by_part_and_variant_with_their_node_kind() -> None:
    pods = classify(
        [pod("minio-1", "llm-ab-node", **{"app.kubernetes.io/component": "weights"}),
         pod("tgi-stable-1", "kwok-gpu-0", **{"app.kubernetes.io/component": "serving", "type": "stable"}),
         pod("pending", "", "Pending", **{"app.kubernetes.io/component": "serving", "type": "canary"})],
        [REAL_NODE, KWOK_GPU])
    assert [(p.part, p.kind, p.node) for p in pods] == [
        ("serving canary", "unscheduled", ""), ("serving stable", SIMULATED, "kwok-gpu-0"),
        ("weights", REAL, "llm-ab-node")]


def test_a_simulated_gate_says_nothing_was_checked_and_a_real_one_shows_its_report() -> None:
    gate = {"app.kubernetes.io/component": "smoke", "llm-ab/inference-client": "true"}
    pods = classify(
        [pod("smoke-a-x", "kwok-gpu-0", "Succeeded", **gate, **{"job-name": "smoke-a"}),
         pod("smoke-b-y", "llm-ab-node", "Failed", **gate, **{"job-name": "smoke-b"})],
        [REAL_NODE, KWOK_GPU])
    lines = render("llm-ab-dev", pods, {"smoke-b-y": ["split: 12/40 canary, expected 50 % +- 5: FAIL"]})
    text = "\n".join(lines)
    assert "gate Job smoke-a: SIMULATED on kwok-gpu-0: kwok marked it Succeeded without running it; " \
           "no inference was checked" in text
    assert "gate Job smoke-b: ran on llm-ab-node: Failed; the last lines of its report:" in text
    assert "    | split: 12/40 canary, expected 50 % +- 5: FAIL" in text
    assert "SIMULATED: nothing ran" in text and "ran for real" in text
    assert lines[-1] == "  in short: ran for real: smoke; simulated: nothing (1 of 2 gate Jobs simulated)"


def test_the_summary_says_what_was_only_simulated_and_that_no_gate_checked_inference() -> None:
    pods = classify(
        [pod("minio-1", "llm-ab-node", **{"app.kubernetes.io/component": "object-store"}),
         pod("tgi-1", "kwok-gpu-0", **{"app.kubernetes.io/component": "inference", "type": "stable"}),
         pod("smoke-x", "kwok-gpu-0", "Succeeded", **{"app.kubernetes.io/component": "smoke-test",
                                                     "llm-ab/inference-client": "true", "job-name": "smoke"})],
        [REAL_NODE, KWOK_GPU])
    assert render("ns", pods, {})[-1] == ("  in short: ran for real: object-store; simulated: inference stable, "
                                          "smoke-test (so no gate checked any inference)")


def test_an_empty_namespace_is_said_plainly() -> None:
    assert render("ns", [], {}) == ["what ran in ns: no pods"]
