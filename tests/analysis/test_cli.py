"""End-to-end runs of ``python -m analysis`` against streaming servers on loopback.

The timing-sensitive runs use servers in a child process (:class:`ServerProcess`), so the
client's measurements do not share the GIL with the servers. The loopback rig still adds a few
milliseconds to every request of both variants, which dilutes a relative slowdown (a 40 %
slower server measures as about +30 % here); the tests therefore state their margins.
"""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.analysis.conftest import BASE_ID, SMALL_ID, run_main
from tests.analysis.servers import ServerProcess, tgi_spec
from tests.smoke.servers import SQUARE_ROOT_PROMPT

RunCli = Callable[..., tuple[int, str, str]]
LOAD = (
    "--concurrency",
    "4",
    "--requests",
    "200",
    "--duration",
    "30",
    "--max-new-tokens",
    "6",
    "--bootstrap-resamples",
    "1000",
    "--scrape-interval",
    "0.25",
)
"""200 requests per variant from 4 clients: about 2 s against 30 ms servers. More clients make
the rig's own queueing (two Python processes on a busy machine) dominate the tails."""
LATENCY = dict(ttft_s=0.03, ttft_sigma=0.15, token_s=0.002)
N = 200
FAST = dict(ttft_s=0.004, token_s=0.0005)


@pytest.fixture(scope="module")
def prompts_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("prompts") / "set.jsonl"
    path.write_text(
        '{"name": "weather", "prompt": "Tell me about the weather", "expect": {"non_empty": true}}\n'
        '{"name": "greeting", "prompt": "Say hello politely", "expect": {"non_empty": true}}\n'
    )
    return path


@pytest.fixture(scope="module")
def rollback_run(prompts_file: Path) -> Iterator[tuple[int, dict]]:
    servers = ServerProcess(
        [
            tgi_spec(SMALL_ID, seed=1, **LATENCY),
            tgi_spec(BASE_ID, seed=2, ttft_s=0.042, ttft_sigma=0.15, token_s=0.0028),
        ]
    )
    try:
        code, out, err = run_main(
            "--stable-url",
            servers.urls[0],
            "--canary-url",
            servers.urls[1],
            *LOAD,
            "--prompts",
            str(prompts_file),
            "--max-ttft-p50-regression-pct",
            "10",
            "--max-e2e-p50-regression-pct",
            "10",
            "--json",
        )
        yield code, json.loads(out)
    finally:
        servers.close()


@pytest.fixture(scope="module")
def promote_run(prompts_file: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[int, dict, str, Path]]:
    servers = ServerProcess([tgi_spec(SMALL_ID, seed=1, **LATENCY), tgi_spec(BASE_ID, seed=2, **LATENCY)])
    out_dir = tmp_path_factory.mktemp("report")
    try:
        code, out, err = run_main(
            "--stable-url",
            servers.urls[0],
            "--canary-url",
            servers.urls[1],
            "--traffic-url",
            servers.urls[0],
            *LOAD,
            "--prompts",
            str(prompts_file),
            "--max-ttft-p95-regression-pct",
            "none",
            "--max-e2e-p95-regression-pct",
            "none",
            "--json",
            "--html",
            str(out_dir / "report.html"),
            "--records",
            str(out_dir / "records.jsonl"),
        )
        yield code, json.loads(out), err, out_dir
    finally:
        servers.close()


def load_args(stable: str, canary: str, *, requests: int | str, concurrency: int = 1, duration: int = 5) -> list[str]:
    """The two variants and a closed-loop load bounded by requests and duration."""
    return ["--stable-url", stable, "--canary-url", canary, "--concurrency", str(concurrency),
            "--requests", str(requests), "--duration", str(duration)]


def _rows(report: dict) -> dict[str, dict]:
    return {row["metric"]: row for row in report["comparison"]}


def test_a_canary_40_percent_slower_is_rolled_back_with_exit_1(rollback_run: tuple[int, dict]) -> None:
    """The canary's server is 40 % slower (TTFT and per token); the margin on the medians is 10 %."""
    code, report = rollback_run
    assert (code, report["verdict"], report["exit_code"]) == (1, "ROLLBACK", 1)
    ttft = _rows(report)["TTFT p50"]
    assert ttft["status"] == "fail" and ttft["ci_low"] > 0.10, ttft
    assert report["targets"]["canary"]["ttft_p50"] > report["targets"]["stable"]["ttft_p50"] * 1.2
    assert any(reason.startswith("TTFT p50: regression at least") for reason in report["reasons"])


