"""Generated credentials: pulumi-random where its plugin is installed, a built-in generator elsewhere.

Which one a stack uses is its config key ``credentials.generator`` (``random`` | ``builtin``).
Either way a credential is generated once, on create, and then kept in the stack's state as a
secret: previews and updates leave it as it is. The two generators are different resource types,
so switching a deployed stack from one to the other replaces (rotates) every credential; the
deploy driver (``python -m deploy``) refuses that switch unless asked (``--allow-credential-rotation``).

The built-in generator is a Pulumi dynamic resource: it needs only the Python SDK and the
``pulumi-resource-pulumi-python`` host that ships with the CLI, so it works on networks where
pulumi-random's provider plugin can't be had.
"""

from __future__ import annotations

import enum
from typing import Any

import pulumi
import pulumi.dynamic

ALPHANUMERIC = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


class CredentialGenerator(str, enum.Enum):
    RANDOM = "random"
    """pulumi-random's RandomPassword (needs its provider plugin)."""
    BUILTIN = "builtin"
    """llm-ab's dynamic resource (Python's ``secrets`` module, run by the engine's Python host)."""


def _provider_class() -> type[pulumi.dynamic.ResourceProvider]:
    """The built-in generator's provider, defined inside a function so that dill stores the class
    *by value* in the state: the engine's Python host then runs it without this repository on its
    path, and moving this module can't break a deployed stack. Its methods use only the standard
    library and the Pulumi SDK."""

    class GeneratedSecretProvider(pulumi.dynamic.ResourceProvider):
        """Creates a random value once (CSPRNG: ``secrets``); a change of length or alphabet
        replaces it, nothing else does."""

        def create(self, props: dict[str, Any]) -> pulumi.dynamic.CreateResult:
            import secrets
            import uuid

            length, alphabet = int(props["length"]), str(props["alphabet"])
            if length < 1 or not alphabet:
                raise ValueError(f"a credential needs a length of at least 1 and an alphabet, got {length}")
            value = "".join(secrets.choice(alphabet) for _ in range(length))
            return pulumi.dynamic.CreateResult(uuid.uuid4().hex,
                                               {"length": props["length"], "alphabet": alphabet, "result": value})

        def diff(self, _id: str, olds: dict[str, Any], news: dict[str, Any]) -> pulumi.dynamic.DiffResult:
            replaces = [key for key in ("length", "alphabet") if olds.get(key) != news.get(key)]
            return pulumi.dynamic.DiffResult(changes=bool(replaces), replaces=replaces, delete_before_replace=False)

        def read(self, id_: str, props: dict[str, Any]) -> pulumi.dynamic.ReadResult:
            return pulumi.dynamic.ReadResult(id_, props)

    return GeneratedSecretProvider


GeneratedSecretProvider = _provider_class()


class GeneratedSecret(pulumi.dynamic.Resource):
    """A generated credential; ``result`` is a secret output."""

    result: pulumi.Output[str]

    def __init__(self, name: str, length: int, opts: pulumi.ResourceOptions | None = None) -> None:
        opts = pulumi.ResourceOptions.merge(opts, pulumi.ResourceOptions(additional_secret_outputs=["result"]))
        super().__init__(GeneratedSecretProvider(), name,
                         {"length": length, "alphabet": ALPHANUMERIC, "result": None}, opts)


def credential(name: str, length: int, generator: CredentialGenerator,
               opts: pulumi.ResourceOptions | None = None) -> pulumi.Output[str]:
    """An alphanumeric credential of ``length`` characters (they end up in URLs and shell variables)."""
    if generator is CredentialGenerator.RANDOM:
        import pulumi_random as random  # only where its plugin is used

        return pulumi.Output.secret(random.RandomPassword(name, length=length, special=False, opts=opts).result)
    return pulumi.Output.secret(GeneratedSecret(name, length, opts=opts).result)
