"""The ``vllm`` section of the settings schema and the rules across engines.

``models.<variant>.engine`` chooses TGI (``tgi.*``, the default) or vLLM (``vllm.*``) per variant;
the serving pod's shape (``serving.*``: GPUs, resources, startup budget, ``/dev/shm``, placement,
non-root) is shared by both engines, so a TGI stable and a vLLM canary get the same GPUs, placement and
budget. vLLM facts (flags, dtypes, quantisations, the extra-args allow-list) come from
:mod:`components.engines.vllm`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Annotated

from pydantic import model_validator

from components.engines.tgi import OPENAI_API_SINCE, needs_root, serves_openai_api
from components.engines.vllm import DTYPES, QUANTIZATIONS, extra_arg_problem, is_cuda_image
from stacks.config_types import (
    Number,
    OneOf,
    OptionalChoice,
    PinnedImage,
    Section,
    StringList,
    WholeNumber,
    problem,
    show,
)

ENGINES = ("tgi", "vllm")
"""The values of ``models.<variant>.engine``."""
DEFAULT_ENGINE = "tgi"

VLLM_IMAGE = "vllm/vllm-openai:v0.12.0"
"""Docker Hub's vllm/vllm-openai:v0.12.0 (linux/amd64 image
sha256:f2309d913a07da49ea20b2a694703f4cfcb5ad8e7437ec0f26145479ac01e002,
as cited in SemiAnalysisAI/InferenceX#303); not pulled from here."""


class VllmSettings(Section):
    """vLLM (the OpenAI-compatible server) settings, for the variants whose engine is vllm."""

    image: PinnedImage = VLLM_IMAGE
    """vLLM image, pinned by exact tag or digest (`vllm/vllm-openai` is a CUDA build)"""
    max_model_len: Annotated[int, WholeNumber(
        16, 1048576, why="a prompt and a reply need 16 tokens; 2^20 is a sanity bound, and vLLM refuses more than the "
        "model's own context, max_position_embeddings in its config.json, when it starts")] = 2048
    """`--max-model-len`: max prompt + generated tokens per sequence"""
    dtype: Annotated[str, OneOf(DTYPES)] = "auto"
    """`--dtype`: auto, half, float16, bfloat16, float or float32"""
    gpu_memory_utilization: Annotated[float, Number(0.05, 1.0)] = 0.9
    """`--gpu-memory-utilization`: share of each GPU's memory vLLM may take (weights + KV cache)"""
    max_num_seqs: Annotated[int, WholeNumber(1, 4096)] = 64
    """`--max-num-seqs`: max concurrent sequences in a batch"""
    quantization: Annotated[str | None, OptionalChoice(QUANTIZATIONS)] = None
    """`--quantization` (empty: none, or what the checkpoint declares)"""
    cpu_kv_cache_gib: Annotated[int, WholeNumber(1, 1024)] = 4
    """`VLLM_CPU_KVCACHE_SPACE` in GiB, for a CPU build at `serving.gpusPerReplica: 0`"""
    extra_args: StringList = ()
    """More `vllm serve` flags, each `--flag` or `--flag=value`, from an allow-list (see vLLM engine)"""

    @model_validator(mode="after")
    def _allowed_extra_args(self) -> VllmSettings:
        for i, arg in enumerate(self.extra_args):
            reason = extra_arg_problem(arg)
            if reason is not None:
                raise problem(f"{reason}, got {show(arg)}", at=f"extraArgs[{i}]")
        return self


def check_engines(vllm: VllmSettings, *, engines: Sequence[str], tgi_image: str, tgi_quantize: str | None,
                  tgi_dtype: str | None, gpus_per_replica: int, run_as_non_root: bool) -> None:
    """Rules across sections: what a vLLM variant, a TGI knob or a mixed pair needs. TGI's own rules apply
    only when a variant runs TGI: a vLLM pair never starts ``tgi.image``."""
    if "vllm" in engines and gpus_per_replica == 0 and is_cuda_image(vllm.image):
        raise problem(f"is a CUDA build of vLLM, which does not start without a GPU: set serving.gpusPerReplica to "
                      f"at least 1, or vllm.image to a CPU build of vLLM, got {show(vllm.image)}", at="vllm.image")
    if "tgi" in engines:
        if run_as_non_root and needs_root(tgi_image):
            raise problem(f"must be false for {show(tgi_image)}: TGI 3.1 and later install Python under /root, "
                          "which other users can't read (huggingface/text-generation-inference#3082); use a TGI "
                          "image up to 3.0 to run as non-root, got true", at="serving.runAsNonRoot")
        if tgi_quantize is not None and tgi_dtype is not None:
            raise problem(f"must be empty when tgi.quantize is set (TGI takes one of dtype and quantize), "
                          f"got {show(tgi_dtype)}", at="tgi.dtype")
        if tgi_quantize is not None and gpus_per_replica == 0:
            raise problem(f"needs GPUs (its kernels are CUDA kernels): set serving.gpusPerReplica to at least 1, "
                          f"got {show(tgi_quantize)}", at="tgi.quantize")
    if len(set(engines)) > 1 and not serves_openai_api(tgi_image):
        since = ".".join(map(str, OPENAI_API_SINCE))
        raise problem(f"must be TGI {since} or later when the pair mixes tgi and vllm: one Service splits "
                      f"requests between them, so both must serve the OpenAI-compatible API (/v1/models, "
                      f"/v1/completions, /v1/chat/completions), got {show(tgi_image)}", at="tgi.image")
