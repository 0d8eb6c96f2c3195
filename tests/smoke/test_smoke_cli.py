"""End-to-end runs of ``smoke.cli.main`` against real local TGI-protocol servers and a split proxy."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from tests.smoke.cli_args import checks_of, identity
from tests.smoke.servers import BASE_ID, REPO_ROOT, SMALL_ID, RunningServer, SplitProxy

RunCli = Callable[..., tuple[int, str, str]]


STABLE_IDENTITY = identity("stable", "google/flan-t5-small", SMALL_ID)
CANARY_IDENTITY = identity("canary", "google/flan-t5-base", BASE_ID)
MODELS = (*STABLE_IDENTITY, *CANARY_IDENTITY)
"""The tutorial's pair, as the variants must report it."""


def _variant_args(stable: RunningServer, canary: RunningServer, cases: Path) -> list[str]:
    return [
        "--stable-url",
        stable.url,
        "--canary-url",
        canary.url,
        *MODELS,
        "--cases",
        str(cases / "flan-t5-small.yaml"),
        "--cases",
        str(cases / "flan-t5-base.yaml"),
        "--timeout",
        "10",
    ]


def _sampled(proxy: SplitProxy) -> list[str]:
    """Backends chosen for the split samples: the first connection was the traffic /health check."""
    return proxy.choices[1:]


def test_all_good_exits_0_with_every_case_passing_on_both_variants(
    run_cli: RunCli,
    stable_and_canary: tuple[RunningServer, RunningServer],
    split_proxy: Callable[..., SplitProxy],
    shipped_cases: Path,
) -> None:
    stable, canary = stable_and_canary
    proxy = split_proxy(stable, canary, share=0.10, seed=11)

    code, out, err = run_cli(
        *_variant_args(stable, canary, shipped_cases), "--tgi-url", proxy.url, "--canary-percent", "10", "--json"
    )

    assert code == 0, err
    report = json.loads(out)
    assert report["ok"] is True and report["exit_code"] == 0
    names = {(c["target"], c["name"]): c["status"] for c in report["checks"]}
    for target in ("stable", "canary"):
        for name in ("health", "model", "case square-root", "case square-root-compat-route", "case answers-something"):
            assert names[(target, name)] == "pass"
    assert names[("traffic", "split")] == "pass"
    split = report["split"]
    assert split["verdict"] == "consistent" and split["decided_by"] == "sprt"
    sampled = _sampled(proxy)
    assert split["samples"] == len(sampled)  # one new connection per sample, nothing reused
    assert split["canary"] == sampled.count("canary")
    assert split["model_ids"] == {SMALL_ID: sampled.count("stable"), BASE_ID: sampled.count("canary")}
    assert split["ci_low"] <= 0.10 <= split["ci_high"]
    assert "Smoke test run plan" in err and "Smoke test results" in err  # human output moved to stderr


def test_human_output_shows_plan_progress_and_results_table(
    run_cli: RunCli,
    stable_and_canary: tuple[RunningServer, RunningServer],
    shipped_cases: Path,
) -> None:
    stable, canary = stable_and_canary

    code, out, _ = run_cli(*_variant_args(stable, canary, shipped_cases))

    assert code == 0
    plan_at = out.index("Smoke test run plan")
    progress_at = out.index("PASS stable   health")
    results_at = out.index("Smoke test results")
    assert plan_at < progress_at < results_at
    assert "Smoke result OK: 10 of 10 checks passed, 0 failed, 0 skipped" in out


def test_split_expected_10_but_real_50_exits_1_with_the_observed_share(
    run_cli: RunCli,
    stable_and_canary: tuple[RunningServer, RunningServer],
    split_proxy: Callable[..., SplitProxy],
) -> None:
    stable, canary = stable_and_canary
    proxy = split_proxy(stable, canary, share=0.50, seed=3)

    code, out, _ = run_cli(
        "--tgi-url",
        proxy.url,
        "--canary-percent",
        "10",
        *MODELS,
        "--json",
    )

    assert code == 1
    split = json.loads(out)["split"]
    assert split["verdict"] == "off" and split["decided_by"] == "sprt"
    assert split["samples"] < 60  # the sequential test stops early on clear evidence
    assert split["observed"] > 0.3 and split["ci_low"] > 0.10
    detail = checks_of(out)[("traffic", "split")]["detail"]
    assert "expected 10.0%" in detail and "differs from the expected one" in detail


def test_canary_answering_500_exits_1_naming_variant_case_and_status(
    run_cli: RunCli,
    tgi_server: Callable[..., RunningServer],
    shipped_cases: Path,
) -> None:
    stable = tgi_server(SMALL_ID, answers={"x": "0"})
    canary = tgi_server(BASE_ID, generate_status=500)

    code, out, _ = run_cli(*_variant_args(stable, canary, shipped_cases), "--json")

    assert code == 1
    checks = checks_of(out)
    failed = checks[("canary", "case square-root")]
    assert failed["status"] == "fail"
    assert "HTTP 500" in failed["detail"] and "Request failed during generation" in failed["detail"]
    assert f"{canary.url}/generate" in failed["detail"]
    assert checks[("canary", "health")]["status"] == "pass"


