"""Serving engines: what differs between TGI and vLLM in a serving container, behind one interface.

:class:`components.serving.ModelServer` builds the Deployment, the per-variant Service, the probes,
the GPU placement, the volumes and the security context once for every engine; an :class:`Engine`
only contributes what is its own: the image, the container's name, command-line arguments and
environment, and the facts other code needs (the API it speaks, its health and metrics paths).
Pure: creates no resources.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

__all__ = ["API_OPENAI", "API_TGI", "APIS", "Engine", "ServingContext", "env_list"]

from smoke.plan import API_OPENAI, API_TGI, APIS  # the smoke CLI's flag values: one owner


@dataclass(frozen=True, kw_only=True)
class ServingContext:
    """What an engine's container is told about the variant it serves."""

    model_path: str
    """Directory of the staged weights inside the pod (the Dataset mount)."""
    model_id: str
    """The Hugging Face repo id: the name clients and checks use for the model."""
    gpus: int
    """``nvidia.com/gpu`` per replica; 0 runs on CPU."""
    port: int
    """The port the server must listen on (the ``http`` container port)."""


class Engine(Protocol):
    """One serving engine's part of the serving container: a dataclass of its settings."""

    __dataclass_fields__: ClassVar[dict[str, Any]]
    """Every engine is a dataclass (its fields are the settings the analysis Job's digest records)."""

    @property
    def name(self) -> str:
        """``tgi`` or ``vllm``: the value of ``models.<variant>.engine``."""

    @property
    def api(self) -> str:
        """The HTTP API the smoke gate and the analysis speak to it (one of :data:`APIS`)."""

    @property
    def image(self) -> str:
        """The pinned image."""

    @property
    def container_name(self) -> str: ...

    @property
    def health_path(self) -> str:
        """Answers 200 only once the model is loaded: the startup and readiness probes' path."""

    @property
    def metrics_path(self) -> str:
        """Prometheus metrics on the ``http`` port."""

    def container_command(self, ctx: ServingContext) -> list[str] | None:
        """The container's ``command``; None keeps the image's entrypoint."""

    def container_args(self, ctx: ServingContext) -> list[str]: ...

    def container_env(self, ctx: ServingContext) -> list[dict[str, str]]: ...


def env_list(values: Mapping[str, Any]) -> list[dict[str, str]]:
    """``{name: value}`` as a container's ``env`` list, in order."""
    return [{"name": k, "value": str(v)} for k, v in values.items()]
