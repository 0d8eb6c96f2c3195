"""Stack rules on the A/B split: both variants behind the traffic Service, the canary's share capped
and within tolerance of the declared split (the annotations of :mod:`contract`).

Gateway mode has no traffic Service but an HTTPRoute (named like it) whose weighted rule (the rule without
header matches) splits requests between the variants' own Services by weight; the same rules then read the
share from the weights, and two more check the route: its weights (:func:`route_weights_valid`) and where
its backends are (:func:`route_backends_in_namespace`)."""

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
    HTTPROUTE,
    SERVICE,
    SERVING_RUNTIME_TYPES,
    PodTemplate,
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


def _weighted_share(args: StackValidationArgs, route: PolicyResource,
                    variants: Sequence[Variant]) -> tuple[int, int] | None:
    """(canary weight, total weight) of the route's weighted rule, or None when it can't be read."""
    rule = weighted_rule(route)
    if rule is None:
        return None
    share = _route_share(route_backends(route, rule, args.resources, variants))
    return share if share is not None and share[1] > 0 else None


CANARY_CAP_SCHEMA = PolicyConfigSchema(properties={
    "maxCanaryPercent": {
        "type": "number", "minimum": 0, "maximum": 100, "default": 50,
        "description": "Largest canary share of serving replicas this stack may run, in percent (e.g. prod: 20).",
    },
})


def canary_share_cap(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The canary's share of serving replicas (gateway mode: of the route's weight) stays at or below the stack's
    cap."""
    variants = tgi_variants(args.resources)
    route = _route_in(args)
    if route is not None:
        share_of_weight = _weighted_share(args, route, variants)
        if share_of_weight is None:
            args.not_applicable("the route's weights or backends are invalid (see split-route-weights and "
                                "split-selects-both-variants)")
            return
        canary_w, total_w = share_of_weight
        cap = float(config_of(args, CANARY_CAP_SCHEMA)["maxCanaryPercent"])
        share = 100.0 * canary_w / total_w
        if share > cap + 1e-9:
            name = known(route.props, "metadata", "name", default=route.name)
            report_violation(f"the canary gets weight {canary_w} of {total_w} on HTTPRoute '{name}' "
                             f"({fmt_number(share)}%), above this stack's cap of {fmt_number(cap)}%", route.urn)
        return
    canary, total = _share(variants)
    if total == 0:
        args.not_applicable("no serving replicas")
        return
    cap = float(config_of(args, CANARY_CAP_SCHEMA)["maxCanaryPercent"])
    share = 100.0 * canary / total
    if share > cap + 1e-9:
        report_violation(f"the canary runs {canary} of {total} serving replicas ({fmt_number(share)}%), "
                         f"above this stack's cap of {fmt_number(cap)}%", None)


TRAFFIC_SCHEMA = PolicyConfigSchema(properties={
    "trafficService": {
        "type": "string", "default": TGI_APP,
        "description": "metadata.name of the Service that splits traffic over both variants.",
    },
    "trafficRoute": {
        "type": "string", "default": TGI_APP,
        "description": "metadata.name of the HTTPRoute that splits traffic by weight (gateway mode).",
    },
})


def traffic_service(resources: Sequence[PolicyResource], name: str) -> PolicyResource | None:
    for r in resources:
        if r.resource_type == SERVICE and known(r.props, "metadata", "name") == name:
            return r
    return None


MAX_WEIGHT = 1_000_000
"""The Gateway API's largest backendRef weight (int32 0-1,000,000, default 1)."""


def traffic_route(resources: Sequence[PolicyResource], name: str) -> PolicyResource | None:
    for r in resources:
        if r.resource_type == HTTPROUTE and known(r.props, "metadata", "name") == name:
            return r
    return None


@dataclass(frozen=True)
class Backend:
    """One backendRef of a route, and what it resolves to in this stack."""

    name: str
    namespace: str | None
    """``backendRef.namespace`` (None: the route's)."""
    kind: str
    group: str
    weight: Any
    """As written (default 1); :func:`_weight` reads it."""
    service: PolicyResource | None
    variants: tuple[str, ...]
    """The TGI variants whose pods the Service selects."""