def test_equal_variants_with_enough_samples_are_promoted_with_exit_0(promote_run: tuple[int, dict, str, Path]) -> None:
    """Same server latencies, default margins on the medians (20 %).

    The p95 rows are informational here: on a busy shared machine the rig's tails are set by a
    few scheduler stalls, so their intervals are honestly wide (HOLD). The p95 rule itself is
    tested on known distributions in test_verdict.py.
    """
    code, report, err, _ = promote_run
    assert (code, report["verdict"]) == (0, "PROMOTE"), (report["reasons"], report["targets"])
    rows = _rows(report)
    for metric in (
        "TTFT p50",
        "end-to-end p50",
        "error rate (canary)",
        "error rate increase",
        "case-pass rate (canary)",
        "case-pass rate drop",
    ):
        assert rows[metric]["status"] == "pass", rows[metric]
    assert rows["TTFT p95"]["status"] == "info" and rows["TTFT p95"]["ci_low"] is not None
    assert rows["TTFT p50"]["ci_low"] <= 0 <= rows["TTFT p50"]["ci_high"]
    assert report["targets"]["stable"]["requests"] == report["targets"]["canary"]["requests"] == N
    assert report["targets"]["canary"]["case_passed"] == N  # non_empty expectations, no model: scored for all


def test_the_traffic_service_runs_in_its_own_phase_and_is_reported(promote_run: tuple[int, dict, str, Path]) -> None:
    _, report, _, _ = promote_run
    assert set(report["phases"]) == {"variants", "traffic"}
    assert report["targets"]["traffic"]["requests"] == N and report["targets"]["traffic"]["ok"] == N
    variants, traffic = report["phases"]["variants"], report["phases"]["traffic"]
    assert traffic["started_at"] >= variants["started_at"] + variants["seconds"] - 0.01


def test_server_metrics_are_reported_beside_the_client_figures(promote_run: tuple[int, dict, str, Path]) -> None:
    _, report, err, _ = promote_run
    stable = {m["name"]: m for m in report["server_metrics"]["stable"]}
    assert stable["tgi_request_count"]["delta"] == N
    assert stable["tgi_request_generated_tokens"]["mean"] == 6
    assert stable["tgi_batch_current_size"]["samples"] >= 1
    # stable also served the traffic phase; its figures are reported for that phase separately
    assert {m["name"]: m for m in report["server_metrics"]["traffic"]}["tgi_request_count"]["delta"] == N
    assert "Server-side metrics over the run" in err and "Canary vs stable" in err and "Client-side figures" in err


def test_human_output_has_progress_bars_tables_and_the_verdict(promote_run: tuple[int, dict, str, Path]) -> None:
    _, _, err, _ = promote_run
    assert re.search(r"stable\s+━+\s+200/200 errors 0", err), err[:2000]
    assert re.search(r"canary\s+━+\s+200/200 errors 0", err)
    assert "Verdict: PROMOTE (exit 0)" in err
    assert re.search(r"│ TTFT p50\s+│ [\d.]+ ms\s+│ [\d.]+ ms\s+│ [+-][\d.]+%\s+│ \[[+-][\d.]+%,", err)


def test_the_html_report_is_self_contained_with_every_chart(promote_run: tuple[int, dict, str, Path]) -> None:
    _, _, _, out_dir = promote_run
    page = (out_dir / "report.html").read_text()
    assert '<span class="verdict">PROMOTE</span>' in page
    for chart in (
        "ttft-cdf",
        "e2e-cdf",
        "ttft-over-time",
        "tokens-per-s-over-time",
        "itl-distribution",
        "errors-by-kind",
    ):
        assert f'id="{chart}"' in page, chart
    assert page.count("Plotly.newPlot(") == 6
    assert not re.search(r"<script[^>]+src=", page), "the report must not load scripts from elsewhere"
    assert len(page) > 3_000_000  # plotly.js itself is inlined


