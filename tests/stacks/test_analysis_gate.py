"""The in-cluster analysis gate: off in dev, after the smoke Job, the stack's thresholds as flags, re-run on change."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from analysis.cli import build_parser, thresholds_from_args
from analysis.plan import HOLD_PASSES, INSTALL_MARGIN_S, run_bound_seconds
from components.analysis_job import ANALYSIS_MOUNT, CASES_MOUNT, SMOKE_MOUNT, shipped_files
from components.gate_job import DIGEST_LABEL
from stacks import outputs as OUT
from stacks.gates import analysis_plan
from stacks.settings import parse_settings
from tests.harness import raw_config
from tests.samples import dev_config, gateway_split


def with_analysis(**analysis: Any) -> dict[str, Any]:
    config = copy.deepcopy(dev_config())
    config["llm-ab:analysis"] = {"enabled": True, **analysis}
    return config


def analysis_job(mocks):
    (job,) = [r for r in mocks.of_type("kubernetes:batch/v1:Job") if r.name == "analysis-job"]
    return job


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def container(job) -> dict[str, Any]:
    return job.inputs["spec"]["template"]["spec"]["containers"][0]


def test_dev_runs_no_analysis(run_main, pulumi_mocks) -> None:
    outputs = run_main(dev_config())
    assert not [r for r in pulumi_mocks.resources if r.name.startswith("analysis")]
    assert OUT.ANALYSIS not in outputs


def test_the_job_runs_after_the_smoke_job_with_the_stack_settings(run_main, pulumi_mocks, resolve) -> None:
    outputs = run_main(with_analysis(requests=200, concurrency=8, durationSeconds=120, maxErrorRate="0.01",
                                     maxTtftP95RegressionPct="none", minSamples=50))
    job = analysis_job(pulumi_mocks)
    assert pulumi_mocks.depends_on("analysis-job") == {"smoke", "tgi-stable", "tgi-canary", "traffic"}
    spec = job.inputs["spec"]
    assert spec["backoffLimit"] == 0 and spec["template"]["spec"]["restartPolicy"] == "Never"
    args = container(job)["args"]
    assert flag(args, "--stable-url") == "http://text-generation-inference-stable.llm-ab-dev.svc.cluster.local:8080"
    assert flag(args, "--canary-url") == "http://text-generation-inference-canary.llm-ab-dev.svc.cluster.local:8080"
    assert (flag(args, "--stable-model"), flag(args, "--canary-model")) == ("google/flan-t5-small",
                                                                             "google/flan-t5-base")
    assert (flag(args, "--requests"), flag(args, "--concurrency"), flag(args, "--duration")) == ("200", "8", "120")
    assert flag(args, "--max-error-rate") == "0.01"
    assert flag(args, "--max-ttft-p95-regression-pct") == "none"
    assert flag(args, "--min-samples") == "50"
    assert HOLD_PASSES in args  # failOnHold is off: HOLD does not fail the update
    assert [b for a, b in zip(args, args[1:], strict=False) if a == "--cases"] == [
        f"{CASES_MOUNT}/flan-t5-small.yaml", f"{CASES_MOUNT}/flan-t5-base.yaml"]
    assert "--traffic-url" not in args
    assert spec["activeDeadlineSeconds"] == INSTALL_MARGIN_S + run_bound_seconds(
        duration_s=120, request_timeout_s=60, ready_timeout_s=120, targets=2, traffic_phase=False)
    assert pulumi_mocks.options["analysis-job"].custom_timeouts.create == f"{int(spec['activeDeadlineSeconds']) + 300}s"
    out = resolve(outputs[OUT.ANALYSIS])
    digest = job.inputs["metadata"]["labels"][DIGEST_LABEL]
    assert job.inputs["metadata"]["name"] == out["job"] == f"analysis-{digest}"  # named before it exists
    assert out["logs"] == f"kubectl -n llm-ab-dev logs job/analysis-{digest}"
    assert out["failsOn"] == "ROLLBACK" and out["deadlineSeconds"] == spec["activeDeadlineSeconds"]


def test_both_packages_and_the_cases_are_mounted_read_only(run_main, pulumi_mocks) -> None:
    run_main(with_analysis())
    job = analysis_job(pulumi_mocks)
    mounts = {m["mountPath"]: m for m in container(job)["volumeMounts"]}
    assert all(mounts[p]["readOnly"] for p in (ANALYSIS_MOUNT, SMOKE_MOUNT, CASES_MOUNT))
    assert pulumi_mocks.named("analysis-analysis").inputs["data"] == shipped_files()["analysis"]
    assert pulumi_mocks.named("analysis-smoke").inputs["data"] == shipped_files()["smoke"]
    assert set(pulumi_mocks.named("analysis-cases").inputs["data"]) == {"flan-t5-small.yaml", "flan-t5-base.yaml"}
    command = " ".join(container(job)["command"])
    assert f"-r {ANALYSIS_MOUNT}/requirements.lock" in command and "PYTHONPATH=/tmp/deps:/opt/analysis" in command
    assert "--require-hashes" in command
    # analysis/requirements.lock holds smoke's pins too (hash-locked, flat: components/joblock.py).
    assert "scipy==" in shipped_files()["analysis"]["requirements.lock"]
    security = container(job)["securityContext"]
    assert security["readOnlyRootFilesystem"] and security["capabilities"] == {"drop": ["ALL"]}
    assert job.inputs["spec"]["template"]["spec"]["securityContext"]["runAsNonRoot"] is True


def test_fail_on_hold_drops_the_hold_pass(run_main, pulumi_mocks, resolve) -> None:
    outputs = run_main(with_analysis(failOnHold=True))
    assert HOLD_PASSES not in container(analysis_job(pulumi_mocks))["args"]
    assert resolve(outputs[OUT.ANALYSIS])["failsOn"] == "ROLLBACK or HOLD"


def test_a_variant_with_no_replicas_skips_the_analysis_and_says_why(run_main, pulumi_mocks, resolve) -> None:
    config = with_analysis()
    config["llm-ab:split"] = {"canaryPercent": 0, "replicas": 2}
    outputs = run_main(config)
    assert not [r for r in pulumi_mocks.resources if r.name.startswith("analysis")]
    assert resolve(outputs[OUT.ANALYSIS]) == {"skipped": "canary has 0 replicas (split.canaryPercent 0): "
                                                         "there is nothing to compare, so no analysis Job runs"}


def test_a_gateway_variant_with_no_replicas_skips_the_analysis_naming_the_replica_keys(
        run_main, pulumi_mocks, resolve) -> None:
    config = with_analysis()
    config["llm-ab:split"] = gateway_split(canaryPercent=0, canaryReplicas=0)
    del config["llm-ab:split"]["canaryHeader"]  # it would route to no replica
    outputs = run_main(config)
    assert not [r for r in pulumi_mocks.resources if r.name.startswith("analysis")]
    assert resolve(outputs[OUT.ANALYSIS]) == {
        "skipped": "canary has 0 replicas (split.stableReplicas + split.canaryReplicas): there is nothing to "
                   "compare, so no analysis Job runs"}


def test_the_analysis_runs_without_the_smoke_gate_after_the_serving_resources(run_main, pulumi_mocks) -> None:
    config = with_analysis()
    config["llm-ab:smoke"] = {"enabled": False}
    run_main(config)
    assert pulumi_mocks.depends_on("analysis-job") == {"tgi-stable", "tgi-canary", "traffic"}


def _digest(run_main, pulumi_mocks, config: dict[str, Any]) -> str:
    pulumi_mocks.resources.clear()
    run_main(config)
    job = analysis_job(pulumi_mocks)
    assert job.inputs["spec"]["template"]["metadata"]["labels"][DIGEST_LABEL] == \
        job.inputs["metadata"]["labels"][DIGEST_LABEL]
    return job.inputs["metadata"]["labels"][DIGEST_LABEL]


def _set(config: dict[str, Any], path: str, value: Any) -> dict[str, Any]:
    changed = copy.deepcopy(config)
    key, *rest = path.split(".")
    node = changed.setdefault(f"llm-ab:{key}", {})
    for part in rest[:-1]:
        node = node.setdefault(part, {})
    node[rest[-1]] = value
    return changed


@pytest.mark.parametrize(("path", "value"), [
    ("models.canary.revision", "c" * 40),
    ("models.stable.id", "google/flan-t5-base"),  # a model a case file names (else refused)
    ("tgi.image", "ghcr.io/huggingface/text-generation-inference:1.4.0"),
    ("tgi.maxTotalTokens", 2048),
    ("split.replicas", 4),
    ("analysis.maxErrorRate", 0.02),
    ("analysis.requests", 300),
    ("analysis.image", "python:3.12.8-slim-bookworm"),
])
def test_what_changes_the_measurement_changes_the_digest(run_main, pulumi_mocks, path, value) -> None:
    base = with_analysis()
    base["llm-ab:split"] = {"canaryPercent": 50, "replicas": 2, "tolerance": 5}
    assert _digest(run_main, pulumi_mocks, base) != _digest(run_main, pulumi_mocks, _set(base, path, value))


def test_a_change_to_a_shipped_file_changes_the_digest() -> None:
    from components import analysis_job

    plan = analysis_plan(parse_settings(raw_config(with_analysis())))
    args = analysis_job.job_args(plan, {"flan-t5-small.yaml": "x"})
    files = analysis_job.shipped_files()
    before = analysis_job.analysis_digest(args, files, {}, "python:3.11.11-slim-bookworm")
    files["analysis"]["verdict.py"] += "\n# changed\n"
    assert analysis_job.analysis_digest(args, files, {}, "python:3.11.11-slim-bookworm") != before


def test_the_cli_reads_back_every_flag_the_plan_writes() -> None:
    settings = parse_settings(raw_config(with_analysis(
        mode="open", rate=2.5, includeTraffic=True, looks=4, maxNewTokens=16, failOnHold=True,
        maxItlP50RegressionPct=50, confidence=0.9)))
    plan = analysis_plan(settings)
    args = build_parser().parse_args(plan.to_argv())
    assert (args.stable_url, args.stable_model) == (plan.stable.url, plan.stable.model)
    assert (args.canary_url, args.canary_model) == (plan.canary.url, plan.canary.model)
    assert args.traffic_url == "http://text-generation-inference.llm-ab-dev.svc.cluster.local:8080"
    assert (args.mode, args.rate, args.concurrency, args.requests, args.duration) == ("open", 2.5, None, 400, 300.0)
    assert (args.request_timeout, args.ready_timeout, args.looks, args.max_new_tokens) == (60.0, 120.0, 4, 16)
    assert args.cases == ["smoke/cases/flan-t5-small.yaml", "smoke/cases/flan-t5-base.yaml"]
    assert args.hold_passes is False
    assert (args.stable_engine, args.canary_engine) == ("tgi", "tgi")  # each variant's engine's API
    assert thresholds_from_args(args) == settings.analysis.thresholds
    assert plan.deadline_seconds() == INSTALL_MARGIN_S + run_bound_seconds(
        duration_s=300, request_timeout_s=60, ready_timeout_s=120, targets=3, traffic_phase=True, looks=4)


def test_make_analyze_runs_the_gates_plan_against_local_urls(tmp_path) -> None:
    from stacks import analyze

    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n"
        "  llm-ab:namespace: llm-ab-dev\n"
        "  llm-ab:models:\n"
        "    stable: {id: google/flan-t5-small, revision: 0fc9ddf78a1e988dac52e2dac162b0ede4fd74ab}\n"
        "    canary: {id: google/flan-t5-base, revision: 7bcac572ce56db69c1ea7c8af255c5d7c9672fc2}\n"
        "  llm-ab:analysis: {requests: 120, maxErrorRate: 0.03, includeTraffic: true}\n")
    settings = analyze.stack_settings("dev", root=tmp_path)
    from stacks.gates import local_analysis_argv

    args = build_parser().parse_args(local_analysis_argv(settings, "http://127.0.0.1:4001", "http://127.0.0.1:4002"))
    assert (args.stable_url, args.canary_url, args.traffic_url) == ("http://127.0.0.1:4001", "http://127.0.0.1:4002",
                                                                    None)
    assert (args.stable_model, args.canary_model, args.requests) == ("google/flan-t5-small", "google/flan-t5-base",
                                                                     120)
    assert thresholds_from_args(args).max_error_rate == 0.03
    assert args.hold_passes is False  # outside the gate HOLD keeps exit 3
    assert args.cases == ["smoke/cases/flan-t5-small.yaml", "smoke/cases/flan-t5-base.yaml"]


def test_thresholds_that_switch_a_row_off_fail_before_any_resource(run_main, pulumi_mocks) -> None:
    import pulumi

    with pytest.raises(pulumi.RunError, match=r"llm-ab:analysis\.maxErrorRate must be from 0 to 0\.1 for the gate "
                                              r"\(above 0\.1, a canary failing more than one request in ten could "
                                              r"be promoted; analysis\.unsafeThresholds: true allows it\), got 1$"):
        run_main(with_analysis(maxErrorRate=1))
    assert not pulumi_mocks.resources


def test_the_unsafe_thresholds_opt_out_is_a_warning_in_the_preview(run_main, pulumi_mocks, monkeypatch) -> None:
    import pulumi

    warned: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *_, **__: warned.append(message))
    run_main(with_analysis(unsafeThresholds=True, maxErrorRate=1, minCasePassRate=0))
    assert [w for w in warned if "unsafeThresholds" in w] == [
        "llm-ab:analysis.unsafeThresholds is true and llm-ab:analysis.maxErrorRate is 1, past the gate's limit of "
        "0.1: a canary failing more than one request in ten could be promoted",
        "llm-ab:analysis.unsafeThresholds is true and llm-ab:analysis.minCasePassRate is 0, past the gate's limit of "
        "0.5: a canary failing more than half its golden cases could be promoted"]
    assert flag(container(analysis_job(pulumi_mocks))["args"], "--max-error-rate") == "1"


def test_make_analyze_names_a_bad_key(tmp_path, capsys) -> None:
    from stacks import analyze

    (tmp_path / "Pulumi.dev.yaml").write_text(
        "config:\n  llm-ab:models:\n"
        "    stable: {id: google/flan-t5-small, revision: 0fc9ddf78a1e988dac52e2dac162b0ede4fd74ab}\n"
        "    canary: {id: google/flan-t5-base, revision: 7bcac572ce56db69c1ea7c8af255c5d7c9672fc2}\n"
        "  llm-ab:analysis: {minCasePassRate: 1.5}\n")
    assert analyze.main(["--stack", "dev", "--stable-url", "http://a", "--canary-url", "http://b"], root=tmp_path) == 2
    assert "llm-ab:analysis.minCasePassRate must be between 0 and 1, got 1.5" in capsys.readouterr().err


def test_the_shipped_files_and_arguments_run_as_the_job_runs_them(tmp_path) -> None:
    """The ConfigMaps' files laid out as the Job mounts them, the Job's own arguments (the stack's plan, the
    case files at their mount path), only those files on the path: a real run against loopback TGI servers."""
    import dataclasses
    import subprocess
    import sys

    from analysis.plan import Target
    from components.analysis_job import case_files, job_args
    from tests.analysis.servers import start_tgi_stream
    from tests.smoke.servers import BASE_ID, SMALL_ID, SQUARE_ROOT_PROMPT

    stops: list = []
    try:
        stable = start_tgi_stream(SMALL_ID, stops, ttft_s=0.004, token_s=0.0005, answers={SQUARE_ROOT_PROMPT: "0"})
        canary = start_tgi_stream(BASE_ID, stops, ttft_s=0.004, token_s=0.0005,
                                  answers={SQUARE_ROOT_PROMPT: "x = 4 * 2 = 8 x = 16 y = 16 to the power of 2"})
        # The canary's expected answer is longer (more tokens): only the TTFT rows decide, with a wide
        # margin, since this test is about the Job's files and arguments, not about the statistics.
        settings = parse_settings(raw_config(with_analysis(
            requests=40, concurrency=2, durationSeconds=20, readyTimeoutSeconds=10, minSamples=10,
            maxTtftP50RegressionPct=200, maxTtftP95RegressionPct="none", maxE2eP50RegressionPct="none",
            maxE2eP95RegressionPct="none", unsafeThresholds=True)))
        plan = analysis_plan(settings)
        plan = dataclasses.replace(plan, stable=dataclasses.replace(plan.stable, url=stable.url),
                                   canary=dataclasses.replace(plan.canary, url=canary.url))
        cases = case_files(plan.cases)
        root = tmp_path / "opt-analysis"
        for package, files in shipped_files().items():
            (root / package).mkdir(parents=True)
            for name, text in files.items():
                (root / package / name).write_text(text)
        (tmp_path / "cases").mkdir()
        for name, text in cases.items():
            (tmp_path / "cases" / name).write_text(text)
        args = [a.replace(CASES_MOUNT, str(tmp_path / "cases")) for a in job_args(plan, cases)]
        proc = subprocess.run([sys.executable, "-m", "analysis", *args], cwd=tmp_path, capture_output=True,
                              text=True, timeout=240, env={"PYTHONPATH": str(root), "PATH": "/usr/bin:/bin",
                                                           "HOME": str(tmp_path), "PYTHONUNBUFFERED": "1"})
    finally:
        for stop in stops:
            stop()
    assert Target(url=stable.url, model="google/flan-t5-small") == plan.stable
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    log = proc.stdout
    assert "Verdict: HOLD (exit 3)" in log  # 40 requests cannot show a <= 2-point error increase
    assert f"HOLD does not fail this run ({HOLD_PASSES}): exit 0" in log
    assert "Canary vs stable" in log and "Golden cases passed" in log and "40/40" in log
    assert f"Time bound: at most {plan.run_bound_seconds()} s" in log