def _weight(raw: Any) -> int | None:
    """A valid weight as an int, else None."""
    value = as_int(raw)
    if value is None or value != raw or not 0 <= value <= MAX_WEIGHT:
        return None
    return value


def _header_matches(rule: Mapping[str, Any]) -> bool:
    return any(get(m, "headers", default=[]) for m in get(rule, "matches", default=[]) if isinstance(m, Mapping))


def weighted_rule(route: PolicyResource) -> Mapping[str, Any] | None:
    """The route's rule without header matches (the one that takes every other request), or None."""
    for rule in get(route.props, "spec", "rules", default=[]) or []:
        if isinstance(rule, Mapping) and not _header_matches(rule):
            return rule
    return None


def route_backends(route: PolicyResource, rule: Mapping[str, Any], resources: Sequence[PolicyResource],
                   variants: Sequence[Variant]) -> list[Backend]:
    """The rule's backendRefs resolved to this stack's Services in the route's namespace, and the variants whose
    pods each one selects."""
    route_ns = known(route.props, "metadata", "namespace")
    found = []
    for ref in get(rule, "backendRefs", default=[]) or []:
        if not isinstance(ref, Mapping):
            continue
        name = known(ref, "name", default="")
        namespace = known(ref, "namespace")
        kind, group = known(ref, "kind", default="Service"), known(ref, "group", default="")
        service = None
        if kind == "Service" and group == "" and (namespace is None or namespace == route_ns):
            service = next((r for r in resources if r.resource_type == SERVICE
                            and known(r.props, "metadata", "name") == name
                            and known(r.props, "metadata", "namespace") in (None, route_ns)), None)
        selector = dict(get(service.props, "spec", "selector", default={}) or {}) if service is not None else {}
        selected = tuple(sorted({v.variant for v in variants if labels_match(v.pod.labels, selector)}))
        found.append(Backend(name, namespace, kind, group, get(ref, "weight", default=1), service, selected))
    return found


def _route_share(backends: Sequence[Backend]) -> tuple[int, int] | None:
    """(canary weight, total weight) of a weighted rule whose backends each select one variant; else None."""
    weights = [_weight(b.weight) for b in backends]
    if any(w is None for w in weights) or any(len(b.variants) != 1 for b in backends):
        return None
    canary = sum(w for w, b in zip(weights, backends, strict=True) if b.variants == ("canary",) and w is not None)
    return canary, sum(w for w in weights if w is not None)


def _route_in(args: StackValidationArgs) -> PolicyResource | None:
    return traffic_route(args.resources, config_of(args, TRAFFIC_SCHEMA)["trafficRoute"])


