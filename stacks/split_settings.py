"""The ``split`` section of the settings schema: how requests are divided between stable and canary.

Two modes (``split.mode``):

* ``replicas`` (the default): one Service over the pods of both variants, so the canary's share is its
  share of replicas (:func:`components.split.plan_split`, within ``split.tolerance``);
* ``gateway``: an ``HTTPRoute`` attached to an existing Gateway (``split.gateway``) splits by backendRef
  weight, exactly (:func:`components.split.route_weights`), and each variant's replicas are its own
  (``split.stableReplicas``, ``split.canaryReplicas``, or an HPA: ``stacks.autoscaling_settings``).
  Optional header rules (``split.canaryHeader``, ``split.stableHeader``) pin a cohort to one variant.

Keys of one mode are refused in the other. ``Pulumi.yaml``'s generated defaults fill the whole object,
so "was it set" means "does it differ from the default" here.
"""

from __future__ import annotations

from enum import Enum
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import BeforeValidator, model_validator

from components.split import RouteWeights, SplitError, SplitPlan, plan_split, route_weights
from smoke.plan import parse_header
from stacks.config_types import (
    Choice,
    Number,
    Section,
    WholeNumber,
    is_dns_label,
    is_dns_subdomain,
    problem,
    show,
)

Percent = Annotated[float, Number(0, 100)]
MAX_TOLERANCE = 50
"""A tolerance above 50 points would accept a split on the wrong side of 50 %, i.e. any split."""

class SplitMode(str, Enum):
    """How the split is realised."""

    REPLICAS = "replicas"
    GATEWAY = "gateway"


def _header(value: Any) -> str | None:
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise problem(f"must be an HTTP header match 'name: value', got {show(value)}")
    try:
        parse_header(value)
    except ValueError as err:
        raise problem(f"must be {err}, got {show(value)}") from None
    return value


HeaderMatch = Annotated[str | None, BeforeValidator(_header)]
"""An optional ``name: value`` header match; empty means none."""


def _optional(check: Any, must_be: str) -> BeforeValidator:
    """``Annotated[str | None, _optional(check, must_be)]``: a string for which ``check`` holds, or unset."""
    def validate(value: Any) -> str | None:
        if value is None or value == "":
            return None
        if not isinstance(value, str) or not check(value):
            raise problem(f"must be {must_be}, got {show(value)}")
        return value
    return BeforeValidator(validate)


def _http_url(value: str) -> bool:
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.hostname) and not parts.query and not parts.fragment


class GatewaySettings(Section):
    """The existing Gateway the HTTPRoute attaches to (gateway mode)."""

    name: Annotated[str | None, _optional(is_dns_subdomain, "a Gateway name (a DNS subdomain)")] = None
    """Name of the Gateway (required in gateway mode; its controller, e.g. Envoy Gateway or Istio, is a prerequisite)"""
    namespace: Annotated[str | None, _optional(is_dns_label, "a namespace name (a DNS label)")] = None
    """Namespace of the Gateway (required in gateway mode, not the experiment's); its listener must allow routes
    from the experiment's"""
    section_name: Annotated[str | None, _optional(is_dns_subdomain, "a listener name")] = None
    """Listener of the Gateway to attach to (`parentRefs[].sectionName`); empty: every listener that allows it"""
    url: Annotated[str | None, _optional(
        _http_url, "an http(s) URL without query, e.g. http://gw.gateway-system.svc.cluster.local")] = None
    """The Gateway listener's URL for clients and the smoke Job: the stack output `trafficUrl` (required in
    gateway mode)"""

    @property
    def is_default(self) -> bool:
        return self == GatewaySettings()