def test_wrong_model_id_exits_1_and_skips_that_variants_cases(
    run_cli: RunCli,
    tgi_server: Callable[..., RunningServer],
    shipped_cases: Path,
) -> None:
    stable = tgi_server(SMALL_ID, answers={"x": "0"})
    canary = tgi_server(SMALL_ID.replace("flan-t5-small", "flan-t5-large"))

    code, out, _ = run_cli(*_variant_args(stable, canary, shipped_cases), "--json")

    assert code == 1
    checks = checks_of(out)
    assert checks[("canary", "model")]["status"] == "fail"
    assert "flan-t5-large" in checks[("canary", "model")]["detail"]
    assert "(google/flan-t5-base@7bcac57)" in checks[("canary", "model")]["detail"]
    assert checks[("canary", "case square-root")]["status"] == "skip"


def test_output_mismatch_exits_1_showing_expected_and_generated_text(
    run_cli: RunCli,
    tgi_server: Callable[..., RunningServer],
    shipped_cases: Path,
) -> None:
    stable = tgi_server(SMALL_ID, default_answer="42")

    code, out, _ = run_cli(
        "--stable-url",
        stable.url,
        *STABLE_IDENTITY,
        "--cases",
        str(shipped_cases / "flan-t5-small.yaml"),
        "--json",
    )

    assert code == 1
    checks = checks_of(out)
    detail = checks[("stable", "case square-root")]["detail"]
    assert "expected exact '0', got '42'" in detail
    assert checks[("stable", "case square-root")]["data"]["text"] == "42"
    assert checks[("stable", "case answers-something")]["status"] == "pass"


def test_endpoint_never_up_exits_1_within_the_deadline(run_cli: RunCli, free_port_factory: Callable[[], int]) -> None:
    url = f"http://127.0.0.1:{free_port_factory()}"
    started = time.monotonic()

    code, out, _ = run_cli("--stable-url", url, "--timeout", "2", "--json")

    elapsed = time.monotonic() - started
    assert code == 1
    assert elapsed < 4.0
    detail = checks_of(out)[("stable", "health")]["detail"]
    assert "still unavailable" in detail and "ConnectError" in detail and url in detail


def test_endpoint_that_is_still_starting_is_retried_until_healthy(
    run_cli: RunCli,
    tgi_server: Callable[..., RunningServer],
) -> None:
    stable = tgi_server(SMALL_ID, unhealthy_first=3)

    code, out, _ = run_cli("--stable-url", stable.url, "--stable-model", "flan-t5-small", "--timeout", "20", "--json")

    assert code == 0
    assert stable.behaviour.log.count(("GET", "/health")) == 4


def test_malformed_case_file_exits_2_naming_file_case_and_field(
    run_cli: RunCli,
    tmp_path: Path,
    tgi_server: Callable[..., RunningServer],
) -> None:
    stable = tgi_server(SMALL_ID)
    bad = tmp_path / "bad.yaml"
    bad.write_text(
        textwrap.dedent("""\
        kind: tgi
        model: google/flan-t5-small
        cases:
          - name: two-expectations
            prompt: hello
            expect: {exact: "0", contains: "1"}
        """)
    )

    code, out, err = run_cli("--stable-url", stable.url, "--cases", str(bad))

    assert code == 2
    assert out == ""
    assert f"{bad}: case 'two-expectations' (cases[0]): field 'expect': must name exactly one of" in err
    assert stable.behaviour.log == []  # nothing was contacted


