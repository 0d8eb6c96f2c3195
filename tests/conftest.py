"""Shared test fixtures: a recording Pulumi mock and a per-test Pulumi runtime."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pulumi
import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


MOCK_ISSUER = "https://oidc.eks.us-east-1.amazonaws.com/id/MOCK0123456789ABCDEF"

# What AWS computes on create, for the resources the eks platform reads outputs of.
AWS_COMPUTED: dict[str, dict[str, Any]] = {
    "aws:eks/cluster:Cluster": {
        "endpoint": "https://MOCK0123456789ABCDEF.gr7.us-east-1.eks.amazonaws.com",
        "certificateAuthority": {"data": "TU9DSy1DQS1EQVRB"},
        "identities": [{"oidcs": [{"issuer": MOCK_ISSUER}]}],
    },
    "aws:iam/accessKey:AccessKey": {"secret": "mock-secret-access-key"},
}

# What AWS data sources answer under mocks (RecordingMocks.call); anything else answers {}.
CALL_RESULTS: dict[str, dict[str, Any]] = {
    "aws:index/getAvailabilityZones:getAvailabilityZones": {
        "id": "us-east-1", "names": ["us-east-1a", "us-east-1b", "us-east-1c"],
        "zoneIds": ["use1-az1", "use1-az2", "use1-az4"],
    },
}


DYNAMIC_RESOURCE = "pulumi-python:dynamic:Resource"
"""Type token of every Python dynamic resource (components/credentials.py's built-in generator)."""


class RecordingMocks(pulumi.runtime.Mocks):
    """Records every resource registration; echoes inputs back as outputs (camelCase keys)."""

    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []
        self.calls: list[pulumi.runtime.MockCallArgs] = []
        self.options: dict[str, pulumi.ResourceOptions] = {}
        """Resource options by logical name, captured as the SDK registers each resource."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        outputs = dict(args.inputs)
        if args.typ in ("random:index/randomPassword:RandomPassword", DYNAMIC_RESOURCE):
            outputs["result"] = f"generated-{args.name}-" + "x" * int(args.inputs.get("length", 16))
        if args.typ.startswith("kubernetes:") and "metadata" in outputs:
            meta = dict(outputs["metadata"] or {})
            meta.setdefault("name", f"{args.name}-abc123")  # Pulumi's auto-naming
            outputs["metadata"] = meta
        if args.typ.startswith("aws:"):
            outputs.setdefault("arn", f"arn:aws:mock::123456789012:{args.name}")
            outputs.update(AWS_COMPUTED.get(args.typ, {}))
        return f"{args.name}-id", outputs

    def call(self, args: pulumi.runtime.MockCallArgs) -> tuple[dict[str, Any], list[tuple[str, str]]]:
        self.calls.append(args)
        return dict(CALL_RESULTS.get(args.token, {})), []  # this SDK iterates the failures: never None

    def of_type(self, typ: str) -> list[pulumi.runtime.MockResourceArgs]:
        return [r for r in self.resources if r.typ == typ]

    def named(self, name: str) -> pulumi.runtime.MockResourceArgs:
        found = [r for r in self.resources if r.name == name]
        assert len(found) == 1, f"expected one resource named {name!r}, found {[r.name for r in self.resources]}"
        return found[0]

    def k8s_named(self, kind_suffix: str, name: str) -> pulumi.runtime.MockResourceArgs:
        """The Kubernetes object of a kind (e.g. ``apps/v1:Deployment``) with ``metadata.name``."""
        found = [r for r in self.resources if r.typ.endswith(kind_suffix)
                 and (r.inputs.get("metadata") or {}).get("name") == name]
        assert len(found) == 1, f"expected one {kind_suffix} named {name!r}, found {len(found)}"
        return found[0]


def dev_config() -> dict[str, Any]:
    """The dev stack's config, as the engine hands it to the program (``llm-ab:key`` -> value)."""
    import yaml

    return dict(yaml.safe_load((ROOT / "Pulumi.dev.yaml").read_text())["config"])


def raw_config(config: dict[str, Any]) -> dict[str, Any]:
    """Stack config without the project prefix, as :func:`stacks.settings.parse_settings` takes it."""
    return {key.split(":", 1)[1]: value for key, value in config.items()}


@pytest.fixture
def pulumi_mocks(monkeypatch: pytest.MonkeyPatch) -> Iterator[RecordingMocks]:
    """A fresh Pulumi runtime with recording mocks; config from ``PULUMI_CONFIG`` if a test sets it."""
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    old = pulumi.runtime.settings.SETTINGS
    mocks = RecordingMocks()
    real_register = pulumi.resource.register_resource

    def recording_register(res, ty, name, custom, remote, new_dependency, props, opts, *args, **kwargs):
        mocks.options[name] = opts or pulumi.ResourceOptions()
        return real_register(res, ty, name, custom, remote, new_dependency, props, opts, *args, **kwargs)

    monkeypatch.setattr(pulumi.resource, "register_resource", recording_register)
    pulumi.runtime.set_mocks(mocks, project="llm-ab", stack="test", preview=False)
    try:
        yield mocks
    finally:
        pulumi.runtime.settings.configure(old)
        loop.close()
        asyncio.set_event_loop(None)


def set_stack_config(monkeypatch: pytest.MonkeyPatch, config: dict[str, Any]) -> None:
    """Give the program ``config`` the way the engine does (JSON strings for objects)."""
    encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()}
    monkeypatch.setenv("PULUMI_CONFIG", json.dumps(encoded))
    pulumi.runtime.config.CONFIG.set({})


@pytest.fixture
def run_program(pulumi_mocks: RecordingMocks):
    """Run ``fn`` as a Pulumi program under the mocks and wait for every registration."""

    def run(fn):
        result: dict[str, Any] = {}

        @pulumi.runtime.test
        def program() -> None:
            result["value"] = fn()

        program()
        return result.get("value")

    return run


@pytest.fixture
def resolve(pulumi_mocks: RecordingMocks):
    """Resolve an Output (or a plain value, or a dict/list of them) to its value after a run."""

    def value_of(x: Any) -> Any:
        if isinstance(x, pulumi.Output):
            return asyncio.get_event_loop().run_until_complete(x.future())
        if isinstance(x, dict):
            return {k: value_of(v) for k, v in x.items()}
        if isinstance(x, list):
            return [value_of(v) for v in x]
        return x

    return value_of


@pytest.fixture
def is_secret(pulumi_mocks: RecordingMocks):
    """Whether an Output is marked secret."""

    def check(x: Any) -> bool:
        return isinstance(x, pulumi.Output) and asyncio.get_event_loop().run_until_complete(x.is_secret())

    return check


SECRET_SIG = "4dabf18193072939515e22adb298388d"
"""Pulumi's marker key for secret values in recorded inputs."""


def is_secret_value(value: Any) -> bool:
    return isinstance(value, dict) and SECRET_SIG in value


def unsecret(value: Any) -> Any:
    """The plain value inside a recorded secret input (or the value itself)."""
    return value["value"] if is_secret_value(value) else value
