"""Settings that would switch a gate off are refused at preview, naming the key, the value and what is allowed."""

from __future__ import annotations

import pytest

from smoke.power import min_samples
from stacks.config_types import ConfigError
from stacks.settings import SmokeSettings, parse_settings
from tests.samples import gateway_split, minimal


def _with(raw: dict, **sections: dict) -> dict:
    return {**raw, **sections}


@pytest.mark.parametrize(("split", "least"), [
    ({"canaryPercent": 50, "replicas": 2}, 327),
    ({"canaryPercent": 10, "replicas": 10}, 164),
])
def test_too_few_split_samples_are_refused_naming_the_least_for_the_share(split: dict, least: int) -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(_with(minimal(), split=split, smoke={"samples": least - 1}))
    assert err.value.key == "smoke.samples"
    assert str(err.value).startswith(f"llm-ab:smoke.samples must be at least {least} for the split check of a "
                                     f"{split['canaryPercent']}% canary")
    assert str(err.value).endswith(f"got {least - 1}")
    assert parse_settings(_with(minimal(), split=split, smoke={"samples": least})).smoke.samples == least


def test_the_split_check_expects_the_effective_share_so_the_least_samples_follow_it() -> None:
    """7 replicas at a declared 10 % give a 14.3 % canary: that is what the check samples for."""
    raw = _with(minimal(), split={"canaryPercent": 10, "replicas": 7, "tolerance": 5})
    least = min_samples(1 / 7)
    with pytest.raises(ConfigError, match=f"must be at least {least} for the split check of a 14.29% canary"):
        parse_settings(_with(raw, smoke={"samples": least - 1}))


def test_the_issues_ten_samples_are_refused_in_gateway_mode_too() -> None:
    with pytest.raises(ConfigError, match=r"smoke\.samples must be at least \d+ .* got 10$"):
        parse_settings(_with(minimal(), split=gateway_split(canaryPercent=50), smoke={"samples": 10}))


def test_the_default_samples_are_enough_at_every_share() -> None:
    default = SmokeSettings().samples
    assert max(min_samples(p / 20) for p in range(21)) <= default
    for percent in (0, 1, 10, 33.33, 50, 90, 100):
        parse_settings(_with(minimal(), split=gateway_split(canaryPercent=percent, stableReplicas=1,
                                                            canaryReplicas=1)))


def test_no_split_check_no_least_samples() -> None:
    assert parse_settings(_with(minimal(), smoke={"enabled": False, "samples": 10})).smoke.samples == 10
