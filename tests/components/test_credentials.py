"""Credentials: pulumi-random where its plugin is, the built-in dynamic resource elsewhere."""

from __future__ import annotations

import string
import subprocess
import sys

import pytest
from pulumi.dynamic.dynamic import serialize_provider

from components.credentials import ALPHANUMERIC, CredentialGenerator, GeneratedSecretProvider
from stacks.settings import CREDENTIAL_GENERATORS
from tests.harness import DYNAMIC_RESOURCE, RecordingMocks, unsecret
from tests.samples import dev_config

RANDOM_PASSWORD = "random:index/randomPassword:RandomPassword"


def render_dev(run_main, generator: str | None) -> dict:
    config = dev_config()
    if generator is not None:
        config["llm-ab:credentials"] = {"generator": generator}
    return run_main(config)


def test_the_schema_offers_exactly_the_generators_there_are() -> None:
    assert tuple(g.value for g in CredentialGenerator) == CREDENTIAL_GENERATORS


def test_generated_values_are_alphanumeric_of_the_length_asked_and_differ() -> None:
    provider = GeneratedSecretProvider()
    values = {provider.create({"length": 40, "alphabet": ALPHANUMERIC}).outs["result"] for _ in range(50)}
    assert len(values) == 50
    assert all(len(v) == 40 and set(v) <= set(string.ascii_letters + string.digits) for v in values)


def test_a_length_below_one_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 1 and an alphabet, got 0"):
        GeneratedSecretProvider().create({"length": 0, "alphabet": ALPHANUMERIC})


def test_the_provider_is_stored_by_value_and_runs_without_this_repository(tmp_path) -> None:
    """The engine's Python host unpickles the provider from the state, with its own cwd and path."""
    blob = serialize_provider(GeneratedSecretProvider())
    code = ("import base64, dill, sys; p = dill.loads(base64.b64decode(sys.argv[1])); "
            "print(p.create({'length': 12, 'alphabet': 'ab'}).outs['result'])")
    proc = subprocess.run([sys.executable, "-I", "-c", code, blob], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout.strip()) == 12 and set(proc.stdout.strip()) <= {"a", "b"}


def test_the_builtin_provider_creates_once_and_keeps_the_value_unless_length_changes() -> None:
    provider = GeneratedSecretProvider()
    created = provider.create({"length": 20, "alphabet": ALPHANUMERIC})
    assert len(created.outs["result"]) == 20 and created.id
    same = provider.diff(created.id, created.outs, {"length": 20, "alphabet": ALPHANUMERIC, "result": None})
    assert same.changes is False and same.replaces == []
    longer = provider.diff(created.id, created.outs, {"length": 40, "alphabet": ALPHANUMERIC, "result": None})
    assert longer.changes is True and longer.replaces == ["length"]


def test_dev_defaults_to_pulumi_random_for_all_six_credentials(
        run_main, pulumi_mocks: RecordingMocks) -> None:
    exported = render_dev(run_main, None)
    assert len(pulumi_mocks.of_type(RANDOM_PASSWORD)) == 6
    assert pulumi_mocks.of_type(DYNAMIC_RESOURCE) == []
    assert exported["credentialGenerator"] == "random"


def test_builtin_generator_makes_six_secret_dynamic_resources_and_no_random_password(
        run_main, pulumi_mocks: RecordingMocks, is_secret) -> None:
    exported = render_dev(run_main, "builtin")
    generated = pulumi_mocks.of_type(DYNAMIC_RESOURCE)
    assert sorted(r.name for r in generated) == sorted(
        f"weights-{role}" for role in ("root-user", "root-password", "reader-key", "reader-secret",
                                       "writer-key", "writer-secret"))
    assert {r.name: int(r.inputs["length"]) for r in generated}["weights-root-password"] == 40
    assert pulumi_mocks.of_type(RANDOM_PASSWORD) == []
    assert pulumi_mocks.options["weights-root-password"].additional_secret_outputs == ["result"]
    root = pulumi_mocks.named("weights-root")
    assert unsecret(root.inputs["stringData"])["MINIO_ROOT_PASSWORD"].startswith("generated-weights-root-password")
    assert is_secret(exported["minioRootPassword"])
    assert exported["credentialGenerator"] == "builtin"


def test_an_unknown_generator_fails_naming_the_key(run_main, pulumi_mocks: RecordingMocks) -> None:
    with pytest.raises(Exception, match=r"credentials\.generator must be one of random, builtin, got 'vault'"):
        render_dev(run_main, "vault")
    assert pulumi_mocks.resources == []