def split_selects_both_variants(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Both variants exist and the traffic Service selects exactly their pods (gateway mode: the route's weighted
    rule has one backend per variant, whose Service selects that variant's pods and no others)."""
    cfg = config_of(args, TRAFFIC_SCHEMA)
    variants = tgi_variants(args.resources)
    for wanted in ("stable", "canary"):
        if not any(v.variant == wanted for v in variants):
            report_violation(f"no {wanted} TGI Deployment (pod labels run={TGI_APP}, {VARIANT_LABEL}={wanted})",
                             None)
    route = _route_in(args)
    if route is not None:
        _route_selects_both_variants(args, route, variants, report_violation)
        return
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


def _route_selects_both_variants(args: StackValidationArgs, route: PolicyResource, variants: Sequence[Variant],
                                 report_violation: ReportViolation) -> None:
    name = known(route.props, "metadata", "name", default=route.name)
    rule = weighted_rule(route)
    if rule is None:
        report_violation(f"HTTPRoute '{name}' has no rule without header matches to split the other requests",
                         route.urn)
        return
    backends = route_backends(route, rule, args.resources, variants)
    for b in backends:
        if b.service is None:
            report_violation(f"HTTPRoute '{name}' sends traffic to {b.kind} '{b.name}', which is not a Service of "
                             f"this stack in the route's namespace", route.urn)
        elif len(b.variants) != 1:
            shown = " and ".join(b.variants) if b.variants else "neither variant"
            report_violation(f"Service '{b.name}' (a backend of HTTPRoute '{name}') selects the pods of {shown}; "
                             f"each backend must select exactly one variant", b.service.urn)
    for wanted in ("stable", "canary"):
        count = sum(b.variants == (wanted,) for b in backends)
        if count != 1 and any(v.variant == wanted for v in variants):
            report_violation(f"HTTPRoute '{name}' has {count} backends selecting the {wanted} pods in its weighted "
                             f"rule, not 1", route.urn)


def route_weights_valid(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """The traffic route's weighted rule has integer weights from 0 to 1,000,000 that do not sum to 0."""
    route = _route_in(args)
    if route is None:
        args.not_applicable("no traffic HTTPRoute")
        return
    name = known(route.props, "metadata", "name", default=route.name)
    rule = weighted_rule(route)
    if rule is None:
        report_violation(f"HTTPRoute '{name}' has no rule without header matches", route.urn)
        return
    refs = [r for r in get(rule, "backendRefs", default=[]) or [] if isinstance(r, Mapping)]
    bad = [(known(r, "name", default="?"), get(r, "weight", default=1)) for r in refs
           if _weight(get(r, "weight", default=1)) is None]
    for backend, weight in bad:
        shown = (str(int(weight)) if isinstance(weight, int | float) and not isinstance(weight, bool)
                 and float(weight).is_integer() else repr(weight))
        report_violation(f"HTTPRoute '{name}' gives backend '{backend}' weight {shown}: weights are whole "
                         f"numbers from 0 to {MAX_WEIGHT}", route.urn)
    if not bad and sum(_weight(get(r, "weight", default=1)) or 0 for r in refs) == 0:
        report_violation(f"HTTPRoute '{name}' weights sum to 0 (or it has no backends), so every request it takes "
                         f"fails", route.urn)


def route_backends_in_namespace(args: StackValidationArgs, report_violation: ReportViolation) -> None:
    """Every backend of the traffic route, in every rule, is a core Service in the route's own namespace (the
    experiment's): no ReferenceGrant into another team's namespace, no other backend kinds."""
    route = _route_in(args)
    if route is None:
        args.not_applicable("no traffic HTTPRoute")
        return
    name = known(route.props, "metadata", "name", default=route.name)
    route_ns = known(route.props, "metadata", "namespace")
    for rule in get(route.props, "spec", "rules", default=[]) or []:
        for ref in route_backends(route, rule, args.resources, variants=()):
            backend, namespace, kind, group = ref.name or "?", ref.namespace, ref.kind, ref.group
            if kind != "Service" or group != "":
                report_violation(f"HTTPRoute '{name}' sends traffic to {group or 'core'}/{kind} '{backend}'; only "
                                 f"core Services of the experiment may be backends", route.urn)
            elif namespace is not None and namespace != route_ns:
                report_violation(f"HTTPRoute '{name}' sends traffic to Service '{backend}' in namespace "
                                 f"'{namespace}', outside the experiment's namespace '{route_ns}'", route.urn)


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
    route = _route_in(args)
    if route is not None:
        share_of_weight = _weighted_share(args, route, variants)
        if share_of_weight is None:
            return  # split-route-weights and split-selects-both-variants say why
        canary_w, total_w = share_of_weight
        effective = 100.0 * canary_w / total_w
        if abs(effective - declared) > tolerance + 1e-9:
            name = known(route.props, "metadata", "name", default=route.name)
            report_violation(f"HTTPRoute '{name}' weights give a {fmt_number(effective)}% canary ({canary_w} of "
                             f"{total_w}), {fmt_number(abs(effective - declared))} points from the declared "
                             f"{fmt_number(declared)}%, more than the tolerance of {fmt_number(tolerance)}", route.urn)
        return
    canary, total = _share(variants)
    if total == 0:
        report_violation(f"no serving replicas to realise the declared {fmt_number(declared)}% canary", None)
        return
    effective = 100.0 * canary / total
    if abs(effective - declared) > tolerance + 1e-9:
        report_violation(f"{canary} of {total} serving replicas give a {fmt_number(effective)}% canary, "
                         f"{fmt_number(abs(effective - declared))} points from the declared "
                         f"{fmt_number(declared)}%, more than the tolerance of {fmt_number(tolerance)}", None)