def test_request_records_are_written_as_jsonl(promote_run: tuple[int, dict, str, Path]) -> None:
    _, _, _, out_dir = promote_run
    lines = (out_dir / "records.jsonl").read_text().splitlines()
    assert len(lines) == 3 * N
    first = json.loads(lines[0])
    assert first["target"] == "stable" and first["error"] is None and first["output_tokens"] == 6
    assert first["ttft_s"] > 0.04 * 0.5 and len(first["itl_s"]) == 5


def test_too_few_samples_hold_with_exit_3(run_cli: RunCli, tgi_stream: Callable, prompts_file: Path) -> None:
    stable, canary = tgi_stream(SMALL_ID, **FAST), tgi_stream(BASE_ID, **FAST)
    code, out, _ = run_cli(
        *load_args(stable.url, canary.url, requests=10, concurrency=2, duration=10),
        "--json",
        "--prompts",
        str(prompts_file),
    )
    report = json.loads(out)
    assert (code, report["verdict"]) == (3, "HOLD")
    assert "TTFT p50: too few samples: stable 10, canary 10 successful requests (minSamples 30)" in report["reasons"]


def test_five_percent_errors_on_the_canary_roll_back(run_cli: RunCli, tgi_stream: Callable, prompts_file: Path) -> None:
    stable = tgi_stream(SMALL_ID, **FAST)
    canary = tgi_stream(BASE_ID, error_rate=0.05, error_mode="stream_error", seed=11, **FAST)
    code, out, _ = run_cli(
        *load_args(stable.url, canary.url, requests=300, concurrency=8, duration=30),
        "--max-new-tokens",
        "2",
        "--json",
        "--prompts",
        str(prompts_file),
        "--no-server-metrics",
        "--max-error-rate",
        "0.01",
        "--max-error-rate-increase",
        "0.01",
        "--bootstrap-resamples",
        "200",
    )
    report = json.loads(out)
    injected = canary.behaviour.injected["stream_error"]
    assert report["targets"]["canary"]["errors"] == {"stream_error": injected}
    assert 6 <= injected <= 26  # Binomial(300, 0.05) within about 3 sigma
    rows = _rows(report)
    assert rows["error rate (canary)"]["status"] == "fail" and rows["error rate (canary)"]["ci_low"] > 0.01
    assert rows["error rate increase"]["status"] == "fail"
    assert (code, report["verdict"]) == (1, "ROLLBACK")


def test_shipped_cases_score_each_variant_by_its_own_model(run_cli: RunCli, tgi_stream: Callable) -> None:
    stable = tgi_stream(SMALL_ID, answers={SQUARE_ROOT_PROMPT: "0"}, **FAST)
    canary = tgi_stream(BASE_ID, answers={SQUARE_ROOT_PROMPT: "x = 4 * 2 = 8 x = 16 y = 16 to the power of 2"}, **FAST)
    code, out, _ = run_cli(
        *load_args(stable.url, canary.url, requests=60, concurrency=3, duration=20),
        "--max-new-tokens",
        "32",
        "--json",
        "--bootstrap-resamples",
        "200",
    )
    report = json.loads(out)
    assert report["config"]["targets"]["stable"]["model"] == SMALL_ID  # learned from /info
    assert report["targets"]["stable"]["case_scored"] == 60 and report["targets"]["stable"]["case_passed"] == 60
    assert report["targets"]["canary"]["case_scored"] == 60 and report["targets"]["canary"]["case_passed"] == 60
    assert _rows(report)["case-pass rate (canary)"]["status"] == "pass"


def test_a_tgi_stable_against_an_openai_compatible_canary(
    run_cli: RunCli, tgi_stream: Callable, openai_stream: Callable, prompts_file: Path
) -> None:
    stable = tgi_stream(SMALL_ID, **FAST)
    canary = openai_stream("google/flan-t5-base", **FAST)
    code, out, _ = run_cli(
        "--stable-url",
        stable.url,
        "--canary-url",
        canary.url,
        "--canary-engine",
        "openai",
        "--concurrency",
        "2",
        "--requests",
        "20",
        "--duration",
        "10",
        "--json",
        "--bootstrap-resamples",
        "200",
        "--prompts",
        str(prompts_file),
    )
    report = json.loads(out)
    assert report["config"]["targets"]["canary"] == {
        "url": canary.url,
        "engine": "openai",
        "model": "google/flan-t5-base",
    }  # from /v1/models
    assert report["targets"]["canary"]["ok"] == 20 and report["targets"]["canary"]["output_tokens_mean"] == 8
    names = {m["name"] for m in report["server_metrics"]["canary"]}
    assert {"vllm:request_success", "vllm:e2e_request_latency_seconds"} <= names
    assert code == 3  # 20 requests are fewer than minSamples


