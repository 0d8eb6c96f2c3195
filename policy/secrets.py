"""Rules against credentials in plain text: in env values and ConfigMaps, and literal Secret data."""

from __future__ import annotations

import base64
import binascii
import re
from collections.abc import Iterator, Mapping
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    ReportViolation,
    ResourceValidationArgs,
    StackValidationArgs,
)
from pulumi_policy.proxy import UnknownValueError

from .props import DATASET, SECRET, config_of, container_name, get, known, pod_template, walk_strings

CREDENTIALS_SCHEMA = PolicyConfigSchema(properties={
    "knownDefaults": {
        "type": "array", "items": {"type": "string"},
        "default": ["minioadmin", "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"],
        "description": "Well-known default or example credentials, rejected anywhere in any value.",
    },
    "placeholderValues": {
        "type": "array", "items": {"type": "string"},
        "default": ["ACCESS_KEY", "SECRET_KEY", "ACCESS_KEY_ID", "SECRET_ACCESS_KEY", "changeme", "password"],
        "description": "Placeholders rejected as whole values where credentials live (Secret data, "
                       "env values, container args, Dataset spec.local).",
    },
    "sensitiveEnvPattern": {
        "type": "string",
        "default": r"(?:^|_)(?:SECRET|PASSWORD|PASSWD|ACCESS_KEY|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIALS?)(?:_|$)",
        "description": "Env var names (case-insensitive regex) that must come from a Secret, never `value`.",
    },
    "referenceEnvSuffixes": {
        "type": "array", "items": {"type": "string"}, "default": ["_NAME", "_FILE", "_PATH", "_DIR", "_REF"],
        "description": "Sensitive-looking env names that hold a reference, not a credential (e.g. SECRET_NAME).",
    },
})


def _decoded(value: str) -> str | None:
    try:
        return base64.b64decode(value, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None


def credential_values(resource_type: str, props: Mapping[str, Any]) -> Iterator[tuple[str, str]]:
    """(where, value) of every known value that holds or configures a credential."""
    if resource_type == SECRET:
        for path, value in walk_strings(known(props, "stringData", default={}), "stringData"):
            yield path, value
        for path, value in walk_strings(known(props, "data", default={}), "data"):
            yield path, _decoded(value) or value
    if resource_type == DATASET:
        yield from walk_strings(known(props, "spec", "local", default={}), "spec.local")
    pod = pod_template(resource_type, props, "")
    if pod is not None:
        for c in pod.containers():
            name = container_name(c)
            for env in known(c, "env", default=[]):
                value = known(env, "value")
                if isinstance(value, str):
                    yield f"container '{name}' env {known(env, 'name', default='?')}", value
            for key in ("command", "args"):
                for i, value in enumerate(known(c, key, default=[])):
                    if isinstance(value, str):
                        yield f"container '{name}' {key}[{i}]", value


def no_plaintext_credentials(args: ResourceValidationArgs, report_violation: ReportViolation) -> None:
    """No known default credentials anywhere; secret-named env vars come from Secrets, not literals."""
    cfg = config_of(args, CREDENTIALS_SCHEMA)
    defaults = [d for d in cfg["knownDefaults"] if d]
    for path, value in walk_strings(args.props):
        decoded = _decoded(value) if path.startswith("data.") and args.resource_type == SECRET else None
        for text in (value, decoded or ""):
            hit = next((d for d in defaults if d.lower() in text.lower()), None)
            if hit:
                report_violation(f"{path} contains the well-known default credential '{hit}'", None)
                break
    placeholders = {p.lower() for p in cfg["placeholderValues"]}
    for where, value in credential_values(args.resource_type, args.props):
        if value.strip().lower() in placeholders:
            report_violation(f"{where} is the placeholder credential '{value.strip()}'", None)
    pod = pod_template(args.resource_type, args.props, args.name)
    if pod is None:
        return
    sensitive = re.compile(cfg["sensitiveEnvPattern"], re.IGNORECASE)
    suffixes = tuple(s.upper() for s in cfg["referenceEnvSuffixes"])
    for c in pod.containers():
        for env in known(c, "env", default=[]):
            name = known(env, "name", default="")
            if not isinstance(name, str) or not sensitive.search(name) or name.upper().endswith(suffixes):
                continue
            if known(env, "value", default="") != "" or _is_unknown_value(env):
                report_violation(f"container '{container_name(c)}' sets {name} from a literal value; "
                                 "use valueFrom.secretKeyRef or envFrom a Secret", None)


def _is_unknown_value(env: Mapping[str, Any]) -> bool:
    """A ``value`` that is unknown during preview is still a value written into the pod spec."""
    try:
        get(env, "value")
    except UnknownValueError:
        return True
    return False


# --------------------------------------------------------------------------------------------------
# k8s-secret-data-not-literal (stack)

SECRET_DATA_SCHEMA = PolicyConfigSchema(properties={
    "allowedSecrets": {
        "type": "array", "items": {"type": "string"}, "default": [],
        "description": "Secrets (metadata.name or Pulumi name) whose values may come from stack config.",
    },
})


def secret_data_not_literal(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Secret values come from other resources (e.g. pulumi-random), not from literals in the program.

    Policies receive secret values unwrapped, so "is it a Pulumi secret" cannot be checked; where a
    value comes from can: a value computed from another resource has a property dependency, a
    literal (or a stack-config value) has none. Empty values are ignored.
    """
    cfg = config_of(args, SECRET_DATA_SCHEMA)
    allowed = set(cfg["allowedSecrets"])
    for r in args.resources:
        if r.resource_type != SECRET:
            continue
        name = known(r.props, "metadata", "name", default=r.name)
        if name in allowed or r.name in allowed:
            continue
        # After `up`, stack policies see outputs: the API server's `data` for our `stringData` input.
        # The dependencies stay keyed by input, so either key's dependencies count for both.
        keys = ("stringData", "data")
        with_values = [k for k in keys if any(v for _, v in walk_strings(known(r.props, k, default={})))]
        if with_values and not any(r.property_dependencies.get(k) for k in keys):
            report_violation(f"Secret '{name}' sets {' and '.join(with_values)} from literals (or stack config), "
                             "not from a generating resource; generate it (pulumi-random) or list it in "
                             "allowedSecrets", r.urn)
