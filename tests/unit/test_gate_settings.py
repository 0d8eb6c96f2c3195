"""Settings that would switch a gate off are refused at preview, naming the key, the value and what is allowed."""

from __future__ import annotations

import pytest

from analysis.thresholds import CONFIG_KEYS, GATE_LIMITS, Thresholds, past_gate_limits
from smoke.power import min_samples
from stacks.config_types import ConfigError
from stacks.settings import SmokeSettings, parse_settings
from tests.samples import ISSUE_22_EXTREMES, gateway_split, loosest_gate_thresholds, minimal


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


# -- a variant's model must have case files: the generic case passes any non-empty text --------------------------


def _models(stable: str, canary: str) -> dict:
    raw = minimal()
    raw["models"]["stable"]["id"], raw["models"]["canary"]["id"] = stable, canary
    return raw


def test_a_canary_no_case_file_names_is_refused_naming_it_its_model_and_what_the_cases_name() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(_models("google/flan-t5-small", "google/flan-t5-large"))
    message = str(err.value)
    assert err.value.key == "smoke.cases"
    assert message.startswith("llm-ab:smoke.cases names no case file for the canary's model google/flan-t5-large "
                              "(models.canary.id): the gates would check it only with the built-in generic case, "
                              "which any non-empty text passes. The listed files name google/flan-t5-small, "
                              "google/flan-t5-base. ")
    assert "the repository's are under smoke/cases/" in message and "smoke.allowGenericCases: true" in message
    assert message.endswith("got ['smoke/cases/flan-t5-small.yaml', 'smoke/cases/flan-t5-base.yaml']")


def test_a_case_file_in_the_repository_that_names_the_model_is_suggested() -> None:
    with pytest.raises(ConfigError) as err:
        parse_settings(_models("Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct"))
    message = str(err.value)
    assert ("for the stable's model Qwen/Qwen2.5-0.5B-Instruct (models.stable.id) nor the canary's model "
            "Qwen/Qwen2.5-1.5B-Instruct (models.canary.id): the gates would check them only") in message
    assert ("smoke/cases/dev-vllm/qwen2.5-1.5b-instruct.yaml names Qwen/Qwen2.5-1.5B-Instruct: list it in "
            "smoke.cases") in message


def test_a_case_file_without_a_model_names_none() -> None:
    """It runs on every variant, but is no evidence about a model: the canary would still pass on any text."""
    from smoke.cases import files_naming, load_case_file
    from tests.harness import ROOT

    anonymous = load_case_file(ROOT / "smoke/cases/flan-t5-small.yaml")
    anonymous = type(anonymous)(path=anonymous.path, model=None, cases=anonymous.cases)
    assert files_naming([anonymous], "google/flan-t5-small") == []
    assert files_naming([load_case_file(ROOT / "smoke/cases/flan-t5-small.yaml")], "google/flan-t5-small")
    assert not files_naming([load_case_file(ROOT / "smoke/cases/flan-t5-small.yaml")], "attacker/flan-t5-small")


def test_the_opt_out_accepts_the_generic_case_and_says_so_in_every_preview() -> None:
    from stacks.settings import preview_warnings

    raw = _models("google/flan-t5-small", "google/flan-t5-large")
    settings = parse_settings({**raw, "smoke": {"allowGenericCases": True}})
    assert preview_warnings(settings) == [
        "llm-ab:smoke.allowGenericCases is true and no case file in smoke.cases names the canary's model "
        "google/flan-t5-large: the gates check it only with the built-in generic case (any non-empty text passes) "
        "and the analysis scores no golden case for it"]
    assert preview_warnings(parse_settings({**minimal(), "smoke": {"allowGenericCases": True}})) == []


@pytest.mark.parametrize(("smoke", "analysis", "refused"), [
    (True, False, True), (False, True, True), (False, False, False)])
def test_only_a_stack_whose_gates_run_the_cases_needs_them(smoke: bool, analysis: bool, refused: bool) -> None:
    raw = {**_models("google/flan-t5-small", "google/flan-t5-large"), "smoke": {"enabled": smoke},
           "analysis": {"enabled": analysis}}
    if refused:
        with pytest.raises(ConfigError, match="smoke.cases names no case file for the canary's model"):
            parse_settings(raw)
    else:
        assert parse_settings(raw).generic_case_variants == {}


# -- thresholds may not switch a row of the analysis gate off ------------------------------------------------------


def _analysis(**values: object) -> dict:
    return {**minimal(), "analysis": {"enabled": True, **values}}


def _one_step_past(limit) -> object:
    if limit.required:
        return None
    return limit.limit - 0.01 if limit.at_least else limit.limit + (1 if limit.name.endswith("_pct") else 0.01)


@pytest.mark.parametrize("limit", GATE_LIMITS, ids=lambda limit: CONFIG_KEYS[limit.name])
def test_a_threshold_past_its_gate_limit_is_refused_naming_key_value_and_range(limit) -> None:
    key, value = CONFIG_KEYS[limit.name], _one_step_past(limit)
    with pytest.raises(ConfigError) as err:
        parse_settings(_analysis(**{key: value}))
    low, high = (limit.limit, 1) if limit.at_least else (0, limit.limit)
    assert err.value.key == f"analysis.{key}"
    assert f"from {low:g} to {high:g}" in err.value.message
    assert err.value.message.endswith(f"got {'none' if value is None else f'{value:g}'}")
    assert "analysis.unsafeThresholds: true allows it" in err.value.message


def test_the_issues_extremes_are_refused_and_the_loosest_allowed_thresholds_load() -> None:
    with pytest.raises(ConfigError, match=r"^llm-ab:analysis\.maxTtftP50RegressionPct must be set, from 0 to 100, "):
        parse_settings(_analysis(**ISSUE_22_EXTREMES))
    for key, value in ISSUE_22_EXTREMES.items():
        refused = key not in {"maxTtftP95RegressionPct", "maxE2eP95RegressionPct", "maxItlP50RegressionPct",
                              "maxTokensPerSecondDropPct"}  # those may be none: the medians still decide
        if refused:
            with pytest.raises(ConfigError, match=f"analysis.{key}"):
                parse_settings(_analysis(**{key: value}))
    loosest = parse_settings(_analysis(**loosest_gate_thresholds())).analysis.thresholds
    assert past_gate_limits(loosest) == []
    assert past_gate_limits(Thresholds()) == []  # the defaults are well inside


def test_the_unsafe_opt_out_takes_the_extremes_and_warns_about_each_in_every_preview() -> None:
    from stacks.settings import preview_warnings

    settings = parse_settings(_analysis(unsafeThresholds=True, **ISSUE_22_EXTREMES))
    assert settings.analysis.thresholds.max_error_rate == 1.0
    warnings = preview_warnings(settings)
    assert len(warnings) == 6
    assert ("llm-ab:analysis.unsafeThresholds is true and llm-ab:analysis.maxErrorRate is 1, past the gate's limit "
            "of 0.1: a canary failing more than one request in ten could be promoted") in warnings
    assert ("llm-ab:analysis.unsafeThresholds is true and llm-ab:analysis.maxE2eP50RegressionPct is none, past the "
            "gate's limit of 100: a canary more than twice as slow end to end could be promoted") in warnings
    assert preview_warnings(parse_settings(_analysis(unsafeThresholds=True))) == []
