"""``local.simulate`` under mocks: every pod of a simulated part goes to the simulated nodes, MinIO stays on the
cluster, and the ``placement`` output says which is where."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stacks import outputs as OUT
from tests.harness import RecordingMocks
from tests.samples import CANDIDATE, PRIMARY, dev_config

DEPLOYMENT = "kubernetes:apps/v1:Deployment"
JOB = "kubernetes:batch/v1:Job"
RUNTIME = "kubernetes:serving.kserve.io/v1alpha1:ServingRuntime"
SELECTOR = {"llm-ab.dev/node": "simulated"}
TOLERATION = {"key": "llm-ab.dev/simulated", "operator": "Exists", "effect": "NoSchedule"}


def everything(*simulate: str, **sections: Any) -> dict[str, Any]:
    """The dev stack with every part that makes pods: both variants, staging, the ModelMesh track (its staging and
    its runtime), the smoke gate and the analysis; ``local.simulate`` as given."""
    config = copy.deepcopy(dev_config())
    config.update({
        "llm-ab:local": {"simulate": list(simulate)},
        "llm-ab:analysis": {"enabled": True},
        "llm-ab:modelmesh": {"enabled": True, "models": {"primary": {**PRIMARY, "version": "v0"},
                                                         "candidate": CANDIDATE},
                             "smokeCases": ["tests/golden/backend-0.yaml"]},
    })
    config.update({f"llm-ab:{key}": value for key, value in sections.items()})
    return config


def pod_specs(mocks: RecordingMocks) -> dict[str, dict[str, Any]]:
    """Every pod spec the program declares, by resource name (a ServingRuntime's spec is its pods')."""
    specs = {r.name: r.inputs["spec"]["template"]["spec"] for r in [*mocks.of_type(DEPLOYMENT), *mocks.of_type(JOB)]}
    specs.update({r.name: r.inputs["spec"] for r in mocks.of_type(RUNTIME)})
    return specs


def on_simulated_nodes(spec: dict[str, Any]) -> bool:
    return SELECTOR.items() <= spec.get("nodeSelector", {}).items() and TOLERATION in spec.get("tolerations", [])


SERVING = {"tgi-stable-deploy", "tgi-canary-deploy", "modelmesh-runtime"}
STAGING = {"staging-stable", "staging-canary", "modelmesh-staging-primary", "modelmesh-staging-candidate"}
GATES = {"smoke-job", "analysis-job"}
MINIO = {"weights-deploy", "weights-bucket"}


def test_every_pod_of_a_simulated_part_goes_to_the_simulated_nodes_and_minio_does_not(
        run_main, pulumi_mocks: RecordingMocks, resolve) -> None:
    exported = run_main(everything("serving", "staging", "gates"))
    specs = pod_specs(pulumi_mocks)
    assert set(specs) == SERVING | STAGING | GATES | MINIO, sorted(specs)
    for name in SERVING | STAGING | GATES:
        assert on_simulated_nodes(specs[name]), (name, specs[name].get("nodeSelector"), specs[name].get("tolerations"))
    for name in MINIO:
        assert "nodeSelector" not in specs[name] and "tolerations" not in specs[name], name
    assert resolve(exported[OUT.PLACEMENT]) == {"serving": "simulated", "staging": "simulated", "gates": "simulated"}


def test_only_the_simulated_parts_move(run_main, pulumi_mocks: RecordingMocks, resolve) -> None:
    exported = run_main(everything("staging"))
    specs = pod_specs(pulumi_mocks)
    assert {name for name, spec in specs.items() if on_simulated_nodes(spec)} == STAGING
    assert not any("nodeSelector" in specs[name] or "tolerations" in specs[name] for name in SERVING | GATES)
    assert resolve(exported[OUT.PLACEMENT]) == {"serving": "cluster", "staging": "simulated", "gates": "cluster"}


def test_a_simulated_gpu_replica_still_selects_and_tolerates_the_gpu_nodes(run_main, pulumi_mocks) -> None:
    config = everything("serving", "gates")
    run_main({**config, "llm-ab:serving": {**config["llm-ab:serving"], "gpusPerReplica": 1}})
    for name in ("tgi-stable-deploy", "tgi-canary-deploy"):
        spec = pod_specs(pulumi_mocks)[name]
        assert spec["nodeSelector"] == {"nvidia.com/gpu.present": "true", **SELECTOR}, name
        assert spec["tolerations"] == [TOLERATION, {"key": "nvidia.com/gpu", "operator": "Exists",
                                                    "effect": "NoSchedule"}], name


def test_a_gate_moved_to_the_simulated_nodes_is_a_new_job(run_main, pulumi_mocks) -> None:
    """A Job's pod template can't change in place: a gate's placement is in its name."""
    def gate_names(*simulate: str) -> dict[str, str]:
        pulumi_mocks.resources.clear()
        run_main(everything(*simulate))
        return {r.name: r.inputs["metadata"]["name"] for r in pulumi_mocks.of_type(JOB) if r.name in GATES}

    real, simulated = gate_names("serving"), gate_names("serving", "gates")
    assert real["analysis-job"] != simulated["analysis-job"] and real["smoke-job"] != simulated["smoke-job"]


def test_simulated_serving_checked_by_real_gates_warns(run_main, monkeypatch: pytest.MonkeyPatch) -> None:
    import pulumi

    warned: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *_, **__: warned.append(message))
    run_main(everything("serving", "staging"))
    assert [w for w in warned if w.startswith("local.simulate")] == [
        "local.simulate has serving but not gates: the smoke gate and the analysis will really run against serving "
        "pods that are only simulated, and fail; add gates to local.simulate (or take serving out)"]
