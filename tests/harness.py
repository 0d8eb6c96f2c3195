"""Run the Pulumi program (or any function that registers resources) under recording mocks.

The one way tests run Pulumi code: :func:`mocked_runtime` sets up a fresh runtime and
:func:`run_program` / :func:`run_main` run code in it. ``tests/conftest.py`` wraps them as the
``pulumi_mocks``, ``run_program`` and ``run_main`` fixtures; ``tests/golden/render.py`` uses them
for the resource snapshots.

Resource options are captured through the SDK's public stack-transformation hook
(:func:`pulumi.runtime.register_stack_transformation`), which sees every resource's options as
the program passed them. (``register_resource_transform`` would be the newer hook, but the mock
monitor never runs those transforms, so under mocks it sees nothing.)
"""

from __future__ import annotations

import asyncio
import json
import runpy
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pulumi

ROOT = Path(__file__).resolve().parent.parent
PROJECT = "llm-ab"

SECRET_SIG = "4dabf18193072939515e22adb298388d"
"""Pulumi's marker key for secret values in recorded inputs."""

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


@dataclass
class Registration:
    """What the SDK sent the monitor for one resource (what the engine and its analyzers see):
    urn, parent, ``protect``, dependencies and property dependencies."""

    urn: str
    request: Any


DYNAMIC_RESOURCE = "pulumi-python:dynamic:Resource"
"""Type token of every Python dynamic resource (components/credentials.py's built-in generator)."""


class RecordingMocks(pulumi.runtime.Mocks):
    """Records every resource registration; echoes inputs back as outputs (camelCase keys)."""

    def __init__(self) -> None:
        self.resources: list[pulumi.runtime.MockResourceArgs] = []
        self.calls: list[pulumi.runtime.MockCallArgs] = []
        self.options: dict[str, pulumi.ResourceOptions] = {}
        """Resource options by logical name, as the program passed them."""
        self.registrations: list[Registration] = []
        """The monitor's view of each registration (:class:`RecordingMonitor`)."""
        self.names: dict[int, str] = {}
        """Logical name of each resource object, for naming the resources options refer to."""

    def record_options(self, args: pulumi.ResourceTransformationArgs) -> None:
        """Stack transformation: remember the options, change nothing."""
        self.options[args.name] = args.opts or pulumi.ResourceOptions()
        self.names[id(args.resource)] = args.name

    def name_of(self, resource: Any) -> str:
        """The logical name of a resource object the program created."""
        return self.names.get(id(resource), f"<{type(resource).__name__}>")

    def depends_on(self, name: str) -> set[str]:
        """Names of what resource ``name`` was told to depend on (its ``depends_on`` option)."""
        deps = self.options[name].depends_on or []
        return {self.name_of(d) for d in (deps if isinstance(deps, list | tuple) else [deps])}

    def new_resource(self, args: pulumi.runtime.MockResourceArgs) -> tuple[str, dict[str, Any]]:
        self.resources.append(args)
        outputs = dict(args.inputs)
        if args.typ in ("random:index/randomPassword:RandomPassword", DYNAMIC_RESOURCE):
            outputs["result"] = f"generated-{args.name}-" + "x" * int(args.inputs.get("length", 16))
        if args.typ.startswith("kubernetes:") and "metadata" in outputs:
            meta = dict(outputs["metadata"] or {})
            meta.setdefault("name", f"{args.name}-abc123")  # Pulumi's auto-naming
            meta.setdefault("uid", str(uuid.uuid5(uuid.NAMESPACE_URL, f"{meta.get('namespace')}/{meta['name']}")))
            outputs["metadata"] = meta  # and the API server's uid (one per namespace and name)
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


class RecordingMonitor(pulumi.runtime.mocks.MockMonitor):
    """The SDK's mock monitor (passed to ``set_mocks(monitor=...)``), also keeping each request."""

    mocks: RecordingMocks

    def RegisterResource(self, request: Any) -> Any:  # noqa: N802 - the gRPC method's name
        response = super().RegisterResource(request)
        self.mocks.registrations.append(Registration(response.urn, request))
        return response


