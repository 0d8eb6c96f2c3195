"""The in-cluster smoke gate: after both variants, with the stack's targets, re-run on every change."""

from __future__ import annotations

import copy

import pytest

from components.gate_job import DIGEST_LABEL
from components.smoke_gate import case_files, package_files
from smoke.plan import Target
from stacks.gates import smoke_plan
from stacks.settings import parse_settings
from tests.harness import raw_config
from tests.samples import SHA_A, dev_config


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
                                 model="google/flan-t5-small", revision=SHA_A,
                                 weights=f"/mnt/datasets/model-weights/flan-t5-small/{SHA_A}")
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
    assert (args.stable_url, args.stable_model, args.stable_revision, args.stable_weights) == (
        plan.stable.url, plan.stable.model, plan.stable.revision, plan.stable.weights)
    assert (args.canary_url, args.canary_model, args.canary_revision, args.canary_weights) == (
        plan.canary.url, plan.canary.model, plan.canary.revision, plan.canary.weights)
    assert args.rollback_command == plan.rollback_command == "make rollback STACK=dev && make up STACK=dev"
    assert args.cases == list(plan.cases) == ["smoke/cases/flan-t5-small.yaml", "smoke/cases/flan-t5-base.yaml"]


def test_smoke_can_be_switched_off(run_main, pulumi_mocks) -> None:
    config = {**dev_config(), "llm-ab:smoke": {"enabled": False}}
    run_main(config)
    assert not [r for r in pulumi_mocks.resources if r.name.startswith("smoke")]


def test_case_files_with_the_same_name_are_refused() -> None:
    with pytest.raises(ValueError, match="share the name"):
        case_files(["smoke/cases/flan-t5-small.yaml", "smoke/cases/flan-t5-small.yaml"])


# -- item 1: the Job is replaced after every change of what serves ---------------------------------


def _job_name(config: dict) -> str:
    from tests.stacks.test_promotion import record

    return record(config)["smoke-job"][1]["metadata"]["name"]


def _with(path: str, value: object) -> dict:
    """The dev config with the dotted ``path`` (under ``llm-ab:<section>``) set to ``value``."""
    config = copy.deepcopy(dev_config())
    section, *rest = path.split(".")
    node = config.setdefault(f"llm-ab:{section}", {})
    *parents, leaf = rest
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return config


@pytest.mark.parametrize(
    ("path", "value"),
    [
        ("models.canary.revision", "1" * 40),
        ("models.stable.revision", "2" * 40),
        ("models.canary.id", "google/flan-t5-small"),  # a model a case file names (else refused)
        ("tgi.image", "ghcr.io/huggingface/text-generation-inference:1.4.5"),
        ("tgi.maxTotalTokens", 2048),
        ("serving.resources", {"requests": {"cpu": "1", "memory": "2Gi"}, "limits": {"cpu": "2", "memory": "4Gi"}}),
        ("split.replicas", 4),
        ("storage.bucket", "other-weights"),
        ("datashim.datasetName", "weights-b"),
        ("smoke.cases", ["smoke/cases/flan-t5-small.yaml", "smoke/cases/flan-t5-base.yaml",
                         "smoke/cases/dev-vllm/qwen2.5-0.5b-instruct.yaml"]),
        ("smoke.samples", 1000),
        ("smoke.image", "python:3.11.10-slim-bookworm"),
    ],
)
def test_a_change_of_what_serves_or_of_the_checks_replaces_the_smoke_job(path: str, value: object) -> None:
    before, after = _job_name(dev_config()), _job_name(_with(path, value))

    assert before.startswith("smoke-") and after.startswith("smoke-")
    assert after != before, f"{path} changed but the smoke Job would not re-run"


def test_the_same_config_keeps_the_same_job() -> None:
    from tests.harness import mocked_runtime, run_main

    names = []
    for _ in range(2):
        with mocked_runtime() as mocks:
            run_main(dev_config())
        names.append(smoke_job(mocks).inputs["metadata"]["name"])
    assert names[0] == names[1]


def test_a_change_of_the_tool_itself_replaces_the_smoke_job(monkeypatch) -> None:
    from components import smoke_gate
    from tests.harness import mocked_runtime, run_main

    def changed_package() -> dict[str, str]:
        files = package_files()
        return {**files, "runner.py": files["runner.py"] + "\n# a changed check\n"}

    with mocked_runtime() as mocks:
        run_main(dev_config())
    before = smoke_job(mocks).inputs["metadata"]["name"]
    monkeypatch.setattr(smoke_gate, "package_files", changed_package)
    with mocked_runtime() as mocks:
        run_main(dev_config())
    assert smoke_job(mocks).inputs["metadata"]["name"] != before


def test_the_smoke_jobs_identity_covers_every_config_section() -> None:
    """Keys other engineers add (an engine per variant, a vllm section, split modes) are covered
    without an edit: the identity is the whole validated config, not a list of today's keys."""
    from stacks.gates import config_identity
    from stacks.settings import TOP_LEVEL_KEYS

    settings = parse_settings(raw_config(dev_config()))
    dumped = settings.model_dump(mode="json", by_alias=True)
    assert set(dumped) == set(TOP_LEVEL_KEYS) - {"aws"}
    changed = parse_settings({**raw_config(dev_config()), "traffic": {"allowedNamespaces": ["clients"]}})
    assert config_identity(changed) != config_identity(settings)


# -- item 2: a promoted stack's plan --------------------------------------------------------------


