"""Run the policy pack's validators the way the pulumi-policy SDK does, on hand-built or recorded resources.

Props go through the same steps as in the SDK's analyzer servicer: a protobuf ``Struct`` (numbers
become floats), ``json_format.MessageToDict``, ``deserialize_properties`` (secret markers are
unwrapped) and ``unknown_checking_proxy`` (unknown values raise when read).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from google.protobuf import json_format, struct_pb2
from pulumi_policy import (
    EnforcementLevel,
    PolicyCustomTimeouts,
    PolicyResource,
    PolicyResourceOptions,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    StackValidationArgs,
    StackValidationPolicy,
)
from pulumi_policy.deserialize import deserialize_properties
from pulumi_policy.policy import _NotApplicableError
from pulumi_policy.proxy import UnknownValueError, unknown_checking_proxy

from policy.rules import PACK_ENFORCEMENT, POLICIES
from tests.harness import ROOT, SECRET_SIG, RecordingMocks, Registration, run_main

POLICY_DIR = ROOT / "policy"
SECRET_VALUE_SIG = "1b47061264138c4ac30d75fd1eb44270"
UNKNOWN = "04da6b54-80e4-46f7-96ec-b56ff0331ba9"
"""The engine's sentinel for an unknown string (a value computed by another resource, in preview)."""

BY_NAME = {p.name: p for p in POLICIES}


def secret(value: Any) -> dict[str, Any]:
    """A value marked secret, as the engine sends it to analyzers."""
    return {SECRET_SIG: SECRET_VALUE_SIG, "value": value}


def sdk_props(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """``raw`` (engine wire form: secret markers, unknown sentinels) as the SDK hands it to a validator."""
    struct = struct_pb2.Struct()
    struct.update(json.loads(json.dumps(raw)))
    return unknown_checking_proxy(deserialize_properties(json_format.MessageToDict(struct)))


def opts(protect: bool = False, parent: str | None = None) -> PolicyResourceOptions:
    return PolicyResourceOptions(protect, [], None, [], PolicyCustomTimeouts(0, 0, 0), [], parent)


@dataclass
class Outcome:
    """What one policy did with one resource (or the stack)."""

    violations: list[str] = field(default_factory=list)
    urns: list[str | None] = field(default_factory=list)
    not_applicable: str | None = None
    unknown: str | None = None
    """The SDK's advisory "can't run policy ... during preview" reason, if a read hit an unknown."""

    def report(self, message: str, urn: str | None = None) -> None:
        self.violations.append(message)
        self.urns.append(urn)


def _run(policy: Any, args: Any) -> Outcome:
    outcome = Outcome()
    try:
        policy.validate(args, outcome.report)
    except _NotApplicableError as e:
        outcome.not_applicable = e.reason
    except UnknownValueError as e:
        outcome.unknown = e.message
    return outcome


def check(name: str, resource_type: str, props: Mapping[str, Any], *, config: Mapping[str, Any] | None = None,
          protect: bool = False, resource_name: str = "r") -> Outcome:
    """Run resource policy ``name`` on one resource built from engine-form ``props``."""
    policy = BY_NAME[name]
    assert isinstance(policy, ResourceValidationPolicy), name
    args = ResourceValidationArgs(resource_type, sdk_props(props), f"urn:pulumi:test::llm-ab::{resource_type}::"
                                  f"{resource_name}", resource_name, opts(protect), None, dict(config or {}))
    return _run(policy, args)


def resource(resource_type: str, name: str, props: Mapping[str, Any], *,
             property_dependencies: Mapping[str, Sequence[PolicyResource]] | None = None) -> PolicyResource:
    return PolicyResource(resource_type, sdk_props(props), f"urn:pulumi:test::llm-ab::{resource_type}::{name}", name,
                          opts(), None, None, [], {k: list(v) for k, v in (property_dependencies or {}).items()})


def check_stack(name: str, resources: Sequence[PolicyResource], *, config: Mapping[str, Any] | None = None) -> Outcome:
    """Run stack policy ``name`` on ``resources``."""
    policy = BY_NAME[name]
    assert isinstance(policy, StackValidationPolicy), name
    return _run(policy, StackValidationArgs(list(resources), dict(config or {})))


# --------------------------------------------------------------------------------------------------
# Kubernetes objects in engine form (camelCase), small enough to read in a test.

TGI_IMAGE = "ghcr.io/huggingface/text-generation-inference:1.3.4"


def tgi_container(**overrides: Any) -> dict[str, Any]:
    c: dict[str, Any] = {
        "name": "tgi",
        "image": TGI_IMAGE,
        "startupProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 10},
        "readinessProbe": {"httpGet": {"path": "/health", "port": "http"}, "periodSeconds": 15},
        "resources": {"requests": {"cpu": "2", "memory": "4Gi"}, "limits": {"cpu": "8", "memory": "16Gi"}},
        "env": [{"name": "MODEL_ID", "value": "/mnt/datasets/model-weights/flan-t5-small/abc"}],
    }
    c.update(overrides)
    return c


def deployment(name: str = "text-generation-inference-stable", *, labels: Mapping[str, str] | None = None,
               containers: Sequence[Mapping[str, Any]] | None = None, replicas: int = 1,
               namespace: str = "llm-ab-dev", **pod_spec: Any) -> dict[str, Any]:
    labels = dict(labels if labels is not None else {"run": "text-generation-inference", "type": "stable"})
    return {
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": namespace, "labels": labels},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels},
                         "spec": {"containers": list(containers if containers is not None else [tgi_container()]),
                                  **pod_spec}},
        },
    }