def test_unreadable_case_file_exits_2(run_cli: RunCli, tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"

    code, _, err = run_cli("--stable-url", "http://127.0.0.1:9", "--cases", str(missing))

    assert code == 2
    assert f"{missing}: cannot read case file" in err


def test_canary_0_percent_passes_when_only_stable_answers(
    run_cli: RunCli,
    stable_and_canary: tuple[RunningServer, RunningServer],
    split_proxy: Callable[..., SplitProxy],
) -> None:
    stable, canary = stable_and_canary
    proxy = split_proxy(stable, canary, share=0.0)

    code, out, _ = run_cli(
        "--tgi-url",
        proxy.url,
        "--canary-percent",
        "0",
        *STABLE_IDENTITY,
        "--canary-url",
        canary.url,
        "--json",
    )

    assert code == 0
    report = json.loads(out)
    assert report["split"]["samples"] == 22 and report["split"]["canary"] == 0
    assert checks_of(out)[("canary", "health")]["status"] == "skip"  # 0 % means no canary replicas


def test_canary_0_percent_fails_on_the_first_canary_sample(
    run_cli: RunCli,
    stable_and_canary: tuple[RunningServer, RunningServer],
    split_proxy: Callable[..., SplitProxy],
) -> None:
    stable, canary = stable_and_canary
    proxy = split_proxy(stable, canary, share=0.2, seed=5)

    code, out, _ = run_cli(
        "--tgi-url",
        proxy.url,
        "--canary-percent",
        "0",
        *MODELS,
        "--json",
    )

    assert code == 1
    split = json.loads(out)["split"]
    assert split["verdict"] == "off" and split["canary"] == 1
    assert split["samples"] == _sampled(proxy).index("canary") + 1


def test_canary_100_percent_passes_and_one_stable_sample_fails(
    run_cli: RunCli,
    stable_and_canary: tuple[RunningServer, RunningServer],
    split_proxy: Callable[..., SplitProxy],
) -> None:
    stable, canary = stable_and_canary
    args = [
        "--canary-percent",
        "100",
        *MODELS,
        "--json",
    ]
    all_canary = split_proxy(stable, canary, share=1.0)
    mostly_canary = split_proxy(stable, canary, share=0.9, seed=2)

    good_code, good_out, _ = run_cli("--tgi-url", all_canary.url, *args)
    bad_code, bad_out, _ = run_cli("--tgi-url", mostly_canary.url, *args)

    assert good_code == 0 and json.loads(good_out)["split"]["samples"] == 22
    assert bad_code == 1
    bad_split = json.loads(bad_out)["split"]
    assert bad_split["samples"] - bad_split["canary"] == 1
    assert bad_split["samples"] == _sampled(mostly_canary).index("stable") + 1


def test_unknown_model_through_the_traffic_service_fails_the_split(
    run_cli: RunCli,
    tgi_server: Callable[..., RunningServer],
    split_proxy: Callable[..., SplitProxy],
) -> None:
    stable = tgi_server(SMALL_ID)
    stranger = tgi_server("/mnt/datasets/model-weights/some-other-model/abcdef1")
    proxy = split_proxy(stable, stranger, share=1.0)

    code, out, _ = run_cli(
        "--tgi-url",
        proxy.url,
        "--canary-percent",
        "50",
        "--stable-model",
        "flan-t5-small",
        "--canary-model",
        "flan-t5-base",
        "--json",
    )

    assert code == 1
    detail = checks_of(out)[("traffic", "split")]["detail"]
    assert "sample 1: model_id '/mnt/datasets/model-weights/some-other-model/abcdef1' is neither" in detail


def test_split_learns_model_ids_from_the_variant_urls_when_models_are_not_declared(
    run_cli: RunCli,
    stable_and_canary: tuple[RunningServer, RunningServer],
    split_proxy: Callable[..., SplitProxy],
) -> None:
    stable, canary = stable_and_canary
    proxy = split_proxy(stable, canary, share=0.3, seed=1)

    code, out, _ = run_cli(
        "--tgi-url",
        proxy.url,
        "--canary-percent",
        "30",
        "--stable-url",
        stable.url,
        "--canary-url",
        canary.url,
        "--json",
    )

    assert code == 0
    assert json.loads(out)["split"]["canary"] == _sampled(proxy).count("canary")


def test_usage_errors_exit_2_with_a_message(run_cli: RunCli, shipped_cases: Path) -> None:
    cases = ["--cases", str(shipped_cases)]
    no_target = run_cli()
    percent_without_traffic = run_cli("--stable-url", "http://x", "--canary-percent", "10")
    cannot_recognise = run_cli("--tgi-url", "http://x", "--canary-percent", "10", "--stable-model", "a")
    wrong_v2_model = run_cli("--v2-url", "http://x", "--v2-model", "iris", *cases)

    assert no_target[0] == 2 and "nothing to check" in no_target[2]
    assert percent_without_traffic[0] == 2 and "--canary-percent needs --tgi-url" in percent_without_traffic[2]
    assert cannot_recognise[0] == 2 and "cannot recognise the canary variant" in cannot_recognise[2]
    assert wrong_v2_model[0] == 2 and "no V2 case file is for model 'iris'" in wrong_v2_model[2]
    assert "'mnist-svm'" in wrong_v2_model[2]


def test_runs_as_python_m_smoke_from_a_flat_copy_of_the_package(
    tmp_path: Path,
    tgi_server: Callable[..., RunningServer],
    shipped_cases: Path,
) -> None:
    """The Job ships every package file as one ConfigMap key, so a flat folder must be enough."""
    package = tmp_path / "smoke"
    package.mkdir()
    for source in (REPO_ROOT / "smoke").glob("*.py"):
        shutil.copy(source, package / source.name)
    cases = tmp_path / "cases"
    shutil.copytree(shipped_cases, cases)
    stable = tgi_server(SMALL_ID, answers={"x": "0"}, default_answer="0")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}

    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "smoke",
            "--stable-url",
            stable.url,
            *STABLE_IDENTITY,
            "--cases",
            str(cases),
            "--json",
        ],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )

    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["counts"] == {"pass": 5, "fail": 0, "skip": 0}
    assert any("mnist-svm.yaml" in path for path in report["plan"]["unused_case_files"])
