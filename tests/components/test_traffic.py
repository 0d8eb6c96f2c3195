"""TrafficSplit and ExperimentNamespace under mocks."""

from __future__ import annotations

from components.namespace import ExperimentNamespace, ExperimentNamespaceArgs
from components.split import plan_split
from components.traffic import TrafficSplit, TrafficSplitArgs, split_summary
from components.weights_volume import Keep


def test_split_summary_reports_declared_and_effective_shares() -> None:
    assert split_summary(plan_split(10, 7, 5)) == {
        "declaredCanaryPercent": 10, "effectiveCanaryPercent": 14.29, "stableReplicas": 6, "canaryReplicas": 1}


def test_tgi_is_reachable_from_its_inference_clients_and_the_allowed_namespaces_only(run_program, pulumi_mocks,
                                                                                    resolve) -> None:
    traffic = run_program(lambda: TrafficSplit("traffic", TrafficSplitArgs(
        namespace="exp", stack="t", plan=plan_split(50, 2, 5), allowed_namespaces=["apps"])))
    policy = pulumi_mocks.named("traffic-netpol")
    assert policy.inputs["spec"]["podSelector"] == {"matchLabels": {"run": "text-generation-inference"}}
    (rule,) = policy.inputs["spec"]["ingress"]
    assert rule["from"] == [{"podSelector": {"matchLabels": {"llm-ab/inference-client": "true"}}},
                            {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "apps"}}}]
    assert rule["ports"] == [{"protocol": "TCP", "port": 8080}]
    clients = pulumi_mocks.named("traffic-clients-netpol").inputs["spec"]
    assert clients == {"podSelector": {"matchLabels": {"llm-ab/inference-client": "true"}}, "policyTypes": ["Egress"],
                       "egress": [{"to": [{"podSelector": {"matchLabels": {"run": "text-generation-inference"}}}],
                                   "ports": [{"protocol": "TCP", "port": 8080}]}]}
    assert resolve(traffic.url) == "http://text-generation-inference.exp.svc.cluster.local:8080"


def test_namespace_denies_ingress_and_egress_by_default(run_program, pulumi_mocks) -> None:
    run_program(lambda: ExperimentNamespace("exp", ExperimentNamespaceArgs(
        name="exp", stack="t", labels={"monitor-pods-datasets": "enabled"},
        keep=Keep(protect=False, retain_on_delete=False))))
    deny = pulumi_mocks.named("exp-default-deny")
    assert deny.inputs["spec"] == {"podSelector": {}, "policyTypes": ["Ingress", "Egress"]}
    assert not pulumi_mocks.options["exp-ns"].retain_on_delete
