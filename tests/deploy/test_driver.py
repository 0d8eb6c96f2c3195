"""The deploy driver's decisions, without the engine: credentials, passphrase, outputs, errors."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from components.credentials import CredentialGenerator
from deploy import credentials
from deploy.__main__ import engine_error, format_outputs, policy_args
from deploy.workspace import DriverError, ensure_passphrase, resolve_engine


@dataclass
class Out:
    value: Any
    secret: bool = False


# --- which credential generator ---------------------------------------------------------------

def test_a_new_stack_without_the_random_plugin_records_the_builtin_generator() -> None:
    choice = credentials.choose(None, None, random_plugin=lambda: False)
    assert choice.generator is CredentialGenerator.BUILTIN and choice.record is True
    assert "not installed" in choice.reason


def test_a_new_stack_with_the_random_plugin_uses_pulumi_random_and_writes_nothing() -> None:
    choice = credentials.choose(None, None, random_plugin=lambda: True)
    assert choice.generator is CredentialGenerator.RANDOM and choice.record is False


def test_a_deployed_stack_keeps_its_generator_when_the_plugin_appears_later() -> None:
    choice = credentials.choose(None, "builtin", random_plugin=lambda: True)
    assert choice.generator is CredentialGenerator.BUILTIN and choice.record is True


def test_switching_generator_on_a_deployed_stack_is_refused_naming_the_key_and_the_way_back() -> None:
    with pytest.raises(DriverError) as err:
        credentials.choose("random", "builtin", random_plugin=lambda: True)
    message = str(err.value)
    assert message.startswith("credentials.generator is 'random' but the deployed credentials came from 'builtin'")
    assert "pulumi config set --path credentials.generator builtin" in message
    assert "--allow-credential-rotation" in message


def test_rotation_on_purpose_is_allowed() -> None:
    choice = credentials.choose("builtin", "random", random_plugin=lambda: True, allow_rotation=True)
    assert choice.generator is CredentialGenerator.BUILTIN


def test_asking_for_random_without_its_plugin_says_how_to_get_either_path() -> None:
    with pytest.raises(DriverError, match="pulumi-random's provider plugin is not installed"):
        credentials.choose("random", None, random_plugin=lambda: False)


def test_an_unknown_configured_generator_names_the_allowed_values() -> None:
    with pytest.raises(DriverError, match=r"credentials.generator: must be one of random, builtin, got 'vault'"):
        credentials.choose("vault", None, random_plugin=lambda: True)


def test_plugins_are_not_listed_when_the_stack_already_chose() -> None:
    def never() -> bool:
        raise AssertionError("plugins listed although the stack's config and deployment decide")

    assert credentials.choose("builtin", "builtin", random_plugin=never).generator is CredentialGenerator.BUILTIN
    assert credentials.choose(None, "random", random_plugin=never).generator is CredentialGenerator.RANDOM


def test_the_deployed_generator_is_read_from_the_exported_stack_resource() -> None:
    deployment = {"resources": [
        {"type": "pulumi:providers:kubernetes", "outputs": {}},
        {"type": "pulumi:pulumi:Stack", "outputs": {"credentialGenerator": "builtin",
                                                     "minioRootPassword": {"ciphertext": "v1:..."}}}]}
    assert credentials.deployed_generator(deployment) == "builtin"
    assert credentials.deployed_generator({"resources": [{"type": "pulumi:pulumi:Stack", "outputs": {}}]}) is None
    assert credentials.deployed_generator({}) is None


def test_the_configured_generator_is_read_from_the_stack_files_config_object() -> None:
    assert credentials.configured_generator({"llm-ab:credentials": {"generator": "builtin"}}) == "builtin"
    assert credentials.configured_generator({"llm-ab:credentials": '{"generator": "random"}'}) == "random"
    assert credentials.configured_generator({"llm-ab:namespace": "x"}) is None


def test_only_the_sdk_version_of_the_random_plugin_counts() -> None:
    plugins = [("kubernetes", "resource", "4.25.0"), ("random", "resource", "4.16.0")]
    assert not credentials.has_random_plugin(plugins, "4.21.4")
    assert credentials.has_random_plugin([*plugins, ("random", "resource", "4.21.4")], "4.21.4")


# --- passphrase and engine ----------------------------------------------------------------------

def test_a_passphrase_is_generated_once_per_stack_readable_only_by_the_owner(tmp_path) -> None:
    env, note = ensure_passphrase({}, tmp_path, "dev")
    path = env["PULUMI_CONFIG_PASSPHRASE_FILE"]
    assert note.startswith("passphrase generated into") and path in note
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    first = Path(path).read_text()
    assert len(first) >= 40
    again, note2 = ensure_passphrase({}, tmp_path, "dev")
    assert again == env and note2 == f"passphrase in {path}" and Path(path).read_text() == first
    other, _ = ensure_passphrase({}, tmp_path, "staging")
    assert Path(other["PULUMI_CONFIG_PASSPHRASE_FILE"]).read_text() != first


def test_a_passphrase_the_user_set_wins_and_nothing_is_written(tmp_path) -> None:
    env, note = ensure_passphrase({"PULUMI_CONFIG_PASSPHRASE": "s3cr3t"}, tmp_path, "dev")
    assert env == {} and note == "passphrase from $PULUMI_CONFIG_PASSPHRASE"
    assert not (tmp_path / "passphrases").exists()


def test_a_shared_backend_without_a_passphrase_is_refused(tmp_path) -> None:
    with pytest.raises(DriverError, match="shared backend: set PULUMI_CONFIG_PASSPHRASE"):
        ensure_passphrase({"PULUMI_BACKEND_URL": "s3://team-state"}, tmp_path, "dev")


def test_the_engine_uses_the_local_file_backend_and_the_built_cli(tmp_path) -> None:
    cli = tmp_path / "toolchain" / "bin" / "pulumi"
    cli.parent.mkdir(parents=True)
    cli.write_text("#!/bin/sh\n")
    cli.chmod(0o755)
    engine = resolve_engine({"LLMAB_PULUMI": str(cli), "LLMAB_STATE_DIR": str(tmp_path / "state"),
                             "PULUMI_HOME": str(tmp_path / "home")}, "dev")
    assert engine.pulumi_root == str(tmp_path / "toolchain")
    assert engine.backend_url == f"file://{tmp_path / 'state'}" and (tmp_path / "state").is_dir()
    assert engine.env["PULUMI_DISABLE_AUTOMATIC_PLUGIN_ACQUISITION"] == "true"
    assert engine.env["PULUMI_CONFIG_PASSPHRASE_FILE"].endswith("passphrases/llm-ab.dev")


def test_a_missing_cli_says_how_to_build_it(tmp_path) -> None:
    with pytest.raises(DriverError, match="run scripts/toolchain engine"):
        resolve_engine({"LLMAB_PULUMI": str(tmp_path / "bin" / "pulumi"), "LLMAB_STATE_DIR": str(tmp_path)}, "dev")


# --- what the user sees --------------------------------------------------------------------------

def test_outputs_print_like_pulumi_stack_output_with_secrets_hidden() -> None:
    outputs = {"namespace": Out("llm-ab-dev"), "minioRootPassword": Out("pw", secret=True),
               "replicas": Out({"stable": 1, "canary": 1})}
    text = format_outputs(outputs)
    assert text.splitlines() == [
        "Current stack outputs (3):",
        "    OUTPUT             VALUE",
        "    minioRootPassword  [secret]",
        "    namespace          llm-ab-dev",
        '    replicas           {"stable":1,"canary":1}',
    ]
    assert '"minioRootPassword": "pw"' in format_outputs(outputs, show_secrets=True, as_json=True)
    assert format_outputs({}) == "No output values currently in this stack"


def test_engine_errors_show_the_cli_stderr_and_explain_a_wrong_passphrase() -> None:
    err = Exception("\n code: 255\n stdout: lots of progress\n stderr: error: incorrect passphrase\n")
    text = engine_error(err)
    assert text.startswith("error: incorrect passphrase") and "lots of progress" not in text
    assert "PULUMI_CONFIG_PASSPHRASE" in text


def test_the_policy_pack_runs_as_an_executable_with_the_stacks_config() -> None:
    args = policy_args("dev", True)
    assert args["policy_packs"][0].endswith("policy/run-pack") and os.access(args["policy_packs"][0], os.X_OK)
    assert args["policy_pack_configs"][0].endswith("policy/config/dev.json")
    assert "policy_pack_configs" not in policy_args("no-such-stack", True)
    assert policy_args("dev", False) == {}


def test_the_stack_files_objects_are_read_as_written(tmp_path) -> None:
    from deploy.__main__ import stack_file_config

    (tmp_path / "Pulumi.dev.yaml").write_text("config:\n  llm-ab:credentials:\n    generator: builtin\n"
                                              "  llm-ab:namespace: ns\nencryptionsalt: v1:abc\n")
    config = stack_file_config(tmp_path, "dev")
    assert config == {"llm-ab:credentials": {"generator": "builtin"}, "llm-ab:namespace": "ns"}
    assert credentials.configured_generator(config) == "builtin"
    assert stack_file_config(tmp_path, "prod") == {}


def test_steps_are_recorded_as_the_engine_counts_them_without_no_op_provider_updates() -> None:
    from types import SimpleNamespace

    from deploy.__main__ import StepRecorder

    def pre(op: str, urn: str, typ: str, diffs: list[str]) -> SimpleNamespace:
        meta = SimpleNamespace(op=SimpleNamespace(value=op), urn=urn, type=typ, diffs=diffs)
        return SimpleNamespace(resource_pre_event=SimpleNamespace(metadata=meta))

    recorder = StepRecorder()
    recorder(pre("update", "urn:pulumi:dev::llm-ab::pulumi:providers:pulumi-python::default",
                 "pulumi:providers:pulumi-python", []))
    recorder(pre("update", "urn:pulumi:dev::llm-ab::pulumi:providers:kubernetes::k8s",
                 "pulumi:providers:kubernetes", ["kubeconfig"]))
    recorder(pre("update", "urn:pulumi:dev::llm-ab::kubernetes:apps/v1:Deployment::tgi-stable-deploy",
                 "kubernetes:apps/v1:Deployment", ["spec"]))
    recorder(SimpleNamespace(resource_pre_event=None))
    assert [(s["op"], s["name"], s["diffs"]) for s in recorder.steps] == [
        ("update", "k8s", ["kubeconfig"]), ("update", "tgi-stable-deploy", ["spec"])]


def test_warnings_are_collected_from_the_events_once_each_without_the_expected_engine_ones(capsys) -> None:
    """`pulumi preview --diff` prints no Diagnostics block, so the driver prints the program's warnings itself."""
    from types import SimpleNamespace

    from deploy.__main__ import Warnings, on_events

    def diag(severity: str, message: str, ephemeral: bool = False) -> SimpleNamespace:
        return SimpleNamespace(diagnostic_event=SimpleNamespace(severity=severity, message=message,
                                                                ephemeral=ephemeral))

    warnings, other = Warnings(), []
    handler = on_events(warnings, other.append)
    for event in (diag("debug", "registering resource"), diag("warning", "llm-ab:tgi.shmSize is now serving.shmSize\n"),
                  diag("warning", "llm-ab:tgi.shmSize is now serving.shmSize"), diag("info", "hello"),
                  diag("warning", "using pulumi-resource-kubernetes from $PATH at /x"),
                  diag("warning", "progress", ephemeral=True), diag("error", "boom"),
                  SimpleNamespace(diagnostic_event=None)):
        handler(event)
    assert len(other) == 8
    assert warnings.seen == ["llm-ab:tgi.shmSize is now serving.shmSize", "boom"]
    warnings.print()
    assert capsys.readouterr().err.splitlines() == ["[deploy] warning: llm-ab:tgi.shmSize is now serving.shmSize",
                                                    "[deploy] warning: boom"]
