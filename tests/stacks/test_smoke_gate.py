"""The in-cluster smoke gate: after both variants, with the stack's targets, re-run on every change."""

from __future__ import annotations

import copy

import pytest

from components.smoke_gate import DIGEST_LABEL, case_files, package_files
from smoke.plan import Target
from stacks.gates import smoke_plan
from stacks.settings import parse_settings
from tests.harness import raw_config
from tests.samples import dev_config


def smoke_job(mocks):
    (job,) = [r for r in mocks.of_type("kubernetes:batch/v1:Job") if r.name == "smoke-job"]
    return job


def flag(args: list[str], name: str) -> str:
    return args[args.index(name) + 1]


def test_smoke_job_runs_our_package_after_both_variants(run_main, pulumi_mocks) -> None:
    run_main(dev_config())
    job = smoke_job(pulumi_mocks)
    assert pulumi_mocks.depends_on("smoke-job") == {"tgi-stable", "tgi-canary", "traffic"}
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


def test_a_change_to_the_experiment_changes_the_checks_digest(run_main, pulumi_mocks) -> None:
    run_main(dev_config())
    before = smoke_job(pulumi_mocks).inputs["metadata"]["labels"][DIGEST_LABEL]
    pulumi_mocks.resources.clear()
    changed = copy.deepcopy(dev_config())
    changed["llm-ab:split"] = {"canaryPercent": 25, "replicas": 4, "tolerance": 5}
    run_main(changed)
    after = smoke_job(pulumi_mocks).inputs["metadata"]["labels"][DIGEST_LABEL]
    assert before != after


def test_a_switched_off_canary_is_not_probed_directly() -> None:
    raw = raw_config(dev_config())
    raw["split"] = {"canaryPercent": 0, "replicas": 2}
    plan = smoke_plan(parse_settings(raw))
    assert plan.canary is None and plan.canary_percent == 0
    assert plan.stable == Target(url="http://text-generation-inference-stable.llm-ab-dev.svc.cluster.local:8080",
                                 model="google/flan-t5-small")
    args = plan.to_argv()
    assert "--canary-url" not in args and "--stable-url" in args
    assert flag(args, "--canary-percent") == "0"


def test_the_plan_expects_the_effective_share_not_the_declared_one() -> None:
    raw = raw_config(dev_config())
    raw["split"] = {"canaryPercent": 10, "replicas": 7, "tolerance": 5}  # 1 of 7 canary: 14.29 %
    plan = smoke_plan(parse_settings(raw))
    assert flag(plan.to_argv(), "--canary-percent") == "14.29"


def test_the_cli_reads_back_every_flag_the_plan_writes() -> None:
    from smoke.cli import build_parser

    plan = smoke_plan(parse_settings(raw_config(dev_config())))
    args = build_parser().parse_args(plan.to_argv())
    assert (args.tgi_url, args.canary_percent, args.samples, args.timeout) == (
        plan.tgi_url, 50.0, plan.samples, float(plan.timeout or 0))
    assert (args.stable_url, args.stable_model) == (plan.stable.url, plan.stable.model)
    assert (args.canary_url, args.canary_model) == (plan.canary.url, plan.canary.model)
    assert args.cases == list(plan.cases) == ["smoke/cases/flan-t5-small.yaml", "smoke/cases/flan-t5-base.yaml"]


def test_smoke_can_be_switched_off(run_main, pulumi_mocks) -> None:
    config = {**dev_config(), "llm-ab:smoke": {"enabled": False}}
    run_main(config)
    assert not [r for r in pulumi_mocks.resources if r.name.startswith("smoke")]


def test_case_files_with_the_same_name_are_refused() -> None:
    with pytest.raises(ValueError, match="share the name"):
        case_files(["smoke/cases/flan-t5-small.yaml", "smoke/cases/flan-t5-small.yaml"])
