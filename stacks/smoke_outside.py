"""``python -m stacks.smoke_outside OUTPUTS_JSON``: what ``scripts/smoke`` needs from a deployed stack's outputs
to run the smoke CLI from this machine, as shell assignments (``NAME='value'``, one per line).

Per variant: its replicas and the smoke CLI's flags that say what it must serve (repo id, revision, the
weights path it was given) and which API its engine speaks, as the in-cluster smoke Job is told them; then
the ModelMesh model names and the case files. The flag names are the smoke CLI's own (:mod:`smoke.plan`).
"""

from __future__ import annotations

import json
import shlex
import sys
from collections.abc import Mapping, Sequence
from typing import Any

from smoke import plan
from stacks import outputs as OUT
from stacks.settings import DEFAULT_SMOKE_CASES

VARIANTS = ("stable", "canary")


def variant_flags(outputs: Mapping[str, Any], variant: str) -> list[str]:
    """The smoke CLI's identity and API flags of ``variant`` (everything but its URL)."""
    model = (outputs.get(OUT.MODELS) or {}).get(variant) or {}
    flags = [plan.variant_model_flag(variant), str(model.get("id", "")),
             plan.variant_revision_flag(variant), str(model.get("revision", ""))]
    if model.get("weights"):  # what it was given: /info (TGI) or /v1/models' root (vLLM) must say exactly it
        flags += [plan.variant_weights_flag(variant), str(model["weights"])]
    api = ((outputs.get(OUT.ENGINES) or {}).get(variant) or {}).get("api", plan.API_TGI)
    return [*flags, plan.variant_api_flag(variant), str(api)]


def assignments(outputs: Mapping[str, Any]) -> dict[str, str]:
    """The shell variables scripts/smoke reads."""
    replicas = outputs.get(OUT.REPLICAS) or {}
    found = {"NS": str(outputs[OUT.NAMESPACE])}
    for variant in VARIANTS:
        found[f"{variant.upper()}_REPLICAS"] = str(int(replicas.get(variant, 0)))
        found[f"{variant.upper()}_IDENTITY"] = shlex.join(variant_flags(outputs, variant))
    mesh = outputs.get(OUT.MODELMESH) or {}
    found["V2_MODEL"] = str(mesh.get("v2Model", ""))
    found["V2_CANDIDATE"] = str((mesh.get("candidate") or {}).get("name", ""))
    found["CASES"] = " ".join((outputs.get(OUT.SMOKE) or {}).get("cases") or list(DEFAULT_SMOKE_CASES))
    return found


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m stacks.smoke_outside OUTPUTS_JSON", file=sys.stderr)
        return 2
    for name, value in assignments(json.loads(args[0])).items():
        print(f"{name}={shlex.quote(value)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
