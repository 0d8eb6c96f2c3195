"""The ``analysis`` section of the settings schema: the in-cluster A/B analysis gate (off by default).

Two kinds of keys in one object. The Job's own settings (``enabled``, ``failOnHold``, the load and
its bounds) are declared here; their names are :data:`analysis.plan.JOB_SETTING_KEYS`, which the
CLI's ``--stack-config`` skips. The decision thresholds (``maxTtftP50RegressionPct``, ...,
``confidence``) are *not* re-declared: their keys, defaults, ranges and help come from
:class:`analysis.thresholds.Thresholds`, the one owner the CLI flags use too, so a threshold added
there is a stack setting without an edit here. Errors name the key, e.g.
``llm-ab:analysis.maxErrorRate must be between 0 and 1, got 2``. The gate takes narrower ranges
(:data:`analysis.thresholds.GATE_LIMITS`: no threshold may switch its row off) unless ``unsafeThresholds``
is true, which every preview then warns about.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import fields
from typing import TYPE_CHECKING, Annotated, Any

from pydantic import BeforeValidator, Field, create_model, model_validator

from analysis.thresholds import (
    CONFIG_KEYS,
    ThresholdError,
    Thresholds,
    field_docs,
    gate_limit_problems,
    threshold_value,
)
from stacks.config_types import (
    Bool,
    OneOf,
    OptionalNumber,
    OptionalWholeNumber,
    PinnedImage,
    Section,
    WholeNumber,
    problem,
    show,
)

MODES = ("closed", "open")


class AnalysisJobSettings(Section):
    """The analysis Job's own settings (the thresholds are added from :class:`Thresholds`)."""

    enabled: Bool = False
    """Run the in-cluster A/B analysis Job after the smoke gate on every `pulumi up` (off in dev)"""
    fail_on_hold: Bool = False
    """Fail `pulumi up` on HOLD (not enough evidence) too; ROLLBACK always fails it"""
    image: PinnedImage = "python:3.11.11-slim-bookworm"
    """Pinned python image of the analysis Job"""
    mode: Annotated[str, OneOf(MODES)] = "closed"
    """`closed` (`concurrency` clients per variant) or `open` (Poisson arrivals at `rate` per second)"""
    concurrency: Annotated[int, WholeNumber(1, 256)] = 4
    """Closed loop: concurrent clients per variant"""
    rate: Annotated[float | None, OptionalNumber(0.01, 10000)] = None
    """Open loop: arrivals per second per variant (required with `mode: open`)"""
    requests: Annotated[int, WholeNumber(2, 100000)] = 400
    """At most this many requests per variant"""
    duration_seconds: Annotated[int, WholeNumber(10, 21600)] = 300
    """No request starts later than this into the load"""
    request_timeout_seconds: Annotated[int, WholeNumber(1, 600)] = 60
    """Limit of one streamed request"""
    ready_timeout_seconds: Annotated[int, WholeNumber(1, 3600)] = 120
    """How long each variant may take to answer before the load starts"""
    max_new_tokens: Annotated[int | None, OptionalWholeNumber(1, 65536)] = None
    """Every prompt's output cap (empty: each case's own `max_new_tokens`)"""
    looks: Annotated[int, WholeNumber(1, 10)] = 1
    """Sequential design: analyse after each of `looks` equal stages, stop at the first PROMOTE or ROLLBACK
    (1: fixed sample)"""
    include_traffic: Bool = False
    """Also load the traffic Service in a second phase (reported, never compared)"""
    unsafe_thresholds: Bool = False
    """Let the thresholds past the gate's limits (latency margins above 100 % or none on the medians, maxErrorRate
    or maxErrorRateIncrease above 0.1, minCasePassRate below 0.5, ...: see analysis/README.md), where a row can no
    longer fail a bad canary; every preview warns"""


def _threshold(key: str) -> Callable[[Any], Any]:
    def check(value: Any) -> Any:
        try:
            return threshold_value(key, value)
        except ThresholdError as err:
            raise problem(err.problem) from None
    return check


_DOCS = field_docs()
_THRESHOLD_FIELDS: dict[str, Any] = {
    f.name: (Annotated[Any, BeforeValidator(_threshold(CONFIG_KEYS[f.name]))],
             Field(default=f.default, alias=CONFIG_KEYS[f.name], description=_DOCS[f.name]))
    for f in fields(Thresholds)
}


class _AnalysisRules(AnalysisJobSettings):
    @model_validator(mode="after")
    def _rules_across_fields(self) -> _AnalysisRules:
        if self.mode == "open" and self.rate is None:
            raise problem("is required with analysis.mode open (arrivals per second per variant)", at="rate")
        if self.mode == "closed" and self.rate is not None:
            raise problem(f"is for analysis.mode open; closed loop takes analysis.concurrency, got {show(self.rate)}",
                          at="rate")
        if self.looks > self.requests:
            raise problem(f"must be at most analysis.requests ({self.requests}), got {self.looks}", at="looks")
        past_limits = [] if self.unsafe_thresholds else gate_limit_problems(self.thresholds)
        if past_limits:
            raise problem(past_limits[0].problem, at=past_limits[0].key)
        min_samples = self.thresholds.min_samples
        if self.requests < min_samples:
            raise problem(f"must be at least analysis.minSamples ({min_samples}): with fewer requests no latency "
                          f"metric can pass, got {self.requests}", at="requests")
        return self

    @property
    def thresholds(self) -> Thresholds:
        """The decision thresholds, validated."""
        return Thresholds(**{f.name: getattr(self, f.name) for f in fields(Thresholds)})


if TYPE_CHECKING:
    class AnalysisSettings(_AnalysisRules):
        """What the type checker sees of the model built below: the program reads the threshold fields only
        through :attr:`_AnalysisRules.thresholds`."""
else:
    AnalysisSettings = create_model(
        "AnalysisSettings", __base__=_AnalysisRules, __doc__="The in-cluster A/B analysis gate.", **_THRESHOLD_FIELDS)
    """The whole ``analysis`` object: :class:`AnalysisJobSettings` plus one field per threshold."""
