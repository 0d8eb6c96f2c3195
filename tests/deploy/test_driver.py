"""The deploy driver's decisions, without the engine: credentials, passphrase, outputs, errors."""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from components.credentials import CredentialGenerator
from deploy import credentials
from deploy.__main__ import engine_error, format_outputs, policy_args
from deploy.workspace import (
    DriverError,
    engine_dir,
    engine_project,
    engine_stack_file,
    ensure_passphrase,
    resolve_engine,
)


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


# --- the tracked stack file stays as the user wrote it -----------------------------------------------

SALT = "v1:c2FsdHNhbHQ=:v1:YWJj:ZGVm"


class FakeStack:
    """What the driver uses of an Automation API stack. Like pulumi, it writes into the stack file of the directory
    it runs in: the salt when the stack is created (`pulumi stack init` with a passphrase), and set_config."""

    def __init__(self, name: str, work_dir: Path) -> None:
        import yaml

        self.name, self.work_dir, self.configured = name, work_dir, []
        data = yaml.safe_load(self.path.read_text()) or {}
        if "encryptionsalt" not in data:
            self.path.write_text(yaml.safe_dump({**data, "encryptionsalt": SALT}))
        self.workspace = SimpleNamespace(list_plugins=lambda: [])  # no pulumi-random plugin: builtin

    @property
    def path(self) -> Path:
        return self.work_dir / f"Pulumi.{self.name}.yaml"

    def export_stack(self) -> SimpleNamespace:
        return SimpleNamespace(deployment={})

    def set_config(self, key: str, value: Any, path: bool = False) -> None:
        import yaml

        assert (key, path) == (credentials.PATH_KEY, True)
        self.configured.append(value.value)
        data = yaml.safe_load(self.path.read_text())
        data.setdefault("config", {})[credentials.CONFIG_KEY] = {"generator": value.value}
        self.path.write_text(yaml.safe_dump(data))

    def preview(self, **_: Any) -> SimpleNamespace:
        return SimpleNamespace(change_summary={"create": 40})

    def up(self, **_: Any) -> SimpleNamespace:
        return SimpleNamespace(summary=SimpleNamespace(resource_changes={"create": 40}), outputs={})


