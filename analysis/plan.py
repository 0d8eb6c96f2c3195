"""What the in-cluster analysis gate runs, as one typed object; its command line; its time bound.

The program builds an :class:`AnalysisPlan` from the stack's ``analysis.*`` settings
(``stacks/gates.py``), the analysis Job runs ``python -m analysis <plan.to_argv()>``, and
:mod:`analysis.cli` parses exactly these flags. :func:`run_bound_seconds` is the one formula for
how long such a run can last; the Job's ``activeDeadlineSeconds`` (:meth:`AnalysisPlan.deadline_seconds`)
and the CLI's plan line both use it, so the Job never kills a run that is still inside its own
bounds. Plain Python (shipped with the package into the Job): no Pulumi, no stack imports.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields

from .thresholds import CONFIG_KEYS, UNSAFE_KEY, Thresholds

STABLE_URL = "--stable-url"
CANARY_URL = "--canary-url"
TRAFFIC_URL = "--traffic-url"
STABLE_MODEL = "--stable-model"
CANARY_MODEL = "--canary-model"
STABLE_ENGINE = "--stable-engine"
CANARY_ENGINE = "--canary-engine"
MODE = "--mode"
CONCURRENCY = "--concurrency"
RATE = "--rate"
REQUESTS = "--requests"
DURATION = "--duration"
REQUEST_TIMEOUT = "--request-timeout"
READY_TIMEOUT = "--ready-timeout"
MAX_NEW_TOKENS = "--max-new-tokens"
LOOKS = "--looks"
CASES = "--cases"
SEED = "--seed"
HOLD_PASSES = "--hold-passes"
"""Exit 0 on HOLD (the gate without ``analysis.failOnHold``); the verdict is still printed."""

JOB_SETTING_KEYS = (
    "enabled",
    "failOnHold",
    "image",
    "mode",
    "concurrency",
    "rate",
    "requests",
    "durationSeconds",
    "requestTimeoutSeconds",
    "readyTimeoutSeconds",
    "maxNewTokens",
    "looks",
    "includeTraffic",
    UNSAFE_KEY,
)
"""Keys of the ``analysis`` config object that are the Job's own settings, not thresholds (the CLI's
``--stack-config`` skips them; the settings schema declares exactly these plus the thresholds)."""

PREFLIGHT_REQUEST_TIMEOUT_S = 10.0
"""Limit of one pre-flight request (``/health``, ``/info``, ``/v1/models``)."""
SCRAPE_TIMEOUT_S = 5.0
"""Limit of one ``/metrics`` scrape."""
ANALYSIS_MARGIN_S = 60.0
"""The comparison (bootstrap intervals) and the report after the load."""
INSTALL_MARGIN_S = 300
"""The Job's pip install of the pinned packages before the run starts."""


def run_bound_seconds(
    *,
    duration_s: float,
    request_timeout_s: float,
    ready_timeout_s: float,
    targets: int,
    traffic_phase: bool,
    looks: int = 1,
    scrape_metrics: bool = True,
) -> int:
    """The longest a ``python -m analysis`` run with these bounds can last, in whole seconds.

    Pre-flight: each target waits up to ``ready_timeout_s``, then its last call may take a full
    request timeout (one after the deadline, as smoke's readiness policy allows). The variant
    phase: nothing starts after ``duration_s`` and a started request ends within
    ``request_timeout_s``, whatever the number of looks (a stage gets only what is left of the
    duration); each stage scrapes ``/metrics`` before, during and after. The traffic phase,
    when there is one, the same again. Then the comparison.
    """
    scrapes = 3 * SCRAPE_TIMEOUT_S if scrape_metrics else 0.0
    preflight = targets * (ready_timeout_s + 2 * PREFLIGHT_REQUEST_TIMEOUT_S)
    variants = duration_s + request_timeout_s + looks * scrapes
    traffic = duration_s + request_timeout_s + scrapes if traffic_phase else 0.0
    return math.ceil(preflight + variants + traffic + ANALYSIS_MARGIN_S)


@dataclass(frozen=True, kw_only=True)
class Target:
    """One variant's own Service, the model it serves and the API its engine speaks."""

    url: str
    model: str
    api: str = "tgi"
    """``tgi`` (TGI's native API) or ``openai`` (vLLM, TGI's compatibility routes): the CLI's ``--<variant>-engine``."""


@dataclass(frozen=True, kw_only=True)
class AnalysisPlan:
    """The gate's inputs: both variants, the load and its bounds, the cases, the thresholds."""

    stable: Target
    canary: Target
    traffic_url: str | None = None
    """The traffic Service, loaded in a second phase (reported, never compared) when given."""
    mode: str = "closed"
    concurrency: int | None = 4
    rate: float | None = None
    requests: int = 400
    duration_s: int = 300
    request_timeout_s: int = 60
    ready_timeout_s: int = 120
    max_new_tokens: int | None = None
    looks: int = 1
    cases: tuple[str, ...] = ()
    """Case files, as paths the CLI can open."""
    thresholds: Thresholds = field(default_factory=Thresholds)
    fail_on_hold: bool = False
    seed: int = 0

    def run_bound_seconds(self) -> int:
        """:func:`run_bound_seconds` for this plan."""
        return run_bound_seconds(
            duration_s=self.duration_s,
            request_timeout_s=self.request_timeout_s,
            ready_timeout_s=self.ready_timeout_s,
            targets=3 if self.traffic_url else 2,
            traffic_phase=self.traffic_url is not None,
            looks=self.looks,
        )

    def deadline_seconds(self) -> int:
        """The Job's ``activeDeadlineSeconds``: the pip install, then the run's bound."""
        return INSTALL_MARGIN_S + self.run_bound_seconds()

    def to_argv(self) -> list[str]:
        """The plan as ``python -m analysis`` arguments (the one serialisation of the plan)."""
        argv = [STABLE_URL, self.stable.url, STABLE_MODEL, self.stable.model, STABLE_ENGINE, self.stable.api,
                CANARY_URL, self.canary.url, CANARY_MODEL, self.canary.model, CANARY_ENGINE, self.canary.api]
        if self.traffic_url is not None:
            argv += [TRAFFIC_URL, self.traffic_url]
        argv += [MODE, self.mode]
        if self.mode == "closed":
            argv += [CONCURRENCY, str(self.concurrency)]
        else:
            argv += [RATE, f"{self.rate:g}"]
        argv += [REQUESTS, str(self.requests), DURATION, str(self.duration_s),
                 REQUEST_TIMEOUT, str(self.request_timeout_s), READY_TIMEOUT, str(self.ready_timeout_s)]
        if self.max_new_tokens is not None:
            argv += [MAX_NEW_TOKENS, str(self.max_new_tokens)]
        if self.looks != 1:
            argv += [LOOKS, str(self.looks)]
        argv += [SEED, str(self.seed)]
        for case in self.cases:
            argv += [CASES, case]
        for f in fields(Thresholds):
            value = getattr(self.thresholds, f.name)
            argv += [threshold_flag(f.name), "none" if value is None else f"{value:g}"]
        if not self.fail_on_hold:
            argv.append(HOLD_PASSES)
        return argv


def threshold_flag(name: str) -> str:
    """The CLI flag of a :class:`Thresholds` field (its snake_case name)."""
    if name not in CONFIG_KEYS:
        raise KeyError(f"{name} is not a threshold")
    return "--" + name.replace("_", "-")
