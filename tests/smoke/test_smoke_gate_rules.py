"""The gate's rules, run as the smoke Job runs them (``smoke.cli.main``) against real loopback servers:
one model on both variants, no pass without inference, the whole identity, the ModelMesh candidate,
the run's budget, and the rollback advice a failure prints."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable
from pathlib import Path

from tests.smoke.servers import BASE_ANSWERS, BASE_ID, REPO_ROOT, SMALL_ID, RunningServer, SplitProxy
from tests.smoke.test_smoke_cli import CANARY_IDENTITY, MODELS, STABLE_IDENTITY, identity

RunCli = Callable[..., tuple[int, str, str]]
ROLLBACK = "make rollback STACK=dev && make up STACK=dev"


def _checks(stdout: str) -> dict[tuple[str, str], dict]:
    return {(c["target"], c["name"]): c for c in json.loads(stdout)["checks"]}


# -- item 2: both variants serve one model (after `make promote`) ---------------------------------


def test_one_model_on_both_variants_passes_with_inference_on_both_and_the_split_skipped(
    run_cli: RunCli, tgi_server: Callable[..., RunningServer], split_proxy: Callable[..., SplitProxy],
    shipped_cases: Path,
) -> None:
    stable = tgi_server(BASE_ID, answers=dict(BASE_ANSWERS))
    canary = tgi_server(BASE_ID, answers=dict(BASE_ANSWERS))
    proxy = split_proxy(stable, canary, share=0.5)
    promoted = identity("stable", "google/flan-t5-base", BASE_ID)

    code, out, err = run_cli(
        "--stable-url", stable.url, "--canary-url", canary.url, *promoted, *CANARY_IDENTITY,
        "--tgi-url", proxy.url, "--canary-percent", "50", "--cases", str(shipped_cases), "--json",
    )

    assert code == 0, err
    checks = _checks(out)
    for variant in ("stable", "canary"):
        assert checks[(variant, "model")]["status"] == "pass"
        assert checks[(variant, "case square-root")]["status"] == "pass"  # inference on both
    split = checks[("traffic", "split")]
    assert split["status"] == "skip"
    assert "both serve google/flan-t5-base@7bcac57" in split["detail"] and "can't tell them apart" in split["detail"]
    assert proxy.choices == ["stable"] or len(proxy.choices) == 1  # only the traffic /health, no split samples


# -- item 3: no inference, no pass ----------------------------------------------------------------


def test_a_model_no_case_file_names_gets_the_built_in_inference(
    run_cli: RunCli, tgi_server: Callable[..., RunningServer], shipped_cases: Path,
) -> None:
    large = "/mnt/datasets/model-weights/flan-t5-large/" + "c" * 40
    answering = tgi_server(large, default_answer="blue")
    broken = tgi_server(large, generate_status=500)
    args = (*identity("stable", "google/flan-t5-large", large), "--cases", str(shipped_cases), "--json")

    good_code, good_out, _ = run_cli("--stable-url", answering.url, *args)
    bad_code, bad_out, _ = run_cli("--stable-url", broken.url, *args)

    assert good_code == 0
    generic = _checks(good_out)[("stable", "case generic-non-empty")]
    assert generic["status"] == "pass" and generic["data"]["text"] == "blue"
    assert "built-in generic case" in generic["detail"]
    assert ("POST", "/generate") in answering.behaviour.log
    assert bad_code == 1  # health and /info alone no longer pass
    assert _checks(bad_out)[("stable", "case generic-non-empty")]["status"] == "fail"


# -- item 4: the whole repo id and the revision ---------------------------------------------------


def test_another_organisation_or_revision_fails_the_model_check(
    run_cli: RunCli, tgi_server: Callable[..., RunningServer],
) -> None:
    attacker = tgi_server("attacker/flan-t5-small", model_sha="0fc9ddf78a1e988dac52e2dac162b0ede4fd74ab")
    other_revision = tgi_server(SMALL_ID.replace("0fc9ddf", "1111111"))
    hub_other_sha = tgi_server("google/flan-t5-small", model_sha="1" * 40)

    results = {
        name: run_cli("--stable-url", server.url, *STABLE_IDENTITY, "--json")
        for name, server in {"org": attacker, "revision": other_revision, "sha": hub_other_sha}.items()
    }
    without_weights = run_cli("--stable-url", attacker.url, "--stable-model", "google/flan-t5-small", "--json")

    for name, (code, out, _) in results.items():
        assert code == 1, name
        assert _checks(out)[("stable", "model")]["status"] == "fail", name
    assert "is not the weights path" in _checks(results["org"][1])[("stable", "model")]["detail"]
    assert without_weights[0] == 1
    assert "the whole repo id must match" in _checks(without_weights[1])[("stable", "model")]["detail"]


# -- item 5: the ModelMesh candidate -------------------------------------------------------------

PREDICT_FIVE = [{"name": "predict", "shape": [1, 1], "datatype": "INT64", "data": [5]}]
PREDICT_SIX = [{"name": "predict", "shape": [1, 1], "datatype": "INT64", "data": [6]}]


def _primary_cases(tmp_path: Path) -> Path:
    path = tmp_path / "backend-0.yaml"
    path.write_text(textwrap.dedent("""\
        kind: v2
        model: backend-0
        cases:
          - name: red-wine-row-1
            inputs:
              - {name: predict, shape: [1, 11], datatype: FP32,
                 data: [7.4, 0.7, 0.0, 1.9, 0.076, 11.0, 34.0, 0.9978, 3.51, 0.56, 9.4]}
            expect:
              outputs: [{name: predict, shape: [1, 1], datatype: INT64, data: [5]}]
        """))
    return path


def test_the_candidate_is_inferred_too_with_the_primarys_inputs(
    run_cli: RunCli, v2_server: Callable[..., RunningServer], tmp_path: Path,
) -> None:
    both = v2_server({"backend-0": PREDICT_FIVE, "backend-1": PREDICT_SIX})
    candidate_missing = v2_server({"backend-0": PREDICT_FIVE})
    args = ("--v2-model", "backend-0", "--v2-model", "backend-1", "--cases", str(_primary_cases(tmp_path)),
            "--timeout", "2", "--json")

    code, out, err = run_cli("--v2-url", both.url, *args)
    bad_code, bad_out, _ = run_cli("--v2-url", candidate_missing.url, *args)

    assert code == 0, err
    checks = _checks(out)
    assert checks[("v2 backend-0", "infer red-wine-row-1")]["status"] == "pass"
    candidate = checks[("v2 backend-1", "infer red-wine-row-1")]
    assert candidate["status"] == "pass" and "shaped as expected" in candidate["detail"]
    assert candidate["data"]["outputs"] == PREDICT_SIX  # another prediction is fine; the shape is checked
    assert both.behaviour.log == ["backend-0", "backend-1"]
    assert bad_code == 1
    assert _checks(bad_out)[("v2 backend-1", "infer red-wine-row-1")]["status"] == "fail"


# -- item 6: the budget ---------------------------------------------------------------------------


def test_the_split_phase_ends_within_the_timeout_and_the_report_says_why(
    run_cli: RunCli, tgi_server: Callable[..., RunningServer], split_proxy: Callable[..., SplitProxy],
) -> None:
    stable = tgi_server(SMALL_ID, info_delay_s=0.15)
    canary = tgi_server(BASE_ID, info_delay_s=0.15)
    proxy = split_proxy(stable, canary, share=0.5, seed=4)
    started = time.monotonic()

    code, out, _ = run_cli("--tgi-url", proxy.url, "--canary-percent", "50", *MODELS, "--samples", "400",
                           "--timeout", "3", "--json")

    elapsed = time.monotonic() - started
    assert code == 1
    assert elapsed < 4.0  # 400 samples at 0.15 s would take a minute
    split = json.loads(out)["split"]
    assert split["verdict"] is None and 5 < split["samples"] < 25
    assert "budget ended after" in _checks(out)[("traffic", "split")]["detail"]


def test_a_request_in_flight_is_cut_at_the_end_of_the_budget(
    run_cli: RunCli, tgi_server: Callable[..., RunningServer],
) -> None:
    hanging = tgi_server(SMALL_ID, info_delay_s=30)
    started = time.monotonic()

    code, out, _ = run_cli("--stable-url", hanging.url, *STABLE_IDENTITY, "--request-timeout", "60",
                           "--timeout", "2", "--json")

    assert code == 1 and time.monotonic() - started < 3.5
    assert _checks(out)[("stable", "model")]["status"] == "fail"


def test_sigterm_at_the_jobs_deadline_still_prints_the_report(tgi_server: Callable[..., RunningServer]) -> None:
    slow = tgi_server(SMALL_ID, info_delay_s=30)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    process = subprocess.Popen(
        [sys.executable, "-m", "smoke", "--stable-url", slow.url, *STABLE_IDENTITY, "--timeout", "60",
         "--rollback-command", ROLLBACK],
        cwd=REPO_ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 20
    while ("GET", "/info") not in slow.behaviour.log and time.monotonic() < deadline:
        time.sleep(0.05)
    process.send_signal(signal.SIGTERM)
    out, err = process.communicate(timeout=20)

    assert process.returncode == 1, err
    assert "Smoke test results" in out
    assert "stopped by SIGTERM" in out
    assert ROLLBACK in out


# -- item 7: what a failure leaves serving, and the rollback command ------------------------------


def test_a_failed_gate_prints_what_still_serves_and_the_rollback_command(
    run_cli: RunCli, tgi_server: Callable[..., RunningServer], shipped_cases: Path,
) -> None:
    stable = tgi_server(SMALL_ID, answers={"x": "0"}, default_answer="0")
    canary = tgi_server(BASE_ID, generate_status=500)
    args = ("--stable-url", stable.url, "--canary-url", canary.url, *MODELS, "--cases", str(shipped_cases),
            "--rollback-command", ROLLBACK)

    code, human, _ = run_cli(*args)
    json_code, out, _ = run_cli(*args, "--json")
    ok_code, ok_out, _ = run_cli("--stable-url", stable.url, *STABLE_IDENTITY, "--rollback-command", ROLLBACK,
                                 "--json")

    assert code == json_code == 1
    assert "Nothing was rolled back" in human
    assert f"To send every request to stable (and drop the ModelMesh candidate): {ROLLBACK}" in human
    assert human.rstrip().endswith(ROLLBACK)  # the last thing in the Job's log
    advice = json.loads(out)["advice"]
    assert any(ROLLBACK in line for line in advice)
    assert not any("stable variant failed" in line for line in advice)  # only the canary failed
    assert ok_code == 0 and json.loads(ok_out)["advice"] == []


def test_a_failed_stable_says_rolling_back_the_canary_does_not_fix_it(
    run_cli: RunCli, tgi_server: Callable[..., RunningServer],
) -> None:
    stable = tgi_server(SMALL_ID, generate_status=500)

    code, out, _ = run_cli("--stable-url", stable.url, *STABLE_IDENTITY, "--rollback-command", ROLLBACK, "--json")

    assert code == 1
    assert any("rolling back the canary does not fix it" in line for line in json.loads(out)["advice"])
