"""The gate's plan: its command line, HOLD that passes, and the one time bound the Job's deadline uses."""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from analysis.cli import STACK_ONLY_KEYS, build_parser
from analysis.plan import (
    HOLD_PASSES,
    INSTALL_MARGIN_S,
    JOB_SETTING_KEYS,
    AnalysisPlan,
    Target,
    run_bound_seconds,
)
from analysis.thresholds import CONFIG_KEYS, Thresholds
from tests.analysis.conftest import BASE_ID, SMALL_ID

RunCli = Callable[..., tuple[int, str, str]]
FAST = dict(ttft_s=0.004, token_s=0.0005)


@pytest.fixture
def prompts_file(tmp_path: Path) -> Path:
    path = tmp_path / "set.jsonl"
    path.write_text('{"name": "weather", "prompt": "Tell me about the weather", "expect": {"non_empty": true}}\n')
    return path


def test_the_stack_only_keys_are_the_settings_job_keys_and_no_threshold() -> None:
    from stacks.analysis_settings import AnalysisJobSettings, AnalysisSettings

    assert STACK_ONLY_KEYS == JOB_SETTING_KEYS
    assert set(AnalysisJobSettings.keys()) == set(JOB_SETTING_KEYS)
    assert set(AnalysisSettings.keys()) == set(JOB_SETTING_KEYS) | set(CONFIG_KEYS.values())
    assert not set(JOB_SETTING_KEYS) & set(CONFIG_KEYS.values())


def test_the_bound_adds_preflight_both_phases_scrapes_and_the_analysis() -> None:
    assert run_bound_seconds(duration_s=300, request_timeout_s=60, ready_timeout_s=120, targets=2,
                             traffic_phase=False) == 2 * (120 + 20) + (300 + 60 + 15) + 60
    assert run_bound_seconds(duration_s=300, request_timeout_s=60, ready_timeout_s=120, targets=3,
                             traffic_phase=True, looks=4) == 3 * (120 + 20) + (300 + 60 + 4 * 15) + (300 + 60 + 15) + 60
    assert run_bound_seconds(duration_s=10, request_timeout_s=1, ready_timeout_s=1, targets=2, traffic_phase=False,
                             scrape_metrics=False) == 2 * 21 + 11 + 60


def test_the_job_deadline_is_the_install_then_the_bound() -> None:
    plan = AnalysisPlan(stable=Target(url="http://s:8080", model="a"), canary=Target(url="http://c:8080", model="b"),
                        duration_s=120, request_timeout_s=30, ready_timeout_s=60)
    assert plan.deadline_seconds() == INSTALL_MARGIN_S + plan.run_bound_seconds()
    assert plan.run_bound_seconds() == run_bound_seconds(duration_s=120, request_timeout_s=30, ready_timeout_s=60,
                                                         targets=2, traffic_phase=False)


def test_every_threshold_travels_as_its_flag() -> None:
    thresholds = Thresholds(max_ttft_p50_regression_pct=12.5, max_itl_p50_regression_pct=None, min_samples=40)
    plan = AnalysisPlan(stable=Target(url="http://s:8080", model="a"), canary=Target(url="http://c:8080", model="b"),
                        thresholds=thresholds, fail_on_hold=True)
    args = build_parser().parse_args(plan.to_argv())
    assert (args.max_ttft_p50_regression_pct, args.max_itl_p50_regression_pct, args.min_samples) == (
        "12.5", "none", "40")
    assert args.hold_passes is False


def test_hold_passes_exits_0_and_still_prints_hold(run_cli: RunCli, tgi_stream: Callable, prompts_file: Path) -> None:
    stable, canary = tgi_stream(SMALL_ID, **FAST), tgi_stream(BASE_ID, **FAST)
    args = ["--stable-url", stable.url, "--canary-url", canary.url, "--concurrency", "2", "--requests", "10",
            "--duration", "10", "--prompts", str(prompts_file), "--bootstrap-resamples", "200"]
    code, out, _ = run_cli(*args)
    assert code == 3 and "Verdict: HOLD (exit 3)" in out
    code, out, _ = run_cli(*args, HOLD_PASSES)
    assert code == 0
    assert "Verdict: HOLD (exit 3)" in out and f"HOLD does not fail this run ({HOLD_PASSES}): exit 0" in out


def test_hold_passes_does_not_pass_a_rollback(run_cli: RunCli, tgi_stream: Callable, prompts_file: Path) -> None:
    stable = tgi_stream(SMALL_ID, **FAST)
    canary = tgi_stream(BASE_ID, error_rate=1.0, error_mode="http_500", **FAST)
    code, out, _ = run_cli("--stable-url", stable.url, "--canary-url", canary.url, "--concurrency", "2",
                           "--requests", "20", "--duration", "10", "--prompts", str(prompts_file),
                           "--bootstrap-resamples", "200", "--json", HOLD_PASSES)
    assert (code, json.loads(out)["verdict"]) == (1, "ROLLBACK")


def test_a_run_that_hangs_ends_inside_its_bound(run_cli: RunCli, tgi_stream: Callable, prompts_file: Path) -> None:
    """Every request hangs until the request timeout: the run still ends inside the bound the Job's
    deadline is made of, and says what happened."""
    stable = tgi_stream(SMALL_ID, **FAST)
    canary = tgi_stream(BASE_ID, error_rate=1.0, error_mode="hang", **FAST)
    started = time.monotonic()
    code, out, _ = run_cli("--stable-url", stable.url, "--canary-url", canary.url, "--concurrency", "2",
                           "--requests", "50", "--duration", "3", "--request-timeout", "1", "--ready-timeout", "2",
                           "--prompts", str(prompts_file), "--bootstrap-resamples", "200", "--json")
    elapsed = time.monotonic() - started
    report = json.loads(out)
    bound = report["config"]["run_bound_s"]
    assert bound == run_bound_seconds(duration_s=3, request_timeout_s=1, ready_timeout_s=2, targets=2,
                                      traffic_phase=False)
    assert 3 <= elapsed < bound
    assert report["targets"]["canary"]["errors"]["timeout"] >= 2
    assert code == 1


def test_the_plan_shows_the_bound(run_cli: RunCli, tgi_stream: Callable, prompts_file: Path) -> None:
    stable, canary = tgi_stream(SMALL_ID, **FAST), tgi_stream(BASE_ID, **FAST)
    _, out, _ = run_cli("--stable-url", stable.url, "--canary-url", canary.url, "--concurrency", "1",
                        "--requests", "3", "--duration", "7", "--request-timeout", "2", "--ready-timeout", "4",
                        "--prompts", str(prompts_file), "--bootstrap-resamples", "100")
    bound = run_bound_seconds(duration_s=7, request_timeout_s=2, ready_timeout_s=4, targets=2, traffic_phase=False)
    assert f"Time bound: at most {bound} s from the start, pre-flight included" in out


def test_every_serving_api_is_one_the_cli_speaks() -> None:
    from analysis.engines import ENGINES
    from components.engines import APIS

    assert set(APIS) <= set(ENGINES)
    assert build_parser().parse_args(["--stable-url", "http://a", "--canary-url", "http://b", "--requests", "2",
                                      "--duration", "1", "--canary-engine", APIS[-1]]).canary_engine == APIS[-1]
