"""The pack as the engine loads it: entry point, PulumiPolicy.yaml, config files, and the running analyzer."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import grpc
import jsonschema
import pytest
import yaml
from google.protobuf import empty_pb2, struct_pb2
from pulumi.runtime.proto import analyzer_pb2, analyzer_pb2_grpc
from pulumi_policy import EnforcementLevel, ResourceValidationPolicy

from policy.rules import POLICIES
from tests.harness import ROOT
from tests.policy.pack_runner import POLICY_DIR, SECRET_SIG, SECRET_VALUE_SIG

AREAS = ("k8s", "gpu", "inference", "no", "datashim", "storage", "split", "eks")
LEVELS = ["advisory", "mandatory", "remediate", "disabled"]


def test_main_only_imports_the_rules_and_builds_the_pack() -> None:
    tree = ast.parse((POLICY_DIR / "__main__.py").read_text())
    *_, imports, build = tree.body
    assert isinstance(imports, ast.ImportFrom) and imports.module == "policy.rules"
    assert isinstance(build, ast.Expr) and isinstance(build.value, ast.Call)
    assert ast.unparse(build.value) == (
        "PolicyPack(name='llm-ab-guardrails', policies=POLICIES, enforcement_level=PACK_ENFORCEMENT)")


def test_rules_import_without_blocking() -> None:
    done = subprocess.run([sys.executable, "-c", "import policy.rules"], cwd=ROOT, timeout=60,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_every_policy_has_a_kebab_case_area_name_one_sentence_and_its_own_level() -> None:
    names = [p.name for p in POLICIES]
    assert len(names) == len(set(names)), names
    for p in POLICIES:
        assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)+", p.name) and p.name.split("-")[0] in AREAS, p.name
        assert p.description.endswith(".") and ". " not in p.description, p.name
        assert isinstance(p.enforcement_level, EnforcementLevel), p.name


def engine_schema(policy: Any) -> dict[str, Any]:
    """The JSON schema the engine validates a policy's config against (plus its injected enforcementLevel)."""
    properties = dict(policy.config_schema.properties) if policy.config_schema else {}
    properties["enforcementLevel"] = {"type": "string", "enum": LEVELS}
    return {"type": "object", "properties": properties}


@pytest.mark.parametrize("policy", [p for p in POLICIES if p.config_schema], ids=lambda p: p.name)
def test_config_schema_documents_each_property_and_its_default_validates(policy: Any) -> None:
    props = policy.config_schema.properties
    assert all(v.get("description") and "default" in v for v in props.values()), policy.name
    jsonschema.validate({k: v["default"] for k, v in props.items()}, engine_schema(policy))


@pytest.mark.parametrize("path", sorted((POLICY_DIR / "config").glob("*.json")), ids=lambda p: p.name)
def test_stack_policy_config_files_are_valid_pack_config(path: Path) -> None:
    by_name = {p.name: p for p in POLICIES}
    for name, value in json.loads(path.read_text()).items():
        assert name in by_name, f"{path.name}: unknown policy {name}"
        if isinstance(value, str):
            assert value in LEVELS
        else:
            jsonschema.validate(value, engine_schema(by_name[name]))


