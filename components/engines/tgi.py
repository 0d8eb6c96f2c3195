"""Text Generation Inference as a serving engine.

Facts: ``MODEL_ID`` may be a local directory; ``HF_HUB_OFFLINE`` must be
exactly "1"; ``/health`` answers only after load and warmup; ``/dev/shm`` must be a memory
emptyDir; Kubernetes service links can clobber TGI's ``PORT``-style variables; token-limit flags
were renamed in 2.1 (``MAX_INPUT_LENGTH`` -> ``MAX_INPUT_TOKENS``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from components.engines import API_TGI, ServingContext

__all__ = ["DTYPES", "OPENAI_API_SINCE", "QUANTIZATIONS", "ROOT_ONLY_SINCE", "TgiEngine",
           "image_version", "needs_root", "serves_openai_api", "token_limit_env", "uses_legacy_token_flags"]

DTYPES = ("float16", "bfloat16")
"""``--dtype`` (``DTYPE``): TGI takes no dtype together with a quantisation."""
QUANTIZATIONS = ("awq", "eetq", "gptq", "bitsandbytes", "bitsandbytes-nf4", "bitsandbytes-fp4", "exl2", "fp8",
                 "marlin")
"""``--quantize`` (``QUANTIZE``): CUDA kernels all of them."""
ROOT_ONLY_SINCE = (3, 1)
"""TGI images from 3.1 install Python under /root, which other users cannot read."""
OPENAI_API_SINCE = (2, 3)
"""TGI serves ``/v1/models`` (huggingface/text-generation-inference#2433, merged 2024-08-29) from 2.3;
``/v1/completions`` and ``/v1/chat/completions`` came earlier (2.0, 1.4)."""


def image_version(image: str) -> tuple[int, int] | None:
    """(major, minor) of a TGI image's tag; None for a digest-only or unknown tag."""
    match = re.search(r":(\d+)\.(\d+)(?:\.\d+)?(?:[-@]|$)", image)
    return (int(match.group(1)), int(match.group(2))) if match else None


def needs_root(image: str) -> bool:
    """TGI images from 3.1 on run only as root (their Python lives in /root/.local,
    huggingface/text-generation-inference#3082); a digest or an unknown tag is not judged."""
    version = image_version(image)
    return version is not None and version >= ROOT_ONLY_SINCE


def uses_legacy_token_flags(image: str) -> bool:
    """True for TGI images before 2.1, which call ``max-input-tokens`` ``max-input-length``."""
    version = image_version(image)
    return version is not None and version < (2, 1)  # digest-only or unknown tag: assume a current release


def serves_openai_api(image: str) -> bool:
    """Whether the TGI image serves the OpenAI-compatible routes a mixed pair is checked through."""
    version = image_version(image)
    return version is None or version >= OPENAI_API_SINCE


def token_limit_env(image: str, *, max_input: int, max_total: int, max_prefill: int) -> list[dict[str, str]]:
    input_var = "MAX_INPUT_LENGTH" if uses_legacy_token_flags(image) else "MAX_INPUT_TOKENS"
    return [
        {"name": input_var, "value": str(max_input)},
        {"name": "MAX_TOTAL_TOKENS", "value": str(max_total)},
        {"name": "MAX_BATCH_PREFILL_TOKENS", "value": str(max_prefill)},
    ]


@dataclass(frozen=True, kw_only=True)
class TgiEngine:
    """TGI's launcher, configured by environment variables."""

    image: str
    """TGI image pinned by tag or digest."""
    max_input_tokens: int = 512
    max_total_tokens: int = 1024
    max_batch_prefill_tokens: int = 1024
    dtype: str | None = None
    quantize: str | None = None
    max_batch_size: int | None = None

    name = "tgi"
    api = API_TGI
    container_name = "tgi"
    health_path = "/health"
    metrics_path = "/metrics"

    def container_command(self, ctx: ServingContext) -> list[str] | None:  # noqa: ARG002 - Engine's signature
        return None  # the image's launcher

    def container_args(self, ctx: ServingContext) -> list[str]:
        # CPU: no custom CUDA kernels.
        return [] if ctx.gpus > 0 else ["--disable-custom-kernels"]

    def container_env(self, ctx: ServingContext) -> list[dict[str, str]]:
        env = [
            {"name": "MODEL_ID", "value": ctx.model_path},
            {"name": "HF_HUB_OFFLINE", "value": "1"},  # the Rust router compares the string "1"
            {"name": "PORT", "value": str(ctx.port)},
            {"name": "HUGGINGFACE_HUB_CACHE", "value": "/data"},
            *token_limit_env(self.image, max_input=self.max_input_tokens, max_total=self.max_total_tokens,
                             max_prefill=self.max_batch_prefill_tokens),
        ]
        knobs = {"DTYPE": self.dtype, "QUANTIZE": self.quantize, "MAX_BATCH_SIZE": self.max_batch_size}
        env += [{"name": k, "value": str(v)} for k, v in knobs.items() if v is not None]
        if ctx.gpus > 0:
            env.append({"name": "NUM_SHARD", "value": str(ctx.gpus)})
        else:
            # CPU: one shard, and see no GPU even on a GPU node.
            env += [{"name": "SHARDED", "value": "false"}, {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}]
        return env
