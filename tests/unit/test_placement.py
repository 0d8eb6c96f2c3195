"""Which parts go to the local cluster's simulated nodes: ``local.simulate``, the placement each part's pods get,
the ``placement`` output and warning, and the node label and taint the program and scripts/local-cluster share."""

from __future__ import annotations

import re
from typing import Any

import pytest

from components.podspec import gpu_tolerations, placed, simulated_placement
from policy.contract import NODE_KIND_LABEL, REAL_NODE, SIMULATED_NODE, SIMULATED_TAINT_KEY
from stacks.config_types import ConfigError
from stacks.local_settings import Part
from stacks.platform import Platform
from stacks.platform_local import placement_output, placement_warnings
from stacks.settings import parse_settings
from tests.harness import ROOT, raw_config
from tests.samples import minimal, staging_config, with_value

SIMULATED = {"nodeSelector": {"llm-ab.dev/node": "simulated"},
             "tolerations": [{"key": "llm-ab.dev/simulated", "operator": "Exists", "effect": "NoSchedule"}]}
"""The fragment, spelled out: what scripts/local-cluster's simulated nodes are labelled and tainted with."""


def simulating(*parts: str, **sections: Any) -> dict[str, Any]:
    return {**with_value("local.simulate", list(parts)), **sections}


# --- settings --------------------------------------------------------------------------------


def test_nothing_is_simulated_by_default() -> None:
    assert parse_settings(minimal()).local.simulated == frozenset()


def test_any_subset_of_the_parts_is_accepted() -> None:
    assert parse_settings(simulating("gates", "serving")).local.simulated == {Part.SERVING, Part.GATES}
    assert parse_settings(simulating("serving", "staging", "gates")).local.simulated == set(Part)


@pytest.mark.parametrize(("value", "expected"), [
    (["serving", "models"], "llm-ab:local.simulate must list parts from serving, staging, gates, got 'models'"),
    ("serving", "llm-ab:local.simulate must be a list of strings, got 'serving'"),
])
def test_unknown_parts_are_refused_naming_what_is_allowed(value: Any, expected: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(with_value("local.simulate", value))
    assert str(err.value) == expected


def test_simulating_on_another_platform_is_refused() -> None:
    config = {**staging_config(), "llm-ab:local": {"simulate": ["serving"]}}
    with pytest.raises(ConfigError) as err:
        parse_settings(raw_config(config), stack="staging")
    assert str(err.value) == ("llm-ab:local.simulate must be empty on platform eks: only the local platform's embedded "
                              "cluster has simulated nodes (allowed there: serving, staging, gates), got ['serving']")
    assert parse_settings(raw_config({**staging_config(), "llm-ab:local": {"simulate": []}}), stack="staging")


# --- placement (pure) ------------------------------------------------------------------------


def test_the_simulated_placement_selects_the_simulated_nodes_and_tolerates_their_taint() -> None:
    assert simulated_placement() == SIMULATED


@pytest.mark.parametrize("part", list(Part))
def test_a_part_is_placed_on_the_simulated_nodes_only_when_simulated(part: Part) -> None:
    assert Platform(simulated=frozenset({part})).placement(part) == SIMULATED
    assert Platform(simulated=frozenset(set(Part) - {part})).placement(part) == {}
    assert Platform().placement(part) == {}


def test_a_simulated_gpu_pod_keeps_its_gpu_selector_and_toleration() -> None:
    gpu_pod = {"nodeSelector": {"nvidia.com/gpu.present": "true"}, "tolerations": gpu_tolerations()}
    assert placed(gpu_pod, SIMULATED) == {
        "nodeSelector": {"nvidia.com/gpu.present": "true", "llm-ab.dev/node": "simulated"},
        "tolerations": [*gpu_tolerations(), *SIMULATED["tolerations"]],
    }


def test_placing_nowhere_leaves_the_pod_spec_as_it_is() -> None:
    pod = {"restartPolicy": "Never"}
    assert placed(pod, {}) == pod
    assert placed(placed(pod, SIMULATED), SIMULATED) == {**pod, **SIMULATED}  # no toleration twice


def test_the_placement_output_names_every_part() -> None:
    assert placement_output(frozenset()) == {"serving": "cluster", "staging": "cluster", "gates": "cluster"}
    assert placement_output(frozenset({Part.SERVING, Part.GATES})) == {
        "serving": "simulated", "staging": "cluster", "gates": "simulated"}


@pytest.mark.parametrize(("parts", "sections", "warned"), [
    (("serving",), {}, "the smoke gate will really run against serving pods that are only simulated"),
    (("serving", "staging"), {"analysis": {"enabled": True}},
     "the smoke gate and the analysis will really run against serving pods that are only simulated"),
    (("serving",), {"smoke": {"enabled": False}}, None),
    (("serving", "gates"), {}, None),
    (("gates",), {}, None),
    ((), {}, None),
])
def test_simulated_serving_checked_by_real_gates_is_warned_about(
        parts: tuple[str, ...], sections: dict[str, Any], warned: str | None) -> None:
    warnings = placement_warnings(parse_settings(simulating(*parts, **sections)))
    if warned is None:
        assert warnings == []
    else:
        (warning,) = warnings
        assert warning.startswith("local.simulate has serving but not gates") and warned in warning, warning


# --- one owner for the strings ---------------------------------------------------------------


def test_the_local_cluster_labels_and_taints_its_nodes_with_the_programs_strings() -> None:
    """scripts/local-cluster and scripts/real-node spell the label and taint out in shell; the program's come
    from policy/contract.py.
    A change to either side alone would leave the simulated parts Pending (or on the real node)."""
    script = "".join((ROOT / "scripts" / name).read_text() for name in ("local-cluster", "real-node"))
    for value in (REAL_NODE, SIMULATED_NODE):
        assert re.search(rf'{re.escape(NODE_KIND_LABEL)}\s*[:=]\s*"?{value}\b', script), f"{NODE_KIND_LABEL}={value}"
    # =true:NoSchedule on a command line, or a YAML taint's key with its effect a line or two on
    assert re.search(rf"{re.escape(SIMULATED_TAINT_KEY)}\b[\s\S]{{0,80}}?NoSchedule", script), SIMULATED_TAINT_KEY
