"""The GitHub Actions workflow previews every stack with the policy pack on PRs and deploys on merge."""

from __future__ import annotations

import re
from typing import Any

import yaml

from tests.harness import ROOT
from tests.policy.pack_runner import POLICY_DIR

WORKFLOW = ROOT / ".github" / "workflows" / "pulumi.yml"


def workflow() -> dict[str, Any]:
    doc = yaml.safe_load(WORKFLOW.read_text())
    doc["on"] = doc.pop(True)  # YAML 1.1 reads the key `on` as a boolean
    return doc


def pulumi_step(job: dict[str, Any]) -> dict[str, Any]:
    (step,) = [s for s in job["steps"] if s.get("uses", "").startswith("pulumi/actions@")]
    return step


def test_every_action_is_pinned_to_an_exact_release() -> None:
    uses = [s["uses"] for job in workflow()["jobs"].values() for s in job["steps"] if "uses" in s]
    assert uses
    for ref in uses:
        assert re.fullmatch(r"[\w.-]+/[\w.-]+@(v\d+\.\d+\.\d+|[0-9a-f]{40})", ref), ref


def test_pull_requests_preview_each_stack_with_the_policy_pack_and_comment_the_diff() -> None:
    doc = workflow()
    assert "pull_request" in doc["on"]
    job = doc["jobs"]["preview"]
    assert job["if"] == "github.event_name == 'pull_request'"
    assert job["permissions"]["pull-requests"] == "write"
    step = pulumi_step(job)["with"]
    assert step["command"] == "preview" and step["diff"] is True and step["comment-on-pr"] is True
    assert step["policyPacks"] == "policy"
    assert step["policyPackConfigs"] == "policy/config/${{ matrix.stack }}.json"
    assert job["strategy"]["matrix"]["stack"] == ["dev", "staging"]


def test_merges_to_main_run_pulumi_up_with_the_policy_pack() -> None:
    doc = workflow()
    assert doc["on"]["push"]["branches"] == ["main"]
    job = doc["jobs"]["up"]
    assert job["if"] == "github.event_name == 'push'" and job["environment"] == "${{ matrix.stack }}"
    step = pulumi_step(job)["with"]
    assert step["command"] == "up" and step["policyPacks"] == "policy"


def test_every_stack_in_the_workflow_has_its_stack_file_and_policy_config() -> None:
    doc = workflow()
    stacks = {s for job in ("preview", "up") for s in doc["jobs"][job]["strategy"]["matrix"]["stack"]}
    for stack in stacks:
        assert (POLICY_DIR / "config" / f"{stack}.json").exists(), stack
        assert (ROOT / f"Pulumi.{stack}.yaml").exists(), stack


def test_ci_installs_the_cli_the_toolchain_builds_which_is_not_older_than_the_packs_sdk() -> None:
    built = re.search(r"^PULUMI_VERSION=(\S+)", (ROOT / "scripts" / "toolchain").read_text(), re.MULTILINE)
    pinned = re.search(r"^pulumi==(\S+)", (POLICY_DIR / "requirements.txt").read_text(), re.MULTILINE)
    assert built is not None and pinned is not None
    assert workflow()["env"]["PULUMI_VERSION"] == built.group(1) == "3.274.1"
    as_tuple = lambda v: tuple(int(x) for x in v.split("."))  # noqa: E731
    assert as_tuple(built.group(1)) >= as_tuple(pinned.group(1))
