"""Sample configs the tests share: the stack files' configs and a ModelMesh pair (plain data)."""

from __future__ import annotations

import copy
from typing import Any

from tests.harness import stack_config

SHA_A = "0fc9ddf78a1e988dac52e2dac162b0ede4fd74ab"
SHA_B = "7bcac572ce56db69c1ea7c8af255c5d7c9672fc2"
"""The tutorial pair's pinned revisions (flan-t5-small, flan-t5-base)."""

REV_A = "a" * 40
REV_B = "b" * 40
PRIMARY = {"repo": "julien-c/wine-quality", "revision": REV_A, "file": "sklearn_model.joblib", "format": "sklearn"}
"""A ModelMesh primary: the scikit-learn wine-quality model."""
CANDIDATE = {**PRIMARY, "revision": REV_B, "version": "v1"}


def dev_config() -> dict[str, Any]:
    """The dev stack's config, as the engine hands it to the program (``llm-ab:key`` -> value)."""
    return stack_config("dev")


def staging_config() -> dict[str, Any]:
    return stack_config("staging")


def minimal() -> dict[str, Any]:
    """The least raw config (no project prefix) that parses: just the two models."""
    return {"models": {"stable": {"id": "google/flan-t5-small", "revision": SHA_A},
                       "canary": {"id": "google/flan-t5-base", "revision": SHA_B}}}


def with_value(path: str, value: Any) -> dict[str, Any]:
    """:func:`minimal` with ``path`` (dotted) set to ``value``."""
    raw = copy.deepcopy(minimal())
    node = raw
    *parents, leaf = path.split(".")
    for part in parents:
        node = node.setdefault(part, {})
    node[leaf] = value
    return raw


GATEWAY_URL = "http://llm-gw.gateway-system.svc.cluster.local"


def gateway_split(**overrides: Any) -> dict[str, Any]:
    """A gateway-mode ``split`` section: a 10 % canary on an Envoy-style Gateway, with header matches."""
    return {"mode": "gateway", "canaryPercent": 10, "stableReplicas": 1, "canaryReplicas": 1,
            "gateway": {"name": "llm-gw", "namespace": "gateway-system", "url": GATEWAY_URL},
            "canaryHeader": "x-llm-ab-variant: canary", "stableHeader": "x-llm-ab-variant: stable", **overrides}


def dev_gateway_config(*, autoscaling: bool = True) -> dict[str, Any]:
    """The dev stack in gateway mode: the route at 10 % with both header matches, and (by default) an HPA per
    variant on TGI's queue size."""
    config = {**dev_config(), "llm-ab:split": gateway_split()}
    if autoscaling:
        config["llm-ab:autoscaling"] = {"enabled": True, "minReplicas": 1, "maxReplicas": 3, "metric": "pods",
                                        "metricName": "tgi_queue_size", "averageValue": "4"}
    return config


def loosest_gate_thresholds() -> dict[str, Any]:
    """The loosest ``analysis.*`` thresholds the stack accepts without ``analysis.unsafeThresholds``: a margin that
    may be none none, every other threshold at its gate limit (``analysis.thresholds.GATE_LIMITS``)."""
    from analysis.thresholds import CONFIG_KEYS, GATE_LIMITS

    return {CONFIG_KEYS[limit.name]: None if limit.may_be_none else limit.limit for limit in GATE_LIMITS}


ISSUE_22_EXTREMES: dict[str, Any] = {
    "maxTtftP50RegressionPct": None, "maxTtftP95RegressionPct": None, "maxE2eP50RegressionPct": None,
    "maxE2eP95RegressionPct": None, "maxItlP50RegressionPct": None, "maxTokensPerSecondDropPct": None,
    "maxErrorRate": 1.0, "maxErrorRateIncrease": 1.0, "minCasePassRate": 0.0, "maxCasePassRateDrop": 1.0}
"""The thresholds at the extremes their ranges allow, which promoted a canary three times slower with 20 % errors
(issue 22): refused by the stack unless ``analysis.unsafeThresholds`` is true."""