def test_a_canary_url_that_never_answers_exits_1_naming_the_flag(run_cli: RunCli, tgi_stream: Callable) -> None:
    stable = tgi_stream(SMALL_ID, **FAST)
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{sock.getsockname()[1]}"
    code, out, err = run_cli(
        *load_args(stable.url, dead, requests=5, concurrency=1, duration=5),
        "--ready-timeout",
        "1",
        "--json",
    )
    assert code == 1
    assert f"error: endpoint not answering: --canary-url {dead}: still unavailable after" in err
    assert "Traceback" not in err
    assert json.loads(out) == {"verdict": None, "exit_code": 1, "error": json.loads(out)["error"]}


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ("--max-error-rate", "1.5"),
            "error: --max-error-rate (analysis.maxErrorRate: must be between 0 and 1, got 1.5)",
        ),
        (("--min-samples", "1"), "error: --min-samples (analysis.minSamples: must be an integer >= 2, got 1)"),
        (("--confidence", "high"), "error: --confidence (analysis.confidence: must be a number, got 'high')"),
        (("--mode", "open"), "error: --mode open needs --rate R"),
        (("--rate", "5"), "error: --rate is for --mode open"),
        (("--requests", "0"), "argument --requests: must be >= 1, got 0"),
    ],
)
def test_bad_usage_exits_2_naming_the_input(run_cli: RunCli, args: tuple[str, ...], message: str) -> None:
    base = [
        "--stable-url",
        "http://127.0.0.1:9",
        "--canary-url",
        "http://127.0.0.1:9",
        "--requests",
        "5",
        "--duration",
        "5",
    ]
    if "--mode" not in args and "--rate" not in args:
        base += ["--concurrency", "1"]
    argv = [*base, *args] if args[0] != "--requests" else [*base[:4], *args, "--duration", "5", "--concurrency", "1"]
    code, _, err = run_cli(*argv)
    assert code == 2
    assert message in err, err
    assert "Traceback" not in err


def test_a_prompt_file_that_is_not_jsonl_exits_2_naming_file_and_line(run_cli: RunCli, tmp_path: Path) -> None:
    path = tmp_path / "prompts.json"
    path.write_text('[\n  {"prompt": "hi"}\n]\n')
    code, _, err = run_cli(
        *load_args("http://127.0.0.1:9", "http://127.0.0.1:9", requests=5, concurrency=1, duration=5),
        "--prompts",
        str(path),
    )
    assert code == 2
    assert f"{path}:1: not a JSON object (JSONL needs one per line)" in err
    assert "Traceback" not in err


def test_the_module_entry_point_prints_help(run_cli: RunCli) -> None:
    code, out, _ = run_cli("--help")
    assert code == 0
    assert "analysis.maxTtftP95RegressionPct" in out and "PROMOTE when every" in out


def test_stack_config_thresholds_are_defaults_the_flags_override(
    run_cli: RunCli, tgi_stream: Callable, prompts_file: Path, tmp_path: Path
) -> None:
    stable, canary = tgi_stream(SMALL_ID, **FAST), tgi_stream(BASE_ID, **FAST)
    config = tmp_path / "config.json"
    config.write_text(
        json.dumps({"llm-ab:analysis": {"objectValue": {"enabled": True, "minSamples": 5, "maxErrorRate": 0.2}}})
    )
    code, out, _ = run_cli(
        *load_args(stable.url, canary.url, requests=3, concurrency=1, duration=5),
        "--json",
        "--prompts",
        str(prompts_file),
        "--stack-config",
        str(config),
        "--max-error-rate",
        "0.3",
    )
    thresholds = json.loads(out)["config"]["thresholds"]
    assert (thresholds["minSamples"], thresholds["maxErrorRate"]) == (5, 0.3)
    assert code == 3


