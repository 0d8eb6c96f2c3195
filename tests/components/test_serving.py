"""ModelServer under mocks (with the TGI engine), and its pure helpers."""

from __future__ import annotations

import pytest

from components.engines.tgi import TgiEngine, token_limit_env, uses_legacy_token_flags
from components.engines.vllm import VllmEngine, extra_arg_problem
from components.naming import split_annotations
from components.serving import (
    ModelServer,
    ModelServerArgs,
    disruption_budget_spec,
    rollout_timeout,
    serving_container,
    serving_pod_spec,
    startup_failure_threshold,
)


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
    assert names == {"arm-x-deploy", "arm-x-svc", "arm-x-pdb"}  # two replicas: a disruption budget


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


PDB = "kubernetes:policy/v1:PodDisruptionBudget"


def test_a_variant_of_several_replicas_gets_a_budget_evicting_one_replica_at_a_time(run_program, pulumi_mocks):
    run_program(lambda: ModelServer("tgi-stable", args(variant="stable", replicas=3)))
    (pdb,) = pulumi_mocks.of_type(PDB)
    assert pdb.inputs["spec"] == {"maxUnavailable": 1,
                                  "selector": {"matchLabels": {"run": "text-generation-inference", "type": "stable"}}}
    assert pdb.inputs["metadata"]["namespace"] == "ns"
    assert pulumi_mocks.options["tgi-stable-pdb"].parent is not None


@pytest.mark.parametrize("replicas", [0, 1])
def test_a_variant_of_one_replica_or_none_gets_no_budget(run_program, pulumi_mocks, replicas: int) -> None:
    run_program(lambda: ModelServer("tgi-canary", args(replicas=replicas)))
    assert pulumi_mocks.of_type(PDB) == []


def test_under_an_hpa_the_budget_follows_the_most_replicas_it_may_run(run_program, pulumi_mocks) -> None:
    run_program(lambda: (ModelServer("tgi-stable", args(variant="stable", replicas=None, max_replicas=3)),
                         ModelServer("tgi-canary", args(replicas=None, max_replicas=1))))
    assert [r.name for r in pulumi_mocks.of_type(PDB)] == ["tgi-stable-pdb"]
    # maxUnavailable, not minAvailable: at one replica (HPA scaled down) a drain must still go through.
    assert disruption_budget_spec({"a": "b"}, 2) == {"maxUnavailable": 1, "selector": {"matchLabels": {"a": "b"}}}
    assert disruption_budget_spec({"a": "b"}, 1) is None


@pytest.mark.parametrize("bad", [dict(variant="blue"), dict(replicas=-1), dict(gpus=-2),
                                 dict(replicas=3, max_replicas=2)])
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


# --- vLLM -------------------------------------------------------------------------------------

VLLM = VllmEngine(image="vllm/vllm-openai:v0.12.0", max_model_len=4096, dtype="bfloat16",
                  gpu_memory_utilization=0.8, max_num_seqs=16, extra_args=("--enable-prefix-caching",))


def vllm_args(**overrides) -> ModelServerArgs:
    return args(engine=VLLM, model_id="Qwen/Qwen2.5-0.5B-Instruct", gpus=2,
                model_path="/mnt/datasets/weights/qwen2.5-0.5b-instruct/7ae557604adf67be50417f59c2c2f167def9a775",
                **overrides)


def test_vllm_serves_the_mounted_weights_under_the_repo_id_on_the_shared_port(run_program, pulumi_mocks) -> None:
    run_program(lambda: ModelServer("tgi-canary", vllm_args()))
    _, spec = pod_spec(pulumi_mocks)
    (c,) = spec["containers"]
    assert c["name"] == "vllm" and c["image"] == "vllm/vllm-openai:v0.12.0"
    assert c["command"] == ["vllm", "serve"]
    assert c["args"] == [
        "/mnt/datasets/weights/qwen2.5-0.5b-instruct/7ae557604adf67be50417f59c2c2f167def9a775",
        "--served-model-name", "Qwen/Qwen2.5-0.5B-Instruct", "--host", "0.0.0.0", "--port", "8080",
        "--max-model-len", "4096", "--dtype", "bfloat16", "--max-num-seqs", "16",
        "--tensor-parallel-size", "2", "--gpu-memory-utilization", "0.8", "--enable-prefix-caching"]
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["HF_HUB_OFFLINE"] == "1" and env["TRANSFORMERS_OFFLINE"] == "1"
    assert env["HF_HOME"].startswith("/data/") and env["VLLM_CACHE_ROOT"].startswith("/data/")
    assert "MODEL_ID" not in env and "VLLM_CPU_KVCACHE_SPACE" not in env
    # uid 1000 has no passwd entry in the image: torch's cache set-up asks getpass, which reads USER first.
    assert env["USER"] == "vllm" and env["HOME"] == "/tmp"
    assert env["TORCHINDUCTOR_CACHE_DIR"].startswith("/data/") and env["TRITON_CACHE_DIR"].startswith("/data/")
    assert c["ports"] == [{"name": "http", "containerPort": 8080}]


