"""Stack rules on the A/B split: both variants behind the traffic Service, the canary's share capped
and within tolerance of the declared split (the annotations of :mod:`contract`)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from pulumi_policy import (
    PolicyConfigSchema,
    PolicyResource,
    ReportViolation,
    StackValidationArgs,
)

from .contract import (
    DECLARED_PERCENT_ANNOTATION,
    RUN_LABEL,
    SPLIT_TOLERANCE_ANNOTATION,
    TGI_APP,
    VARIANT_LABEL,
)
from .props import (
    DEPLOYMENT,
    PodTemplate,
    SERVICE,
    SERVING_RUNTIME_TYPES,
    as_int,
    config_of,
    fmt_number,
    get,
    known,
    labels_match,
    pod_template,
)



@dataclass(frozen=True)
class Variant:
    resource: PolicyResource
    pod: PodTemplate
    variant: str
    replicas: int


def tgi_variants(resources: Sequence[PolicyResource]) -> list[Variant]:
    """TGI Deployments labelled run=text-generation-inference and type=stable|canary."""
    found = []
    for r in resources:
        if r.resource_type != DEPLOYMENT:
            continue
        pod = pod_template(r.resource_type, r.props, r.name)
        if pod is None or pod.labels.get(RUN_LABEL) != TGI_APP:
            continue
        variant = pod.labels.get(VARIANT_LABEL)
        if variant in ("stable", "canary"):
            replicas = as_int(get(r.props, "spec", "replicas", default=1))
            found.append(Variant(r, pod, variant, replicas if replicas is not None else 1))
    return found


def _share(variants: Sequence[Variant]) -> tuple[int, int]:
    canary = sum(v.replicas for v in variants if v.variant == "canary")
    return canary, sum(v.replicas for v in variants)


CANARY_CAP_SCHEMA = PolicyConfigSchema(properties={
    "maxCanaryPercent": {
        "type": "number", "minimum": 0, "maximum": 100, "default": 50,
        "description": "Largest canary share of TGI replicas this stack may run, in percent (e.g. prod: 20).",
    },
})


def canary_share_cap(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The canary's share of TGI replicas stays at or below the stack's cap."""
    variants = tgi_variants(args.resources)
    canary, total = _share(variants)
    if total == 0:
        args.not_applicable("no TGI replicas")
        return
    cap = float(config_of(args, CANARY_CAP_SCHEMA)["maxCanaryPercent"])
    share = 100.0 * canary / total
    if share > cap + 1e-9:
        report_violation(f"the canary runs {canary} of {total} TGI replicas ({fmt_number(share)}%), "
                         f"above this stack's cap of {fmt_number(cap)}%", None)


TRAFFIC_SCHEMA = PolicyConfigSchema(properties={
    "trafficService": {
        "type": "string", "default": TGI_APP,
        "description": "metadata.name of the Service that splits traffic over both variants.",
    },
})


def traffic_service(resources: Sequence[PolicyResource], name: str) -> PolicyResource | None:
    for r in resources:
        if r.resource_type == SERVICE and known(r.props, "metadata", "name") == name:
            return r
    return None


