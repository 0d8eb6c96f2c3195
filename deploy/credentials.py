"""Which credential generator a stack uses, decided once and then kept (components/credentials.py).

Pure functions: the driver feeds them the stack's config, its last outputs and the installed plugins.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from components.credentials import CredentialGenerator
from deploy.workspace import PROJECT, DriverError
from stacks import outputs as OUT

CONFIG_KEY = f"{PROJECT}:credentials"
"""The stack config object holding ``generator``."""
PATH_KEY = "credentials.generator"


@dataclass(frozen=True)
class Choice:
    generator: CredentialGenerator
    record: bool
    """True when the driver must record it in the stack's state (a stack whose user never chose)."""
    reason: str


def configured_generator(stack_config: Mapping[str, object]) -> str | None:
    """``credentials.generator`` as set in ``Pulumi.<stack>.yaml`` (not Pulumi.yaml's default, which
    the engine would merge in): its ``config`` mapping, objects as mappings or JSON strings."""
    value = stack_config.get(CONFIG_KEY)
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return None
    return value.get("generator") if isinstance(value, Mapping) else None


def deployed_generator(deployment: Mapping[str, Any]) -> str | None:
    """The ``credentialGenerator`` output of an exported deployment (``pulumi stack export``: no
    decryption needed, the value is not secret); None for a stack never deployed."""
    for resource in deployment.get("resources") or []:
        if resource.get("type") == "pulumi:pulumi:Stack":
            value = (resource.get("outputs") or {}).get(OUT.CREDENTIAL_GENERATOR)
            return value if isinstance(value, str) else None
    return None


def choose(configured: str | None, deployed: str | None, random_plugin: Callable[[], bool], *,
           recorded: str | None = None, allow_rotation: bool = False) -> Choice:
    """Keep what the stack has; a stack whose user never chose takes what was deployed, else what an
    earlier run ``recorded`` in the stack's state, else pulumi-random when its plugin is installed, else
    the built-in generator. A configured generator that differs from the deployed credentials' is
    refused unless rotation is allowed. ``random_plugin`` is asked only where the answer matters
    (listing plugins costs a CLI call)."""
    allowed = [g.value for g in CredentialGenerator]
    if configured is None:
        if deployed is not None:
            return Choice(CredentialGenerator(deployed), deployed != recorded,
                          f"the deployed credentials came from {deployed}")
        if recorded in allowed:
            return Choice(CredentialGenerator(recorded), False, "recorded when the stack first ran")
        if random_plugin():
            return Choice(CredentialGenerator.RANDOM, False, "pulumi-random's plugin is installed")
        return Choice(CredentialGenerator.BUILTIN, True,
                      "pulumi-random's plugin is not installed, so llm-ab's built-in generator is used")
    if configured not in allowed:
        raise DriverError(f"{PATH_KEY}: must be one of {', '.join(allowed)}, got {configured!r}")
    if deployed is not None and deployed != configured and not allow_rotation:
        raise DriverError(
            f"{PATH_KEY} is {configured!r} but the deployed credentials came from {deployed!r}: the change would "
            f"replace every MinIO credential (root and users), and the bucket users would be created anew. "
            f"Set it back (pulumi config set --path {PATH_KEY} {deployed}), or rotate on purpose with "
            f"--allow-credential-rotation.")
    if configured == CredentialGenerator.RANDOM.value and deployed != configured and not random_plugin():
        raise DriverError(
            f"{PATH_KEY} is 'random' but pulumi-random's provider plugin is not installed in PULUMI_HOME; install it "
            f"(pulumi plugin install resource random <version>) or use the built-in generator "
            f"(pulumi config set --path {PATH_KEY} builtin) on a stack that has no credentials yet.")
    return Choice(CredentialGenerator(configured), False, f"{PATH_KEY} is {configured!r} in the stack's config")


def has_random_plugin(plugins: Iterable[tuple[str, str, str | None]], sdk_version: str) -> bool:
    """True when a resource plugin ``random`` of the Python SDK's version is installed."""
    return any(name == "random" and kind == "resource" and (version or "").lstrip("v") == sdk_version
               for name, kind, version in plugins)
