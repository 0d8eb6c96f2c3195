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
    assert job["if"].startswith("github.event_name == 'pull_request'")
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
    assert job["if"].startswith("github.event_name == 'push'") and job["environment"] == "${{ matrix.stack }}"
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


# --- item 11: PR code gets no deploy secret --------------------------------------------------------

DEPLOY_SECRETS = {"AWS_ROLE_ARN", "KUBECONFIG"}
"""What can change infrastructure: the deploy role and the dev cluster's admin kubeconfig."""
PREVIEW_SECRETS = {"PULUMI_CONFIG_PASSPHRASE", "PULUMI_ACCESS_TOKEN", "AWS_PREVIEW_ROLE_ARN", "KUBECONFIG_READONLY"}


def secrets_of(node: Any) -> set[str]:
    """Every ``secrets.NAME`` an expression in ``node`` reads."""
    return set(re.findall(r"secrets\.([A-Za-z0-9_]+)", yaml.safe_dump(node)))


def test_no_secret_is_set_at_workflow_level_and_no_permission_is_granted_by_default() -> None:
    doc = workflow()
    assert secrets_of(doc["env"]) == set()
    assert doc["permissions"] == {}
    assert "pull_request_target" not in doc["on"]  # would run with the base repository's secrets


def test_the_pull_requests_own_tests_get_no_secret_and_a_read_only_token() -> None:
    job = workflow()["jobs"]["test"]
    assert secrets_of(job) == set() and "environment" not in job
    assert job["permissions"] == {"contents": "read"}
    (checkout,) = [s for s in job["steps"] if s.get("uses", "").startswith("actions/checkout@")]
    assert checkout["with"]["persist-credentials"] is False


def test_previews_read_only_their_environments_read_only_credentials() -> None:
    job = workflow()["jobs"]["preview"]
    assert job["environment"] == "preview"
    assert secrets_of(job) <= PREVIEW_SECRETS and not secrets_of(job) & DEPLOY_SECRETS
    (aws,) = [s for s in job["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert aws["with"]["role-to-assume"] == "${{ secrets.AWS_PREVIEW_ROLE_ARN }}"
    (kube,) = [s for s in job["steps"] if s.get("name", "").startswith("kubeconfig")]
    assert kube["env"]["KUBECONFIG_CONTENT"] == "${{ secrets.KUBECONFIG_READONLY }}"
    # Forks get no secrets from GitHub: their previews would fail, so they stop at the tests.
    assert "github.event.pull_request.head.repo.full_name == github.repository" in job["if"]


def test_deploy_secrets_are_read_only_by_up_on_pushes_to_main_in_a_stack_environment() -> None:
    jobs = workflow()["jobs"]
    readers = {name for name, job in jobs.items() if secrets_of(job) & DEPLOY_SECRETS}
    assert readers == {"up"}
    up = jobs["up"]
    assert up["if"] == "github.event_name == 'push' && github.ref == 'refs/heads/main'"
    assert up["environment"] == "${{ matrix.stack }}"
    (aws,) = [s for s in up["steps"] if s.get("uses", "").startswith("aws-actions/configure-aws-credentials@")]
    assert aws["with"]["role-to-assume"] == "${{ secrets.AWS_ROLE_ARN }}"


def test_every_job_that_reads_a_secret_reads_it_from_an_environment() -> None:
    for name, job in workflow()["jobs"].items():
        if secrets_of(job):
            assert job.get("environment"), name
