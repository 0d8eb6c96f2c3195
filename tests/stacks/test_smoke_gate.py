"""The in-cluster smoke gate: after both variants, with the stack's targets, re-run on every change."""

from __future__ import annotations

import copy

import pytest

from components.smoke_test import DIGEST_LABEL, case_files, package_files
from stacks.settings import parse_settings
from stacks.smoke_layer import smoke_cli_args
from tests.conftest import dev_config, raw_config
from tests.stacks.test_program import run_main


def smoke_job(mocks):
    (job,) = [r for r in mocks.of_type("kubernetes:batch/v1:Job") if r.name == "smoke-job"]
    return job


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_smoke_job_runs_our_package_after_both_variants(monkeypatch, run_program, pulumi_mocks) -> None:
    run_main(monkeypatch, run_program, dev_config())
    job = smoke_job(pulumi_mocks)
    deps = {d._name for d in pulumi_mocks.options["smoke-job"].depends_on}
    assert {"tgi-stable", "tgi-canary", "traffic"} <= deps
    spec = job.inputs["spec"]
    assert spec["backoffLimit"] == 0 and spec["template"]["spec"]["restartPolicy"] == "Never"
    args = spec["template"]["spec"]["containers"][0]["args"]
    assert flag(args, "--tgi-url") == "http://text-generation-inference.llm-ab-dev.svc.cluster.local:8080"
    assert flag(args, "--stable-model") == "google/flan-t5-small"
    assert flag(args, "--canary-model") == "google/flan-t5-base"
    assert flag(args, "--canary-percent") == "50"
    assert flag(args, "--cases") == "/opt/smoke-cases/flan-t5-small.yaml"
    package = pulumi_mocks.named("smoke-package").inputs["data"]
    assert package == package_files() and "__main__.py" in package
    cases = pulumi_mocks.named("smoke-cases").inputs["data"]
    assert set(cases) == {"flan-t5-small.yaml", "flan-t5-base.yaml"}
    assert pulumi_mocks.options["smoke-job"].custom_timeouts.create == "1200s"


def test_a_change_to_the_experiment_changes_the_checks_digest(monkeypatch, run_program, pulumi_mocks) -> None:
    run_main(monkeypatch, run_program, dev_config())
    before = smoke_job(pulumi_mocks).inputs["metadata"]["labels"][DIGEST_LABEL]
    pulumi_mocks.resources.clear()
    changed = copy.deepcopy(dev_config())
    changed["llm-ab:split"] = {"canaryPercent": 25, "replicas": 4, "tolerance": 5}
    run_main(monkeypatch, run_program, changed)
    after = smoke_job(pulumi_mocks).inputs["metadata"]["labels"][DIGEST_LABEL]
    assert before != after


def test_a_switched_off_canary_is_not_probed_directly() -> None:
    raw = raw_config(dev_config())
    raw["split"] = {"canaryPercent": 0, "replicas": 2}
    args = smoke_cli_args(parse_settings(raw))
    assert "--canary-url" not in args and "--stable-url" in args
    assert flag(args, "--canary-percent") == "0"


def test_smoke_can_be_switched_off(monkeypatch, run_program, pulumi_mocks) -> None:
    config = {**dev_config(), "llm-ab:smoke": {"enabled": False}}
    run_main(monkeypatch, run_program, config)
    assert not [r for r in pulumi_mocks.resources if r.name.startswith("smoke")]


def test_case_files_with_the_same_name_are_refused() -> None:
    with pytest.raises(ValueError, match="share the name"):
        case_files(["smoke/cases/flan-t5-small.yaml", "smoke/cases/flan-t5-small.yaml"])
