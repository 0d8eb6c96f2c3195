"""ModelServer under mocks (with the TGI engine), and its pure helpers."""

from __future__ import annotations

import pytest

from components.naming import split_annotations
from components.engines.tgi import TgiEngine, token_limit_env, uses_legacy_token_flags
from components.serving import ModelServer, ModelServerArgs, rollout_timeout, startup_failure_threshold


def args(**overrides) -> ModelServerArgs:
    base = dict(namespace="ns", stack="test", variant="canary",
                engine=TgiEngine(image="ghcr.io/huggingface/text-generation-inference:3.3.5"),
                dataset_name="weights", model_path="/mnt/datasets/weights/m/abc", replicas=2,
                resources={"requests": {"cpu": "1", "memory": "1Gi"}, "limits": {"cpu": "2", "memory": "2Gi"}})
    base.update(overrides)
    return ModelServerArgs(**base)


def pod_spec(mocks):
    (deploy,) = mocks.of_type("kubernetes:apps/v1:Deployment")
    return deploy, deploy.inputs["spec"]["template"]["spec"]


def test_gpu_replicas_get_gpu_limits_the_taint_toleration_and_the_pool_selector(run_program, pulumi_mocks) -> None:
    run_program(lambda: ModelServer("tgi-canary", args(gpus=2, node_selector={"llm-ab/gpu-pool": "g5"})))
    _, spec = pod_spec(pulumi_mocks)
    c = spec["containers"][0]
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert {"key": "nvidia.com/gpu", "operator": "Exists", "effect": "NoSchedule"} in spec["tolerations"]
    assert spec["nodeSelector"] == {"llm-ab/gpu-pool": "g5"}
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["NUM_SHARD"] == "2" and "NVIDIA_VISIBLE_DEVICES" not in env
    assert "--disable-custom-kernels" not in c["args"]


def test_cpu_replicas_hide_gpus_and_disable_custom_kernels(run_program, pulumi_mocks) -> None:
    run_program(lambda: ModelServer("tgi-canary", args(gpus=0)))
    _, spec = pod_spec(pulumi_mocks)
    c = spec["containers"][0]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["NVIDIA_VISIBLE_DEVICES"] == "void" and env["SHARDED"] == "false"
    assert "--disable-custom-kernels" in c["args"]
    assert "tolerations" not in spec and "nvidia.com/gpu" not in c["resources"]["limits"]
    assert env["MAX_INPUT_TOKENS"] == "512"  # 3.3.5 uses the current flag name


def test_zero_replicas_keeps_the_deployment_but_runs_nothing(run_program, pulumi_mocks) -> None:
    run_program(lambda: ModelServer("tgi-canary", args(replicas=0)))
    deploy, _ = pod_spec(pulumi_mocks)
    assert deploy.inputs["spec"]["replicas"] == 0


def test_per_variant_service_selects_only_that_variant(run_program, pulumi_mocks, resolve) -> None:
    server = run_program(lambda: ModelServer("tgi-stable", args(variant="stable")))
    (svc,) = pulumi_mocks.of_type("kubernetes:core/v1:Service")
    assert svc.inputs["spec"]["selector"] == {"run": "text-generation-inference", "type": "stable"}
    assert resolve(server.url) == "http://text-generation-inference-stable.ns.svc.cluster.local:8080"


def test_children_are_named_from_the_component(run_program, pulumi_mocks) -> None:
    run_program(lambda: ModelServer("arm-x", args()))
    names = {r.name for r in pulumi_mocks.resources if r.typ.startswith("kubernetes:")}
    assert names == {"arm-x-deploy", "arm-x-svc"}


@pytest.mark.parametrize(
    ("image", "legacy"),
    [("ghcr.io/huggingface/text-generation-inference:1.3.4", True),
     ("ghcr.io/huggingface/text-generation-inference:2.0.4", True),
     ("ghcr.io/huggingface/text-generation-inference:2.1.0", False),
     ("ghcr.io/huggingface/text-generation-inference:3.3.7-intel-cpu", False),
     ("ghcr.io/huggingface/text-generation-inference@sha256:" + "0" * 64, False)],
)
def test_token_flag_names_follow_the_image_version(image: str, legacy: bool) -> None:
    assert uses_legacy_token_flags(image) is legacy
    names = [e["name"] for e in token_limit_env(image, max_input=1, max_total=2, max_prefill=3)]
    assert names[0] == ("MAX_INPUT_LENGTH" if legacy else "MAX_INPUT_TOKENS")


def test_startup_budget_becomes_probe_threshold_and_pulumi_timeout() -> None:
    assert startup_failure_threshold(1800) == 180
    assert startup_failure_threshold(65) == 7
    assert rollout_timeout(1800) == "2100s"


@pytest.mark.parametrize("bad", [dict(variant="blue"), dict(replicas=-1), dict(gpus=-2)])
def test_args_reject_impossible_values(bad) -> None:
    with pytest.raises(ValueError):
        args(**bad)


def test_split_annotations_go_on_the_deployment_not_its_pod_template(run_program, pulumi_mocks) -> None:
    run_program(lambda: ModelServer("tgi-canary", args(split_annotations=split_annotations(12.5, 5))))
    deploy, _ = pod_spec(pulumi_mocks)
    assert deploy.inputs["metadata"]["annotations"] == {"llm-ab/declared-canary-percent": "12.5",
                                                        "llm-ab/split-tolerance": "5"}
    assert "annotations" not in deploy.inputs["spec"]["template"]["metadata"]


def test_no_split_annotations_by_default(run_program, pulumi_mocks) -> None:
    run_program(lambda: ModelServer("tgi-canary", args()))
    deploy, _ = pod_spec(pulumi_mocks)
    assert "annotations" not in deploy.inputs["metadata"]
