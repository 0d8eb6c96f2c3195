"""The program renders exactly as its committed snapshots: every resource's type, name, inputs and
options, and the stack outputs, for dev, dev with ModelMesh, staging, dev-vllm and a mixed TGI/vLLM pair
(tests/golden/render.py).

A refactor must leave them alone; an intended change refreshes them (``python -m tests.golden.render
--write``) and the diff is reviewed with the change.
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from tests.golden.render import GOLDEN_DIR, RENDERS, dump, render


def leaf_paths(value: Any, path: str = "") -> dict[str, Any]:
    if isinstance(value, dict) and value:
        return {k: v for key, child in value.items() for k, v in leaf_paths(child, f"{path}.{key}").items()}
    if isinstance(value, list) and value:
        return {k: v for i, child in enumerate(value) for k, v in leaf_paths(child, f"{path}[{i}]").items()}
    return {path: value}


@pytest.mark.parametrize("name", list(RENDERS))
def test_the_program_renders_as_its_snapshot(name: str) -> None:
    expected = leaf_paths(json.loads((GOLDEN_DIR / f"{name}.json").read_text()))
    actual = leaf_paths(json.loads(dump(render(name))))
    changed = sorted(k for k in set(expected) | set(actual) if expected.get(k, "<absent>") != actual.get(k, "<absent>"))
    assert not changed, (f"{name} renders differently at {len(changed)} place(s), e.g. "
                         + "; ".join(f"{k}: {expected.get(k, '<absent>')!r} -> {actual.get(k, '<absent>')!r}"
                                     for k in changed[:5]))


def test_the_snapshots_hold_every_kind_of_resource_option_the_program_sets() -> None:
    """The snapshots would not notice a lost option they never recorded."""
    seen: set[str] = set()
    for name in RENDERS:
        for resource in json.loads((GOLDEN_DIR / f"{name}.json").read_text())["resources"].values():
            seen |= set(resource["options"])
    assert {"parent", "depends_on", "providers", "retain_on_delete", "custom_timeouts", "aliases", "transforms",
            "additional_secret_outputs"} <= seen, seen