def variant(kind: str, replicas: int, *, declared: str | None = "50", tolerance: str | None = "5",
            **kwargs: Any) -> PolicyResource:
    """A TGI Deployment of one variant, as a stack resource, with the declared split on its metadata."""
    name = f"text-generation-inference-{kind}"
    props = deployment(name, labels={"run": "text-generation-inference", "type": kind}, replicas=replicas, **kwargs)
    annotations = {}
    if declared is not None:
        annotations["llm-ab/declared-canary-percent"] = declared
    if tolerance is not None:
        annotations["llm-ab/split-tolerance"] = tolerance
    if annotations:
        props["metadata"]["annotations"] = annotations
    return resource("kubernetes:apps/v1:Deployment", f"tgi-{kind}-deploy", props)


def traffic_service(*, selector: Mapping[str, str] | None = None,
                    name: str = "text-generation-inference") -> PolicyResource:
    return resource("kubernetes:core/v1:Service", "traffic-svc", {
        "metadata": {"name": name, "namespace": "llm-ab-dev"},
        "spec": {"type": "ClusterIP", "selector": dict(selector or {"run": "text-generation-inference"})},
    })


# --------------------------------------------------------------------------------------------------
# Whole programs under mocks, converted to what the engine would hand the pack.


@dataclass
class Violation:
    policy: str
    level: EnforcementLevel
    resource: str
    """Pulumi name of the resource, or "<stack>" for stack-level violations without a URN."""
    message: str


def load_pack_config(path: Path | None) -> dict[str, Any]:
    """A ``--policy-pack-config`` file (policy name -> level string, or {enforcementLevel?, props...})."""
    return json.loads(path.read_text()) if path is not None and path.exists() else {}


def run_pack(resources: Sequence[PolicyResource], pack_config: Mapping[str, Any] | None = None) -> list[Violation]:
    """Every policy on every resource, then the stack policies, with the engine's config semantics."""
    pack_config = dict(pack_config or {})
    by_urn = {r.urn: r.name for r in resources}
    found: list[Violation] = []
    for policy in POLICIES:
        entry = pack_config.get(policy.name, pack_config.get("all", {}))
        if isinstance(entry, str):
            entry = {"enforcementLevel": entry}
        level_name = entry.get("enforcementLevel")
        level = EnforcementLevel(level_name) if level_name else (policy.enforcement_level or PACK_ENFORCEMENT)
        if level == EnforcementLevel.DISABLED:
            continue
        config = {k: v for k, v in entry.items() if k != "enforcementLevel"}
        if isinstance(policy, ResourceValidationPolicy):
            for r in resources:
                args = ResourceValidationArgs(r.resource_type, r.props, r.urn, r.name, r.opts, None, config)
                outcome = _run(policy, args)
                assert outcome.unknown is None, (policy.name, r.name, outcome.unknown)
                found += [Violation(policy.name, level, r.name, m) for m in outcome.violations]
        else:
            outcome = _run(policy, StackValidationArgs(list(resources), config))
            assert outcome.unknown is None, (policy.name, outcome.unknown)
            found += [Violation(policy.name, level, by_urn.get(u or "", "<stack>"), m)
                      for m, u in zip(outcome.violations, outcome.urns, strict=True)]
    return found


def mandatory(violations: Sequence[Violation]) -> list[tuple[str, str, str]]:
    return [(v.policy, v.resource, v.message) for v in violations if v.level == EnforcementLevel.MANDATORY]


def advisory(violations: Sequence[Violation]) -> list[tuple[str, str, str]]:
    return [(v.policy, v.resource, v.message) for v in violations if v.level == EnforcementLevel.ADVISORY]


def to_policy_resources(mocks: RecordingMocks, captured: Sequence[Registration]) -> list[PolicyResource]:
    """The recorded program as the SDK's PolicyResources.

    Props come from ``RecordingMocks.resources`` (secret-marked inputs are unwrapped exactly as the
    SDK does it); urn, parent, ``protect`` and property dependencies come from the captured requests.
    ``retainOnDelete`` is dropped, because the engine does not send it to analyzers.
    """
    meta = {(c.request.type, c.request.name): c for c in captured}
    out: list[PolicyResource] = []
    for r in mocks.resources:
        reg = meta[(r.typ, r.name)]
        req = reg.request
        options = PolicyResourceOptions(bool(req.protect), list(req.ignoreChanges),
                                        req.deleteBeforeReplace if req.deleteBeforeReplaceDefined else None,
                                        [], PolicyCustomTimeouts(0, 0, 0), list(req.additionalSecretOutputs),
                                        req.parent or None)
        out.append(PolicyResource(r.typ, sdk_props(r.inputs), reg.urn, r.name, options, None, None, [], {}))
    by_urn = {p.urn: p for p in out}
    for p in out:
        req = meta[(p.resource_type, p.name)].request
        p.parent = by_urn.get(req.parent)
        p.dependencies = [by_urn[u] for u in req.dependencies if u in by_urn]
        p.property_dependencies = {k: [by_urn[u] for u in v.urns if u in by_urn]
                                   for k, v in req.propertyDependencies.items()}
    return out


def run_stack_program(config: Mapping[str, Any]) -> None:
    """Run __main__.py with ``config`` under the current mocks."""
    run_main(config)