@contextmanager
def mocked_runtime(*, stack: str = "test") -> Iterator[RecordingMocks]:
    """A fresh Pulumi runtime with recording mocks, torn down afterwards.

    A new event loop per runtime (Python 3.12+ creates none implicitly), a new root Stack (the SDK
    keeps one per process, so stack transformations would leak between runs: pulumi/pulumi#8280),
    and the old settings and config restored at the end.
    """
    loop = asyncio.new_event_loop()
    asyncio.set_event_loop(loop)
    old_settings = pulumi.runtime.settings.SETTINGS
    root_token = pulumi.runtime.settings.ROOT.set(None)
    mocks = RecordingMocks()
    pulumi.runtime.set_mocks(mocks, project=PROJECT, stack=stack, preview=False, monitor=RecordingMonitor(mocks))
    pulumi.runtime.register_stack_transformation(mocks.record_options)
    try:
        yield mocks
    finally:
        pulumi.runtime.set_all_config({})
        pulumi.runtime.settings.configure(old_settings)
        pulumi.runtime.settings.ROOT.reset(root_token)
        loop.close()
        asyncio.set_event_loop(None)


def set_stack_config(config: Mapping[str, Any]) -> None:
    """Give the program ``config`` (``llm-ab:key`` -> value) the way the engine does: JSON strings
    for objects and lists."""
    pulumi.runtime.set_all_config({k: v if isinstance(v, str) else json.dumps(v) for k, v in config.items()})


def run_program(fn: Callable[[], Any]) -> Any:
    """Run ``fn`` as a Pulumi program in the current mocked runtime; wait for every registration."""
    result: dict[str, Any] = {}

    @pulumi.runtime.test
    def program() -> None:
        result["value"] = fn()

    program()
    return result.get("value")


def run_main(config: Mapping[str, Any]) -> dict[str, Any]:
    """Run ``__main__.py`` with ``config`` in the current mocked runtime; the stack outputs it exports."""
    set_stack_config(config)
    exported: dict[str, Any] = {}
    real_export = pulumi.export
    pulumi.export = lambda name, value: exported.__setitem__(name, value)  # type: ignore[assignment]
    try:
        run_program(lambda: runpy.run_path(str(ROOT / "__main__.py"), run_name="__main__"))
    finally:
        pulumi.export = real_export  # type: ignore[assignment]
    return exported


def resolve(value: Any) -> Any:
    """An Output (or a plain value, or a dict/list of them) as its value, after a run."""
    if isinstance(value, pulumi.Output):
        return asyncio.get_event_loop().run_until_complete(value.future())
    if isinstance(value, Mapping):
        return {k: resolve(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [resolve(v) for v in value]
    return value


def is_secret(value: Any) -> bool:
    """Whether an Output is marked secret."""
    return isinstance(value, pulumi.Output) and asyncio.get_event_loop().run_until_complete(value.is_secret())


def is_secret_value(value: Any) -> bool:
    """Whether a recorded input is a secret."""
    return isinstance(value, dict) and SECRET_SIG in value


def unsecret(value: Any) -> Any:
    """The plain value inside a recorded secret input (or the value itself)."""
    return value["value"] if is_secret_value(value) else value


def stack_config(stack: str, root: Path = ROOT) -> dict[str, Any]:
    """A stack's config from ``Pulumi.<stack>.yaml`` (``llm-ab:key`` -> value) as its user chose it: what only a
    deployment writes there (the encryption salt; the credential generator an older driver recorded) is left out,
    so ``make up`` before ``make test`` changes nothing the tests see."""
    import yaml

    from deploy.workspace import user_config

    return user_config(yaml.safe_load((root / f"Pulumi.{stack}.yaml").read_text()))


def raw_config(config: Mapping[str, Any]) -> dict[str, Any]:
    """Stack config without the project prefix, as the settings parser takes it."""
    return {key.split(":", 1)[1]: value for key, value in config.items()}


def shell_assignments(*cmd: str) -> dict[str, str]:
    """``NAME=value`` lines a script prints (``scripts/images refs``, ``scripts/real-node plan``), as a dict."""
    import subprocess

    out = subprocess.run(list(cmd), capture_output=True, text=True, check=True).stdout
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)
