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

__all__ = ["TgiEngine", "token_limit_env", "uses_legacy_token_flags"]


def uses_legacy_token_flags(image: str) -> bool:
    """True for TGI images before 2.1, which call ``max-input-tokens`` ``max-input-length``."""
    match = re.search(r":(\d+)\.(\d+)(?:\.\d+)?(?:[-@]|$)", image)
    if not match:
        return False  # digest-only or unknown tag: assume a current release
    return (int(match.group(1)), int(match.group(2))) < (2, 1)


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

    name = "tgi"
    api = API_TGI
    container_name = "tgi"
    health_path = "/health"
    metrics_path = "/metrics"

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
        if ctx.gpus > 0:
            env.append({"name": "NUM_SHARD", "value": str(ctx.gpus)})
        else:
            # CPU: one shard, and see no GPU even on a GPU node.
            env += [{"name": "SHARDED", "value": "false"}, {"name": "NVIDIA_VISIBLE_DEVICES", "value": "void"}]
        return env
