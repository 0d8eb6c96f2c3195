"""vLLM's OpenAI-compatible server as a serving engine.

Facts relied on: ``vllm serve <model>`` takes a local directory as the model and answers under
``--served-model-name`` (we give the repo id, so ``/v1/models`` and every response name the model);
``GET /health`` answers 200 once the engine is up (the server listens only after loading);
``GET /metrics`` is Prometheus text on the API port; ``HF_HUB_OFFLINE=1`` keeps transformers and the
hub client from calling out; tensor parallelism splits one replica over its GPUs
(``--tensor-parallel-size``); PyTorch's workers share tensors through ``/dev/shm``; a ``VLLM_PORT``
variable (what a Service named ``vllm`` injects with service links) breaks its startup, so service
links stay off; the ``vllm/vllm-openai`` images are CUDA builds (a CPU build comes from another
repository and sizes its KV cache with ``VLLM_CPU_KVCACHE_SPACE``, in GiB).

As a non-root user (uid 1000, which has no ``/etc/passwd`` entry in the image): importing vLLM sets up
torch's compile cache, which names the user through ``getpass.getuser()``; without ``USER`` in the
environment that is ``pwd.getpwuid`` and raises ``KeyError: 'getpwuid(): uid not found: 1000'``
(kserve/kserve#5666, vllm-project/vllm#31959), so the container sets ``USER``. The caches (torch
inductor, Triton) go to the ``/data`` scratch volume rather than the 1 GiB ``/tmp``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from components.engines import API_OPENAI, ServingContext, env_list

__all__ = ["CUDA_IMAGE_REPOSITORY", "DTYPES", "EXTRA_ARGS", "PROGRAM_ARGS", "QUANTIZATIONS",
           "REFUSED_ARGS", "RUN_AS_USER", "VllmEngine", "extra_arg_problem", "is_cuda_image"]

CUDA_IMAGE_REPOSITORY = "vllm/vllm-openai"
RUN_AS_USER = "vllm"
"""``USER`` of the server process: what ``getpass.getuser()`` answers for a uid the image does not know."""
DTYPES = ("auto", "half", "float16", "bfloat16", "float", "float32")
QUANTIZATIONS = ("awq", "awq_marlin", "gptq", "gptq_marlin", "fp8", "bitsandbytes", "compressed-tensors",
                 "experts_int8")


def _whole(value: str) -> bool:
    return value.isdigit() and int(value) > 0


def _number(value: str) -> bool:
    return re.fullmatch(r"[0-9]+(\.[0-9]+)?", value) is not None


def _one_of(*choices: str) -> Callable[[str], bool]:
    return lambda value: value in choices


ExtraArg = tuple[Callable[[str], bool] | None, str]
"""(value check, or None for a switch without a value; what the value must be)."""

EXTRA_ARGS: Mapping[str, ExtraArg] = {
    "--enable-prefix-caching": (None, ""),
    "--no-enable-prefix-caching": (None, ""),
    "--enable-chunked-prefill": (None, ""),
    "--no-enable-chunked-prefill": (None, ""),
    "--enforce-eager": (None, ""),
    "--disable-log-stats": (None, ""),
    "--max-num-batched-tokens": (_whole, "a whole number > 0"),
    "--kv-cache-dtype": (_one_of("auto", "fp8", "fp8_e4m3", "fp8_e5m2"), "one of auto, fp8, fp8_e4m3, fp8_e5m2"),
    "--block-size": (_one_of("8", "16", "32", "64", "128"), "one of 8, 16, 32, 64, 128"),
    "--swap-space": (_number, "GiB, a number >= 0"),
    "--cpu-offload-gb": (_number, "GiB, a number >= 0"),
    "--seed": (lambda v: v.isdigit(), "a whole number >= 0"),
    "--max-logprobs": (lambda v: v.isdigit(), "a whole number >= 0"),
    "--generation-config": (_one_of("auto", "vllm"), "auto (the model's generation_config.json) or vllm"),
    "--uvicorn-log-level": (_one_of("debug", "info", "warning", "error", "critical"),
                            "one of debug, info, warning, error, critical"),
}
"""The vLLM flags ``vllm.extraArgs`` may add, each ``--flag`` or ``--flag=value``."""

PROGRAM_ARGS = ("--model", "--served-model-name", "--host", "--port", "--tensor-parallel-size", "--dtype",
                "--max-model-len", "--gpu-memory-utilization", "--max-num-seqs", "--quantization", "--revision",
                "--tokenizer", "--download-dir")
"""Flags the program sets from the stack's settings (or must not be changed: where the model is, the port)."""
REFUSED_ARGS = {
    "--trust-remote-code": "runs Python code from the model repository inside the server",
    "--api-key": "would put a credential on the command line (and the smoke gate and the analysis send none)",
}


