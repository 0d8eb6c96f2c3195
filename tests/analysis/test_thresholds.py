"""The thresholds object: defaults, validation naming the analysis.* key, building from stack config."""

from __future__ import annotations

import pytest

from analysis.thresholds import (
    CONFIG_KEYS,
    ThresholdError,
    Thresholds,
    analysis_object_from_pulumi_json,
    thresholds_from_config,
)


def test_defaults_are_valid_and_keyed_by_config_key() -> None:
    values = Thresholds().to_dict()
    assert set(values) == set(CONFIG_KEYS.values())
    assert values["maxTtftP95RegressionPct"] == 30.0
    assert values["minSamples"] == 30
    assert values["maxItlP50RegressionPct"] is None  # informational by default


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("max_ttft_p50_regression_pct", -1.0, "analysis.maxTtftP50RegressionPct: must be between 0 and 1000, got -1"),
        ("max_e2e_p95_regression_pct", float("nan"), "analysis.maxE2eP95RegressionPct: must be a number"),
        ("max_error_rate", 1.5, "analysis.maxErrorRate: must be between 0 and 1, got 1.5"),
        ("min_case_pass_rate", "high", "analysis.minCasePassRate: must be a number between 0 and 1, got 'high'"),
        ("max_error_rate", None, "analysis.maxErrorRate: must be a number between 0 and 1, got None"),
        ("min_samples", 1, "analysis.minSamples: must be an integer >= 2, got 1"),
        ("min_samples", 30.5, "analysis.minSamples: must be an integer >= 2, got 30.5"),
        ("min_samples", True, "analysis.minSamples: must be an integer >= 2, got True"),
        ("confidence", 0.9999, "analysis.confidence: must be between 0.5 and 0.999, got 0.9999"),
        ("max_tokens_per_s_drop_pct", 150.0, "analysis.maxTokensPerSecondDropPct: must be between 0 and 100"),
    ],
)
def test_out_of_range_threshold_names_its_config_key(field: str, value: object, message: str) -> None:
    with pytest.raises(ThresholdError) as caught:
        Thresholds(**{field: value})  # type: ignore[arg-type]
    assert str(caught.value).startswith(message)
    assert caught.value.key == CONFIG_KEYS[field]


def test_from_config_accepts_prefixed_keys_and_pulumi_strings() -> None:
    thresholds = thresholds_from_config(
        {
            "analysis.maxTtftP95RegressionPct": "15",
            "maxErrorRate": 0.01,
            "analysis.minSamples": "50",
            "analysis.maxE2eP50RegressionPct": "none",
        }
    )
    assert thresholds.max_ttft_p95_regression_pct == 15.0
    assert thresholds.max_error_rate == 0.01
    assert thresholds.min_samples == 50
    assert thresholds.max_e2e_p50_regression_pct is None
    assert thresholds.max_ttft_p50_regression_pct == Thresholds().max_ttft_p50_regression_pct


def test_from_config_rejects_an_unknown_key_listing_the_known_ones() -> None:
    with pytest.raises(
        ThresholdError, match=r"analysis\.maxErrorRat: is not a known threshold \(known: .*maxErrorRate"
    ):
        thresholds_from_config({"analysis.maxErrorRat": 0.1})


def test_from_config_rejects_a_non_numeric_string() -> None:
    with pytest.raises(ThresholdError, match=r"analysis\.minSamples: must be an integer, got '30\.5'"):
        thresholds_from_config({"minSamples": "30.5"})
    with pytest.raises(ThresholdError, match=r"analysis\.confidence: must be a number, got 'high'"):
        thresholds_from_config({"confidence": "high"})
    with pytest.raises(ThresholdError, match=r"analysis\.minSamples: must be an integer, got 'many'"):
        thresholds_from_config({"minSamples": "many"})


def test_the_analysis_object_of_pulumi_config_json_is_read() -> None:
    document = {
        "llm-ab:namespace": {"value": "llm-ab-dev", "secret": False},
        "llm-ab:analysis": {
            "value": '{"enabled":false,"maxErrorRate":0.01,"minSamples":100}',
            "objectValue": {"enabled": False, "maxErrorRate": 0.01, "minSamples": 100},
            "secret": False,
        },
    }
    values = analysis_object_from_pulumi_json(document)
    assert values == {"enabled": False, "maxErrorRate": 0.01, "minSamples": 100}
    thresholds = thresholds_from_config(values, other_keys=("enabled",))
    assert (thresholds.max_error_rate, thresholds.min_samples) == (0.01, 100)


def test_flat_analysis_keys_and_value_only_entries_are_read() -> None:
    document = {"llm-ab:analysis.confidence": {"value": "0.9"}, "llm-ab:analysis": {"value": '{"minSamples": 40}'}}
    assert analysis_object_from_pulumi_json(document) == {"confidence": "0.9", "minSamples": 40}


def test_an_analysis_setting_that_is_not_an_object_is_named() -> None:
    with pytest.raises(ThresholdError, match=r"analysis\.\(object\): must be an object of settings, got 3"):
        analysis_object_from_pulumi_json({"llm-ab:analysis": {"value": "3"}})
