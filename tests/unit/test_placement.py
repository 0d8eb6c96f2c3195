"""Which parts go to the local cluster's simulated nodes: ``local.simulate``."""

from __future__ import annotations

from typing import Any

import pytest

from stacks.config_types import ConfigError
from stacks.local_settings import Part
from stacks.settings import parse_settings
from tests.harness import raw_config
from tests.samples import minimal, staging_config, with_value


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