@pytest.fixture
def driver_run(tmp_path, monkeypatch):
    """``python -m deploy VERB`` on a copy of the repository's Pulumi.yaml and Pulumi.dev.yaml, the engine faked."""
    import shutil

    import deploy.__main__ as driver
    from tests.harness import ROOT

    repo = tmp_path / "repo"
    repo.mkdir()
    for name in ("Pulumi.yaml", "Pulumi.dev.yaml"):
        shutil.copy(ROOT / name, repo / name)
    for name in ("LLMAB_PULUMI", "PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE_FILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("LLMAB_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("PULUMI_CONFIG_PASSPHRASE", "tests only")
    stacks: list[FakeStack] = []

    def open_stack(stack_name: str, _engine: Any, work_dir: Path) -> FakeStack:
        stacks.append(FakeStack(stack_name, work_dir))
        return stacks[-1]

    monkeypatch.setattr(driver, "open_stack", open_stack)
    # Hermetic: whatever cluster the machine's kubeconfig names (`make up`'s, say) is never asked.
    monkeypatch.setattr(driver, "driver_cluster", lambda *_args: lambda _settings: driver.NoCluster())

    def run(verb: str) -> FakeStack:
        assert driver.main([verb, "--stack", "dev", "--work-dir", str(repo), "--no-policy"]) == 0
        return stacks[-1]
    return SimpleNamespace(run=run, repo=repo, state=tmp_path / "state")


def test_the_driver_leaves_the_tracked_stack_file_byte_identical(driver_run, capsys) -> None:
    import yaml

    tracked = (driver_run.repo / "Pulumi.dev.yaml").read_bytes()
    first = driver_run.run("up")
    assert (driver_run.repo / "Pulumi.dev.yaml").read_bytes() == tracked
    # The salt and the generator the driver chose live with the stack's state, in the engine's copy.
    assert first.work_dir == engine_dir(driver_run.state, "dev") and first.configured == ["builtin"]
    copy = yaml.safe_load(first.path.read_text())
    assert copy["encryptionsalt"] == SALT and copy["config"][credentials.CONFIG_KEY] == {"generator": "builtin"}
    assert copy["config"]["llm-ab:split"] == yaml.safe_load(tracked)["config"]["llm-ab:split"]
    assert (first.work_dir / "credentials-generator").read_text() == "builtin\n"
    assert "recorded in" in capsys.readouterr().err

    second = driver_run.run("preview")  # the salt and the decision are kept, not made again
    assert second.configured == [] and yaml.safe_load(second.path.read_text())["encryptionsalt"] == SALT
    assert yaml.safe_load(second.path.read_text())["config"][credentials.CONFIG_KEY] == {"generator": "builtin"}
    assert "credentials: builtin (recorded when the stack first ran)" in capsys.readouterr().err
    assert (driver_run.repo / "Pulumi.dev.yaml").read_bytes() == tracked


def test_what_the_user_changes_in_the_tracked_file_reaches_the_engine(driver_run) -> None:
    import yaml

    driver_run.run("preview")
    path = driver_run.repo / "Pulumi.dev.yaml"
    path.write_text(path.read_text().replace("canaryPercent: 50", "canaryPercent: 10"))
    again = driver_run.run("preview")
    copy = yaml.safe_load(again.path.read_text())
    assert copy["config"]["llm-ab:split"]["canaryPercent"] == 10 and copy["encryptionsalt"] == SALT


def test_the_engine_copy_takes_the_users_secrets_provider_and_generator_over_the_recorded_ones() -> None:
    previous = {"encryptionsalt": "v1:old", "config": {}}
    mine = {"encryptionsalt": "v1:mine", "config": {"llm-ab:credentials": {"generator": "random"}}}
    assert engine_stack_file(mine, previous, "builtin") == mine
    kms = {"secretsprovider": "awskms://alias/x", "config": {"llm-ab:namespace": "ns"}}
    assert engine_stack_file(kms, previous, None) == kms
    assert engine_stack_file({"config": {"llm-ab:namespace": "ns"}}, previous, "builtin") == {
        "config": {"llm-ab:namespace": "ns", "llm-ab:credentials": {"generator": "builtin"}},
        "encryptionsalt": "v1:old"}


def test_a_relative_virtualenv_is_made_absolute_in_the_engines_copy_of_the_project(tmp_path) -> None:
    project = {"name": "llm-ab", "runtime": {"name": "python", "options": {"toolchain": "pip", "virtualenv": "venv"}}}
    copied = engine_project(project, tmp_path)
    assert copied["runtime"]["options"] == {"toolchain": "pip", "virtualenv": str(tmp_path / "venv")}
    assert engine_project({"name": "llm-ab", "runtime": "python"}, tmp_path) == {"name": "llm-ab", "runtime": "python"}


def test_a_deploy_written_stack_file_changes_nothing_the_tests_read(tmp_path) -> None:
    """What `make up` wrote into Pulumi.dev.yaml before the driver ran on a copy (the generator line, the salt),
    and what `pulumi config set --secret` still writes (the salt): the tests' settings are those of the file as
    shipped."""
    from tests.harness import ROOT, stack_config

    shipped = (ROOT / "Pulumi.dev.yaml").read_text()
    deployed = shipped.replace("config:\n", "config:\n  llm-ab:credentials:\n    generator: builtin\n", 1)
    (tmp_path / "Pulumi.dev.yaml").write_text(f"{deployed}encryptionsalt: {SALT}\n")
    assert stack_config("dev", tmp_path) == stack_config("dev")
    assert "llm-ab:credentials" not in stack_config("dev", tmp_path)
    assert stack_config("dev", tmp_path)["llm-ab:split"] == {"canaryPercent": 50, "replicas": 2, "tolerance": 5}
    kept = shipped.replace("config:\n", "config:\n  llm-ab:credentials:\n    other: 1\n    generator: builtin\n", 1)
    (tmp_path / "Pulumi.dev.yaml").write_text(kept)
    assert stack_config("dev", tmp_path)["llm-ab:credentials"] == {"other": 1}
