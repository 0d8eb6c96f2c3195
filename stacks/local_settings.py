"""The ``local`` section of the settings schema: which parts of the stack the embedded local cluster
(scripts/local-cluster) only simulates.

That cluster has a real node (kubelet and containerd: pods really run) beside kwok's simulated nodes (pods are
faked Running, Jobs complete without running). What cannot run there for real (an engine image no registry
serves, staging that needs the Hugging Face Hub, a gate with no real serving to check) is placed on the simulated
nodes, and the stack file says so.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any

from pydantic import BeforeValidator

from stacks.config_types import Section, StringList, problem, show


class Part(str, Enum):
    """A part of the stack that ``local.simulate`` can place on the simulated nodes."""

    SERVING = "serving"
    """Both variants' serving pods and ModelMesh's runtime pods."""
    STAGING = "staging"
    """The Jobs that stage the models from the Hub into the bucket."""
    GATES = "gates"
    """The Jobs that gate ``pulumi up``: the smoke gate and the analysis."""


PARTS = tuple(p.value for p in Part)


def _parts(value: Any) -> Any:
    if isinstance(value, list | tuple):
        for part in value:
            if part not in PARTS:
                raise problem(f"must list parts from {', '.join(PARTS)}, got {show(part)}")
    return value


class LocalSettings(Section):
    """Platform local only: the parts placed on the embedded cluster's simulated nodes."""

    simulate: Annotated[StringList, BeforeValidator(_parts)] = ()
    """Parts whose pods go to the local cluster's simulated (kwok) nodes, where pods are faked Running and Jobs
    complete without running: any of `serving` (the variants, ModelMesh's runtime), `staging` (the Hub downloads),
    `gates` (the smoke and analysis Jobs); empty: nothing is placed there"""

    @property
    def simulated(self) -> frozenset[Part]:
        return frozenset(Part(p) for p in self.simulate)


def check_local(local: LocalSettings, *, platform: str) -> None:
    """``local.simulate`` only on the local platform: no other has simulated nodes."""
    if local.simulate and platform != "local":
        raise problem(f"must be empty on platform {platform}: only the local platform's embedded cluster has "
                      f"simulated nodes (allowed there: {', '.join(PARTS)}), got {show(list(local.simulate))}",
                      at="local.simulate")

