"""models.<variant>.engine, the vllm section, the engine knobs and the rules across engines."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from stacks.config_types import ConfigError
from stacks.experiment import serving_engine
from stacks.settings import Variant, parse_settings
from tests.harness import raw_config, stack_config
from tests.samples import minimal

GPU = {"gpusPerReplica": 1}
TGI_3 = "ghcr.io/huggingface/text-generation-inference:2.4.1"


def config(canary_engine: str = "vllm", *, tgi: dict[str, Any] | None = None, vllm: dict[str, Any] | None = None,
           serving: dict[str, Any] | None = None, stable_engine: str | None = None) -> dict[str, Any]:
    raw = copy.deepcopy(minimal())
    raw["models"]["canary"]["engine"] = canary_engine
    if stable_engine is not None:
        raw["models"]["stable"]["engine"] = stable_engine
    raw["serving"] = {**GPU, **(serving or {})}
    raw["tgi"] = {"image": TGI_3, **(tgi or {})}
    if vllm is not None:
        raw["vllm"] = vllm
    return raw


def test_the_engine_defaults_to_tgi_for_both_variants() -> None:
    s = parse_settings(minimal())
    assert (s.models.stable.engine, s.models.canary.engine) == ("tgi", "tgi")
    assert s.vllm.image == "vllm/vllm-openai:v0.12.0" and s.vllm.max_model_len == 2048


def test_each_variant_gets_its_own_engine_with_its_settings() -> None:
    s = parse_settings(config(vllm={"maxModelLen": 8192, "dtype": "half", "gpuMemoryUtilization": "0.7",
                                    "maxNumSeqs": 8, "quantization": "awq", "extraArgs": ["--enforce-eager"]}))
    stable, canary = serving_engine(s, Variant.STABLE), serving_engine(s, Variant.CANARY)
    assert (stable.name, stable.api, stable.image) == ("tgi", "tgi", TGI_3)
    assert (canary.name, canary.api) == ("vllm", "openai")
    assert (canary.max_model_len, canary.dtype, canary.gpu_memory_utilization, canary.max_num_seqs,
            canary.quantization, tuple(canary.extra_args)) == (8192, "half", 0.7, 8, "awq", ("--enforce-eager",))


def test_the_dev_vllm_stack_parses_with_both_variants_on_vllm() -> None:
    s = parse_settings(raw_config(stack_config("dev-vllm")), stack="dev-vllm")
    assert {s.models.stable.engine, s.models.canary.engine} == {"vllm"}
    assert s.models.stable.id == "Qwen/Qwen2.5-0.5B-Instruct" and s.serving.gpus_per_replica == 1


@pytest.mark.parametrize(("raw", "key", "says"), [
    (config("sglang"), "models.canary.engine", "must be one of tgi, vllm, got 'sglang'"),
    (config(vllm={"image": "vllm/vllm-openai:latest"}), "vllm.image", "pinned"),
    (config(vllm={"dtype": "int4"}), "vllm.dtype", "must be one of auto, half, float16, bfloat16, float, float32"),
    (config(vllm={"quantization": "q4"}), "vllm.quantization", "must be one of awq"),
    (config(vllm={"gpuMemoryUtilization": 1.5}), "vllm.gpuMemoryUtilization", "1.5"),
    (config(vllm={"maxNumSeqs": 0}), "vllm.maxNumSeqs", "got 0"),
    (config(vllm={"maxModelLen": 8}), "vllm.maxModelLen", "got 8"),
    (config(vllm={"extraArgs": ["--enforce-eager", "--trust-remote-code"]}), "vllm.extraArgs[1]",
     "is refused: --trust-remote-code"),
    (config(vllm={"extraArgs": ["--port=9000"]}), "vllm.extraArgs[0]", "is set by the program"),
    (config(vllm={"extraArgs": ["--max-num-batched-tokens", "8192"]}), "vllm.extraArgs[0]", "needs a value"),
    (config(serving={"gpusPerReplica": 0}), "vllm.image", "does not start without a GPU"),
    (config(tgi={"image": "ghcr.io/huggingface/text-generation-inference:2.2.0"}), "tgi.image",
     "must be TGI 2.3 or later when the pair mixes tgi and vllm"),
    (config("tgi", tgi={"quantize": "awq", "dtype": "float16"}), "tgi.dtype", "must be empty when tgi.quantize is set"),
    (config("tgi", tgi={"quantize": "gptq"}, serving={"gpusPerReplica": 0}), "tgi.quantize", "needs GPUs"),
    (config("tgi", tgi={"quantize": "int3"}), "tgi.quantize", "must be one of awq"),
    (config("tgi", tgi={"dtype": "float32"}), "tgi.dtype", "must be one of float16, bfloat16"),
    (config("tgi", tgi={"maxBatchSize": 0}), "tgi.maxBatchSize", "got 0"),
])
def test_bad_engine_settings_fail_naming_the_key(raw: dict[str, Any], key: str, says: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(raw)
    assert err.value.key == key, str(err.value)
    assert says in str(err.value)


def test_a_cpu_build_of_vllm_may_run_without_gpus() -> None:
    s = parse_settings(config(serving={"gpusPerReplica": 0}, vllm={"image": "example.org/vllm-cpu:v0.12.0"}))
    assert serving_engine(s, Variant.CANARY).image == "example.org/vllm-cpu:v0.12.0"


def test_a_tgi_pair_ignores_the_vllm_rules_and_a_vllm_pair_the_tgi_version() -> None:
    parse_settings(config("tgi", serving={"gpusPerReplica": 0},
                          tgi={"image": "ghcr.io/huggingface/text-generation-inference:1.3.4"}))
    parse_settings(config(stable_engine="vllm", tgi={"image": "ghcr.io/huggingface/text-generation-inference:1.3.4"}))


def test_a_vllm_pair_does_not_judge_tgi_image_as_root_only() -> None:
    """serving.runAsNonRoot is both engines'; only a TGI variant makes a 3.1+ TGI image refuse it."""
    root_only = {"image": "ghcr.io/huggingface/text-generation-inference:3.3.5"}
    s = parse_settings(config(stable_engine="vllm", tgi=root_only))
    assert s.serving.run_as_non_root is True
    with pytest.raises(ConfigError) as err:
        parse_settings(config(tgi=root_only))
    assert err.value.key == "serving.runAsNonRoot" and "TGI 3.1 and later" in str(err.value)