class SplitSettings(Section):
    """Declared traffic split between the two TGI variants."""

    mode: Annotated[SplitMode, Choice(SplitMode)] = SplitMode.REPLICAS
    """`replicas`: a Service over both variants, the split is the replica ratio; `gateway`: an HTTPRoute splits
    by weight"""
    canary_percent: Percent = 50.0
    """Canary share of requests, 0-100 (gateway mode: a multiple of 0.01)"""
    replicas: Annotated[int, WholeNumber(1, 1000)] = 2
    """Total serving replicas over both variants (replicas mode)"""
    tolerance: Annotated[float, Number(0, MAX_TOLERANCE)] = 5.0
    """Max percentage points between declared and effective split (at most 50: more accepts any split; gateway
    mode is exact)"""
    stable_replicas: Annotated[int, WholeNumber(0, 1000)] = 1
    """Replicas of the stable variant (gateway mode)"""
    canary_replicas: Annotated[int, WholeNumber(0, 1000)] = 1
    """Replicas of the canary variant (gateway mode)"""
    gateway: GatewaySettings = GatewaySettings()
    """`{name, namespace, sectionName, url}` of the existing Gateway (gateway mode)"""
    canary_header: HeaderMatch = None
    """`name: value` whose requests go to the canary whatever the weights, e.g. `x-llm-ab-variant: canary`
    (gateway mode)"""
    stable_header: HeaderMatch = None
    """`name: value` whose requests go to the stable variant, e.g. `x-llm-ab-variant: stable` (gateway mode)"""

    @property
    def gateway_mode(self) -> bool:
        return self.mode is SplitMode.GATEWAY

    def plan(self) -> SplitPlan:
        """Replicas-mode replica counts for each variant (the validator has checked that they fit)."""
        return plan_split(self.canary_percent, self.replicas, self.tolerance)

    def weights(self) -> RouteWeights:
        """Gateway-mode backendRef weights (the validator has checked that they exist)."""
        return route_weights(self.canary_percent)

    @property
    def effective_percent(self) -> float:
        """The canary share requests get, 0-100, and so the one the smoke gate's split check expects: the replica
        ratio (replicas mode, what the Service can deliver) or the route's weights (gateway mode, exact)."""
        return self.weights().effective_percent if self.gateway_mode else self.plan().effective_percent

    def headers(self) -> dict[str, tuple[str, str]]:
        """The header matches by variant (gateway mode), as ``(name, value)``."""
        found = {"stable": self.stable_header, "canary": self.canary_header}
        return {variant: parse_header(text) for variant, text in found.items() if text is not None}

    @model_validator(mode="after")
    def _realisable(self) -> SplitSettings:
        if self.gateway_mode:
            self._check_gateway_mode()
        else:
            self._check_replicas_mode()
        return self

    def _check_replicas_mode(self) -> None:
        defaults = SplitSettings.model_construct()
        for key, field in (("stableReplicas", "stable_replicas"), ("canaryReplicas", "canary_replicas")):
            if getattr(self, field) != getattr(defaults, field):
                raise problem(f"applies to split.mode gateway only (in replicas mode the split sets the replicas "
                              f"from split.replicas); set split.mode: gateway, got {getattr(self, field)}", at=key)
        for key, value in (("canaryHeader", self.canary_header), ("stableHeader", self.stable_header)):
            if value is not None:
                raise problem(f"applies to split.mode gateway only (a Service cannot route by header); set "
                              f"split.mode: gateway, got {show(value)}", at=key)
        if not self.gateway.is_default:
            raise problem("applies to split.mode gateway only; set split.mode: gateway or leave split.gateway "
                          "empty", at="gateway")
        try:
            self.plan()
        except SplitError as err:
            raise problem(f"cannot realise the declared split: {err}", at="replicas") from None

    def _check_gateway_mode(self) -> None:
        if self.gateway.name is None:
            raise problem("is required in split.mode gateway: the name of the existing Gateway the HTTPRoute "
                          "attaches to", at="gateway.name")
        if self.gateway.url is None:
            raise problem("is required in split.mode gateway: the Gateway listener's URL clients and the smoke "
                          "Job call (e.g. http://<gateway service>.<namespace>.svc.cluster.local)", at="gateway.url")
        try:
            self.weights()
        except SplitError as err:
            raise problem(f"cannot be a route weight: {err}, got {self.canary_percent:g}", at="canaryPercent") from None
        if self.replicas != SplitSettings.model_construct().replicas:
            raise problem(f"is the replicas-mode total; in split.mode gateway set split.stableReplicas and "
                          f"split.canaryReplicas instead, got {self.replicas}", at="replicas")
        if self.canary_percent < 100 and self.stable_replicas == 0:
            raise problem(f"must be at least 1 while the stable variant gets traffic (canaryPercent "
                          f"{self.canary_percent:g}), got 0", at="stableReplicas")
        if self.canary_percent > 0 and self.canary_replicas == 0:
            raise problem(f"must be at least 1 while the canary gets traffic (canaryPercent "
                          f"{self.canary_percent:g}), got 0", at="canaryReplicas")
        headers = self.headers()
        if "stable" in headers and "canary" in headers:
            (s_name, s_value), (c_name, c_value) = headers["stable"], headers["canary"]
            if s_name.lower() == c_name.lower() and s_value == c_value:
                raise problem(f"must differ from split.canaryHeader, got {show(self.stable_header)}",
                              at="stableHeader")
        for variant, key, count in (("stable", "stableHeader", self.stable_replicas),
                                    ("canary", "canaryHeader", self.canary_replicas)):
            if variant in headers and count == 0:
                raise problem(f"routes to the {variant} variant, which has no replicas (split.{variant}Replicas "
                              f"is 0)", at=key)


def check_gateway_namespace(split: SplitSettings, experiment_namespace: str) -> None:
    """Gateway mode needs the Gateway in a namespace of its own: the experiment's namespace denies traffic both
    ways by default, and only the Gateway's namespace is let in to the serving pods and out from the gates."""
    if not split.gateway_mode:
        return
    if split.gateway.namespace is None:
        raise problem("is required in split.mode gateway: the namespace of the Gateway (the experiment's namespace "
                      "denies traffic both ways, so the Gateway runs in its own, e.g. gateway-system)",
                      at="split.gateway.namespace")
    if split.gateway.namespace == experiment_namespace:
        raise problem(f"must not be the experiment's namespace ({experiment_namespace!r}): it denies traffic both "
                      f"ways, so the Gateway's data plane could not reach the serving pods; run the Gateway in "
                      f"its own namespace, got {show(split.gateway.namespace)}", at="split.gateway.namespace")