def split_selects_both_variants(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Both variants exist and the traffic Service selects exactly their pods."""
    cfg = config_of(args, TRAFFIC_SCHEMA)
    variants = tgi_variants(args.resources)
    for wanted in ("stable", "canary"):
        if not any(v.variant == wanted for v in variants):
            report_violation(f"no {wanted} TGI Deployment (pod labels run={TGI_APP}, {VARIANT_LABEL}={wanted})",
                             None)
    svc = traffic_service(args.resources, cfg["trafficService"])
    if svc is None:
        report_violation(f"no traffic Service '{cfg['trafficService']}'", None)
        return
    selector = dict(get(svc.props, "spec", "selector", default={}))
    if not selector:
        report_violation(f"traffic Service '{cfg['trafficService']}' has no selector", svc.urn)
        return
    shown = ", ".join(f"{k}={v}" for k, v in sorted(selector.items()))
    for v in variants:
        if not labels_match(v.pod.labels, selector):
            report_violation(f"traffic Service selector {{{shown}}} does not select the {v.variant} pods of "
                             f"Deployment '{v.pod.name}'", svc.urn)
    svc_namespace = known(svc.props, "metadata", "namespace")
    variant_urns = {v.resource.urn for v in variants}
    for r in args.resources:
        if r.urn in variant_urns:
            continue
        pod = pod_template(r.resource_type, r.props, r.name)
        if pod is None or r.resource_type in SERVING_RUNTIME_TYPES:
            continue
        same_namespace = svc_namespace is None or pod.namespace is None or pod.namespace == svc_namespace
        if same_namespace and labels_match(pod.labels, selector):
            report_violation(f"traffic Service selector {{{shown}}} also selects the pods of {pod.kind} "
                             f"'{pod.name}'", r.urn)


SPLIT_TOLERANCE_SCHEMA = PolicyConfigSchema(properties={
    "tolerance": {
        "type": "number", "minimum": 0, "default": 5,
        "description": "Points allowed between effective and declared split when the TGI Deployments carry "
                       f"no {SPLIT_TOLERANCE_ANNOTATION} annotation.",
    },
})


def _declared_annotation(variants: Sequence[Variant], annotation: str) -> dict[str, Any]:
    """``annotation`` from each TGI Deployment's own metadata (None when missing), by Deployment name."""
    return {v.pod.name: (get(v.resource.props, "metadata", "annotations", default={}) or {}).get(annotation)
            for v in variants}


def _as_float(raw: Any) -> float | None:
    try:
        return float(raw)
    except (TypeError, ValueError):
        return None


def _agree(values: Mapping[str, Any]) -> bool:
    """All the same value; numbers compare as numbers ("10" agrees with "10.0"), anything else only with itself."""
    return len({raw if _as_float(raw) is None else _as_float(raw) for raw in values.values()}) <= 1


def _disagreement(annotation: str, values: Mapping[str, Any]) -> str:
    shown = ", ".join(f"'{name}' has {raw!r}" for name, raw in values.items())
    return f"the TGI Deployments disagree on annotation {annotation}: {shown}"


def split_within_tolerance(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The replica split is within tolerance of the canary percent both TGI Deployments declare."""
    cfg = config_of(args, SPLIT_TOLERANCE_SCHEMA)
    variants = sorted(tgi_variants(args.resources), key=lambda v: (v.variant != "stable", v.pod.name))
    if not variants:
        args.not_applicable("no TGI Deployments")
        return
    declared_by = _declared_annotation(variants, DECLARED_PERCENT_ANNOTATION)
    missing = [v for v in variants if _as_float(declared_by[v.pod.name]) is None]
    for v in missing:
        report_violation(f"TGI Deployment '{v.pod.name}' declares no canary percent "
                         f"(annotation {DECLARED_PERCENT_ANNOTATION} is {declared_by[v.pod.name]!r})", v.resource.urn)
    if missing:
        return
    if not _agree(declared_by):
        report_violation(_disagreement(DECLARED_PERCENT_ANNOTATION, declared_by), None)
        return
    declared = _as_float(next(iter(declared_by.values())))
    assert declared is not None
    tolerance_by = _declared_annotation(variants, SPLIT_TOLERANCE_ANNOTATION)
    if not _agree(tolerance_by):
        report_violation(_disagreement(SPLIT_TOLERANCE_ANNOTATION, tolerance_by), None)
        return
    tolerance = _as_float(next(iter(tolerance_by.values())))
    if tolerance is None:  # none of them says, or not as a number
        tolerance = float(cfg["tolerance"])
    canary, total = _share(variants)
    if total == 0:
        report_violation(f"no TGI replicas to realise the declared {fmt_number(declared)}% canary", None)
        return
    effective = 100.0 * canary / total
    if abs(effective - declared) > tolerance + 1e-9:
        report_violation(f"{canary} of {total} TGI replicas give a {fmt_number(effective)}% canary, "
                         f"{fmt_number(abs(effective - declared))} points from the declared "
                         f"{fmt_number(declared)}%, more than the tolerance of {fmt_number(tolerance)}", None)