def extra_arg_problem(arg: str) -> str | None:
    """Why ``arg`` may not be one of ``vllm.extraArgs`` (None when it may)."""
    flag, eq, value = arg.partition("=")
    if flag in REFUSED_ARGS:
        return f"is refused: {flag} {REFUSED_ARGS[flag]}"
    if flag in PROGRAM_ARGS or flag.replace("_", "-") in PROGRAM_ARGS:
        return f"is set by the program from the stack's settings ({flag}); set the vllm.* or models.* key instead"
    if flag not in EXTRA_ARGS:
        return f"must be one of the allowed flags ({', '.join(EXTRA_ARGS)}), as --flag or --flag=value"
    check, allowed = EXTRA_ARGS[flag]
    if check is None:
        return f"takes no value ({flag})" if eq else None
    if not eq:
        return f"needs a value: {flag}=<{allowed}> (one list item)"
    return None if check(value) else f"must be {flag}=<{allowed}>"


def is_cuda_image(image: str) -> bool:
    """Whether ``image`` is one of vLLM's CUDA images (which need a GPU to start)."""
    repository = re.split(r"[:@]", image, maxsplit=1)[0]
    return repository in (CUDA_IMAGE_REPOSITORY, f"docker.io/{CUDA_IMAGE_REPOSITORY}")


@dataclass(frozen=True, kw_only=True)
class VllmEngine:
    """``vllm serve``, configured by command-line flags."""

    image: str
    max_model_len: int = 2048
    dtype: str = "auto"
    gpu_memory_utilization: float = 0.9
    max_num_seqs: int = 64
    quantization: str | None = None
    cpu_kv_cache_gib: int = 4
    extra_args: Sequence[str] = ()

    name = "vllm"
    api = API_OPENAI
    container_name = "vllm"
    health_path = "/health"
    metrics_path = "/metrics"

    def container_command(self, ctx: ServingContext) -> list[str]:  # noqa: ARG002 - Engine's signature
        # Not the image's entrypoint (which changed between releases): the CLI every release ships.
        return ["vllm", "serve"]

    def container_args(self, ctx: ServingContext) -> list[str]:
        args = [
            ctx.model_path,
            "--served-model-name", ctx.model_id,
            "--host", "0.0.0.0",
            "--port", str(ctx.port),
            "--max-model-len", str(self.max_model_len),
            "--dtype", self.dtype,
            "--max-num-seqs", str(self.max_num_seqs),
        ]
        if ctx.gpus > 0:
            args += ["--tensor-parallel-size", str(ctx.gpus),
                     "--gpu-memory-utilization", f"{self.gpu_memory_utilization:g}"]
        if self.quantization is not None:
            args += ["--quantization", self.quantization]
        return [*args, *self.extra_args]

    def container_env(self, ctx: ServingContext) -> list[dict[str, str]]:
        env = {
            "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1",
            "HF_HOME": "/data/huggingface",
            "VLLM_CACHE_ROOT": "/data/vllm",
            "XDG_CACHE_HOME": "/data/cache",
            "TORCHINDUCTOR_CACHE_DIR": "/data/torchinductor",
            "TRITON_CACHE_DIR": "/data/triton",
            "USER": RUN_AS_USER,
            "VLLM_NO_USAGE_STATS": "1",
            "DO_NOT_TRACK": "1",
        }
        if ctx.gpus == 0:
            env["VLLM_CPU_KVCACHE_SPACE"] = str(self.cpu_kv_cache_gib)
        return env_list(env)