def test_vllm_gets_the_same_pod_shape_as_tgi() -> None:
    """Probes, GPU limit and placement, /dev/shm, volumes, security contexts: everything but the engine's part."""
    shape = dict(gpus=2, node_selector={"llm-ab/gpu-pool": "g5"}, shm_size="2Gi", startup_budget_seconds=900)
    tgi_spec = serving_pod_spec(args(**shape))
    vllm_spec = serving_pod_spec(vllm_args(**{k: v for k, v in shape.items() if k != "gpus"}))
    engine_keys = {"name", "image", "command", "args", "env"}
    strip = lambda spec: {**spec, "containers": [{k: v for k, v in c.items() if k not in engine_keys}  # noqa: E731
                                                 for c in spec["containers"]]}
    assert strip(vllm_spec) == strip(tgi_spec)
    c = vllm_spec["containers"][0]
    assert c["startupProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["startupProbe"]["failureThreshold"] == 90
    assert c["readinessProbe"]["httpGet"] == {"path": "/health", "port": "http"}
    assert c["resources"]["limits"]["nvidia.com/gpu"] == "2"
    assert {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "2Gi"}} in vllm_spec["volumes"]
    assert vllm_spec["enableServiceLinks"] is False  # a VLLM_PORT service link breaks vLLM's startup
    assert c["securityContext"]["allowPrivilegeEscalation"] is False


def test_vllm_on_cpu_sizes_its_kv_cache_and_skips_gpu_flags() -> None:
    engine = VllmEngine(image="example.org/vllm-cpu:v0.12.0", cpu_kv_cache_gib=6, quantization=None)
    c = serving_container(args(engine=engine, model_id="Qwen/Qwen2.5-0.5B-Instruct", gpus=0))
    env = {e["name"]: e["value"] for e in c["env"]}
    assert env["VLLM_CPU_KVCACHE_SPACE"] == "6"
    assert "--tensor-parallel-size" not in c["args"] and "--gpu-memory-utilization" not in c["args"]
    assert "nvidia.com/gpu" not in c["resources"]["limits"]


def test_vllm_quantization_is_a_flag() -> None:
    engine = VllmEngine(image="vllm/vllm-openai:v0.12.0", quantization="awq")
    c = serving_container(args(engine=engine, model_id="m/x", gpus=1))
    assert c["args"][c["args"].index("--quantization") + 1] == "awq"


def test_tgi_knobs_become_launcher_variables_only_when_set() -> None:
    plain = {e["name"] for e in serving_container(args(gpus=1))["env"]}
    assert not plain & {"DTYPE", "QUANTIZE", "MAX_BATCH_SIZE"}
    engine = TgiEngine(image="ghcr.io/huggingface/text-generation-inference:3.3.5", quantize="awq", max_batch_size=8)
    env = {e["name"]: e["value"] for e in serving_container(args(engine=engine, gpus=2))["env"]}
    assert env["QUANTIZE"] == "awq" and env["MAX_BATCH_SIZE"] == "8" and env["NUM_SHARD"] == "2"
    assert "DTYPE" not in env


@pytest.mark.parametrize(("arg", "reason"), [
    ("--enable-prefix-caching", None),
    ("--max-num-batched-tokens=8192", None),
    ("--kv-cache-dtype=fp8", None),
    ("--trust-remote-code", "is refused"),
    ("--api-key=abc", "is refused"),
    ("--port=9000", "is set by the program"),
    ("--tensor-parallel-size=4", "is set by the program"),
    ("--max_model_len=10", "is set by the program"),
    ("--max-num-batched-tokens", "needs a value"),
    ("--enforce-eager=true", "takes no value"),
    ("--kv-cache-dtype=int3", "must be --kv-cache-dtype=<one of auto"),
    ("--load-format=dummy", "must be one of the allowed flags"),
])
def test_vllm_extra_args_allow_list(arg: str, reason: str | None) -> None:
    found = extra_arg_problem(arg)
    assert (found is None) if reason is None else (found is not None and found.startswith(reason)), found