def test_after_a_promotion_the_plan_names_one_model_twice_and_the_cli_accepts_it() -> None:
    from smoke.cli import build_config, build_parser
    from stacks import promote

    config = copy.deepcopy(dev_config())
    promote.apply(config, "promote", "tgi")
    plan = smoke_plan(parse_settings(raw_config(config)))
    assert plan.stable.model == plan.canary.model == "google/flan-t5-base"
    assert plan.stable.weights == plan.canary.weights
    run_config = build_config(build_parser().parse_args(plan.to_argv()), [], [])
    assert run_config.split_blind_reason() is not None  # the split is skipped, saying why


# -- item 3: smoke.cases must be case files -------------------------------------------------------


def test_a_smoke_case_that_is_not_a_case_file_fails_before_any_resource(run_main, pulumi_mocks) -> None:
    import pulumi

    from stacks.config_types import ConfigError

    raw = raw_config(dev_config())
    raw["smoke"] = {"cases": ["smoke/cases/flan-t5-small.yaml", "Pulumi.dev.yaml"]}
    with pytest.raises(ConfigError) as err:
        parse_settings(raw)
    message = str(err.value)
    assert message.startswith("llm-ab:smoke.cases[1] must name a valid smoke case file, got 'Pulumi.dev.yaml': ")
    assert "Pulumi.dev.yaml: field 'kind': is required" in message
    with pytest.raises(pulumi.RunError, match=r"smoke\.cases\[1\]"):
        run_main({**dev_config(), "llm-ab:smoke": raw["smoke"]})
    assert not pulumi_mocks.resources


# -- a variant's model needs case files; the generic case only with an explicit opt-out ----------------------


def test_a_canary_no_case_file_names_fails_before_any_resource(run_main, pulumi_mocks) -> None:
    import pulumi

    config = copy.deepcopy(dev_config())
    config["llm-ab:models"]["canary"]["id"] = "google/flan-t5-large"
    with pytest.raises(pulumi.RunError, match=r"smoke\.cases names no case file for the canary's model "
                                              r"google/flan-t5-large"):
        run_main(config)
    assert not pulumi_mocks.resources


def test_the_generic_case_opt_out_is_a_warning_in_the_preview(run_main, pulumi_mocks, monkeypatch) -> None:
    import pulumi

    warned: list[str] = []
    monkeypatch.setattr(pulumi.log, "warn", lambda message, *_, **__: warned.append(message))
    config = copy.deepcopy(dev_config())
    config["llm-ab:models"]["canary"]["id"] = "google/flan-t5-large"
    config["llm-ab:smoke"] = {"allowGenericCases": True}
    run_main(config)
    assert [w for w in warned if "allowGenericCases" in w] == [
        "llm-ab:smoke.allowGenericCases is true and no case file in smoke.cases names the canary's model "
        "google/flan-t5-large: the gates check it only with the built-in generic case (any non-empty text passes) "
        "and the analysis scores no golden case for it"]
    assert flag(smoke_job(pulumi_mocks).inputs["spec"]["template"]["spec"]["containers"][0]["args"],
                "--canary-model") == "google/flan-t5-large"


# -- item 5: the ModelMesh candidate --------------------------------------------------------------


def test_with_a_candidate_the_plan_checks_both_inference_services() -> None:
    from tests.samples import CANDIDATE, PRIMARY

    raw = raw_config(dev_config())
    raw["modelmesh"] = {"enabled": True, "models": {"primary": PRIMARY, "candidate": CANDIDATE},
                        "smokeCases": ["tests/golden/backend-0.yaml"]}
    args = smoke_plan(parse_settings(raw)).to_argv()
    assert [args[i + 1] for i, a in enumerate(args) if a == "--v2-model"] == ["backend-0", "backend-1"]
    raw["modelmesh"]["models"] = {"primary": PRIMARY}
    args = smoke_plan(parse_settings(raw)).to_argv()
    assert [args[i + 1] for i, a in enumerate(args) if a == "--v2-model"] == ["backend-0"]


# -- item 6: one budget formula for the Job and the CLI ------------------------------------------


def test_the_cli_budget_ends_before_the_jobs_deadline(run_main, pulumi_mocks) -> None:
    from smoke.plan import JOB_STARTUP_ALLOWANCE_SECONDS, REPORT_MARGIN_SECONDS, gate_budget

    run_main({**dev_config(), "llm-ab:smoke": {"timeoutSeconds": 600}})
    spec = smoke_job(pulumi_mocks).inputs["spec"]
    args = spec["template"]["spec"]["containers"][0]["args"]
    deadline, budget = spec["activeDeadlineSeconds"], int(flag(args, "--timeout"))
    assert (deadline, budget) == (600, gate_budget(600).run_seconds) == (600, 400)
    assert budget + JOB_STARTUP_ALLOWANCE_SECONDS + REPORT_MARGIN_SECONDS == deadline
    assert pulumi_mocks.options["smoke-job"].custom_timeouts.create == "900s"


def test_a_deadline_that_leaves_no_time_for_the_checks_fails_naming_the_key() -> None:
    from stacks.config_types import ConfigError

    raw = raw_config(dev_config())
    raw["smoke"] = {"timeoutSeconds": 200}
    with pytest.raises(ConfigError, match=r"llm-ab:smoke\.timeoutSeconds must be .*260.*got 200"):
        parse_settings(raw)
    with pytest.raises(ValueError, match="at least 260 s"):
        from smoke.plan import gate_budget

        gate_budget(259)


# -- item 7: the rollback command travels with the plan -------------------------------------------


def test_the_job_carries_the_rollback_command_and_keeps_its_logs_tail(run_main, pulumi_mocks) -> None:
    run_main(dev_config())
    container = smoke_job(pulumi_mocks).inputs["spec"]["template"]["spec"]["containers"][0]
    assert flag(container["args"], "--rollback-command") == "make rollback STACK=test && make up STACK=test"
    assert container["terminationMessagePolicy"] == "FallbackToLogsOnError"