def test_an_unreadable_stack_config_exits_2(run_cli: RunCli, tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text('{"llm-ab:analysis": {"objectValue": {"maxErrorRat": 0.2}}}')
    code, _, err = run_cli(
        *load_args("http://127.0.0.1:9", "http://127.0.0.1:9", requests=3, concurrency=1, duration=5),
        "--stack-config",
        str(config),
    )
    assert code == 2
    assert "error: --stack-config (analysis.maxErrorRat: is not a known threshold" in err


def test_a_sequential_run_stops_at_the_first_decisive_look(prompts_file: Path) -> None:
    """A canary twice as slow is rolled back at look 1 of 3, after a third of the requests."""
    servers = ServerProcess(
        [tgi_spec(SMALL_ID, seed=1, **LATENCY), tgi_spec(BASE_ID, seed=2, ttft_s=0.06, ttft_sigma=0.15, token_s=0.004)]
    )
    try:
        code, out, err = run_main(
            "--stable-url",
            servers.urls[0],
            "--canary-url",
            servers.urls[1],
            *LOAD,
            "--prompts",
            str(prompts_file),
            "--looks",
            "3",
            "--json",
        )
    finally:
        servers.close()
    report = json.loads(out)
    assert (code, report["verdict"]) == (1, "ROLLBACK"), report["reasons"]
    sequential = report["sequential"]
    assert sequential["stopped_at_look"] == 1 and sequential["looks_planned"] == 3
    assert sequential["per_look_confidence"] == pytest.approx(1 - 0.05 / 3)
    assert report["targets"]["canary"]["requests"] == 67  # 200 split 67 + 67 + 66
    assert re.search(r"Look 1/3: stable 67, canary 67 requests, 98\.33% intervals -> ROLLBACK", err)


def _threshold_flags(values: dict[str, float | None]) -> list[str]:
    """``analysis.*`` threshold values (by config key) as the gate passes them to the CLI."""
    from analysis.plan import threshold_flag
    from analysis.thresholds import CONFIG_KEYS

    name = {key: field for field, key in CONFIG_KEYS.items()}
    return [arg for key, value in values.items()
            for arg in (threshold_flag(name[key]), "none" if value is None else f"{value:g}")]


@pytest.fixture(scope="module")
def slow_erring_canary() -> Iterator[ServerProcess]:
    """A canary three times slower than stable (to the first token and between tokens) failing 20 % of requests
    (measured here at about +150 % to +180 % on the medians: the rig's own milliseconds dilute it)."""
    servers = ServerProcess([
        tgi_spec(SMALL_ID, seed=1, ttft_s=0.015, ttft_sigma=0.15, token_s=0.002),
        tgi_spec(BASE_ID, seed=3, ttft_s=0.045, ttft_sigma=0.15, token_s=0.006, error_rate=0.2, error_mode="http_500"),
    ])
    try:
        yield servers
    finally:
        servers.close()


def _gate_run(servers: ServerProcess, prompts_file: Path, thresholds: dict[str, float | None]) -> tuple[int, dict]:
    code, out, _ = run_main("--stable-url", servers.urls[0], "--canary-url", servers.urls[1], *LOAD,
                            "--concurrency", "8", "--bootstrap-resamples", "500", "--no-server-metrics",
                            "--prompts", str(prompts_file), *_threshold_flags(thresholds), "--json")
    return code, json.loads(out)


def test_the_loosest_thresholds_the_stack_accepts_roll_back_a_slow_erring_canary(
        slow_erring_canary: ServerProcess, prompts_file: Path) -> None:
    """Issue 22: at the extremes their ranges allow, the thresholds promoted this canary; at the loosest the stack
    takes without analysis.unsafeThresholds (GATE_LIMITS), its errors and its medians each roll it back."""
    from tests.samples import ISSUE_22_EXTREMES, loosest_gate_thresholds

    code, report = _gate_run(slow_erring_canary, prompts_file, loosest_gate_thresholds())
    rows = _rows(report)
    assert (code, report["verdict"]) == (1, "ROLLBACK"), report["reasons"]
    assert rows["error rate (canary)"]["status"] == "fail" and rows["error rate (canary)"]["ci_low"] > 0.1
    assert rows["error rate increase"]["status"] == "fail"
    assert rows["TTFT p50"]["status"] == "fail" and rows["end-to-end p50"]["status"] == "fail"

    code, report = _gate_run(slow_erring_canary, prompts_file, ISSUE_22_EXTREMES)
    assert (code, report["verdict"]) == (0, "PROMOTE")  # what the stack now refuses without the opt-out