def test_pulumipolicy_yaml_runs_the_pack_with_the_projects_venv() -> None:
    project = yaml.safe_load((POLICY_DIR / "PulumiPolicy.yaml").read_text())
    assert project["runtime"]["name"] == "python"
    venv = (POLICY_DIR / project["runtime"]["options"]["virtualenv"]).resolve()
    assert venv == ROOT / "venv"
    if not (venv / "bin" / "python").exists():
        pytest.skip("no ./venv yet (make venv)")
    done = subprocess.run([str(venv / "bin" / "python"), "-c",
                           "import importlib.metadata as m; print(m.version('pulumi'), m.version('pulumi-policy'))"],
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == pins(POLICY_DIR / "requirements.txt")


def pins(path: Path) -> list[str]:
    found = dict(re.findall(r"^(pulumi|pulumi-policy)==(\S+)", path.read_text(), re.MULTILINE))
    return [found["pulumi"], found["pulumi-policy"]]


def test_pack_requirements_match_the_programs_pins() -> None:
    project = {**dict(re.findall(r"^([\w-]+)==(\S+)", (ROOT / "requirements.txt").read_text(), re.MULTILINE)),
               **dict(re.findall(r"^([\w-]+)==(\S+)", (ROOT / "requirements-dev.txt").read_text(), re.MULTILINE))}
    assert pins(POLICY_DIR / "requirements.txt") == [project["pulumi"], project["pulumi-policy"]]


# --------------------------------------------------------------------------------------------------
# The analyzer process, started as pulumi-analyzer-policy-python starts it: python -u -m pulumi.policy


@pytest.fixture(scope="module")
def analyzer() -> Iterator[analyzer_pb2_grpc.AnalyzerStub]:
    proc = subprocess.Popen([sys.executable, "-u", "-m", "pulumi.policy", "127.0.0.1:1", "."], cwd=POLICY_DIR,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        port = proc.stdout.readline().strip() if proc.stdout else ""
        assert port.isdigit(), f"the pack printed {port!r}; stderr: {proc.stderr.read() if proc.stderr else ''}"
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        grpc.channel_ready_future(channel).result(timeout=30)
        yield analyzer_pb2_grpc.AnalyzerStub(channel)
        channel.close()
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def struct(value: dict[str, Any]) -> struct_pb2.Struct:
    s = struct_pb2.Struct()
    s.update(value)
    return s


def test_running_pack_reports_every_policy_with_its_level(analyzer) -> None:
    started = time.monotonic()
    info = analyzer.GetAnalyzerInfo(empty_pb2.Empty())
    assert time.monotonic() - started < 10
    assert info.name == "llm-ab-guardrails" and info.supportsConfig
    levels = {p.name: analyzer_pb2.EnforcementLevel.Name(p.enforcementLevel).lower() for p in info.policies}
    assert levels == {p.name: p.enforcement_level.value for p in POLICIES}
    types = {p.name: p.policy_type for p in info.policies}
    assert types["split-within-tolerance"] == analyzer_pb2.POLICY_TYPE_STACK
    assert types["k8s-pinned-images"] == analyzer_pb2.POLICY_TYPE_RESOURCE


def test_running_pack_sees_a_secret_marked_value_in_plain_text(analyzer) -> None:
    """The engine marshals secrets with KeepSecrets; the SDK unwraps them before any rule runs."""
    request = analyzer_pb2.AnalyzeRequest(
        urn="urn:pulumi:dev::llm-ab::kubernetes:core/v1:Secret::weights-root", type="kubernetes:core/v1:Secret",
        name="weights-root",
        properties=struct({"stringData": {SECRET_SIG: SECRET_VALUE_SIG,
                                          "value": {"MINIO_ROOT_PASSWORD": "minioadmin"}}}))
    response = analyzer.Analyze(request)
    (diag,) = response.diagnostics
    description = next(p.description for p in POLICIES if p.name == "no-plaintext-credentials")
    assert diag.policyName == "no-plaintext-credentials" and diag.enforcementLevel == analyzer_pb2.MANDATORY
    assert diag.message == (f"{description}\n"
                            "stringData.MINIO_ROOT_PASSWORD contains the well-known default credential 'minioadmin'")
    not_applicable = {n.policy_name for n in response.not_applicable}
    assert not_applicable == {p.name for p in POLICIES if isinstance(p, ResourceValidationPolicy)} - {
        "no-plaintext-credentials"}


def test_running_pack_checks_the_split_at_stack_level(analyzer) -> None:
    def tgi(kind: str, replicas: int) -> analyzer_pb2.AnalyzerResource:
        labels = {"run": "text-generation-inference", "type": kind}
        return analyzer_pb2.AnalyzerResource(
            urn=f"urn:pulumi:dev::llm-ab::kubernetes:apps/v1:Deployment::tgi-{kind}-deploy",
            type="kubernetes:apps/v1:Deployment", name=f"tgi-{kind}-deploy",
            properties=struct({"metadata": {"name": f"text-generation-inference-{kind}"},
                               "spec": {"replicas": replicas, "template": {"metadata": {"labels": labels}}}}))

    response = analyzer.AnalyzeStack(analyzer_pb2.AnalyzeStackRequest(resources=[tgi("stable", 1), tgi("canary", 3)]))
    messages = {d.policyName: d.message.split("\n", 1)[1] for d in response.diagnostics}
    assert messages["split-canary-share-cap"] == (
        "the canary runs 3 of 4 serving replicas (75%), above this stack's cap of 50%")
    assert messages["split-selects-both-variants"] == "no traffic Service 'text-generation-inference'"


def test_readme_lists_every_rule_with_its_level() -> None:
    section = (ROOT / "README.md").read_text().split("## Policy pack", 1)[1].split("\n## ", 1)[0]
    documented = dict(re.findall(r"^\| `([a-z0-9-]+)` \| (advisory|mandatory) \|", section, flags=re.M))
    assert documented == {p.name: p.enforcement_level.value for p in POLICIES}
