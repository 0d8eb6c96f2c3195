"""What the smoke gate checks, as one typed object, and the command line it travels as.

The program builds a :class:`SmokePlan` (``stacks/gates.py``), the smoke Job runs
``python -m smoke <plan.to_argv()>``, and :mod:`smoke.cli` parses exactly these flags: this module
owns their names. Plain Python (shipped with the package into the Job).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

TGI_URL = "--tgi-url"
CANARY_PERCENT = "--canary-percent"
V2_URL = "--v2-url"
V2_MODEL = "--v2-model"
SAMPLES = "--samples"
TIMEOUT = "--timeout"
CASES = "--cases"
ROLLBACK = "--rollback-command"
VARIANTS = ("stable", "canary")

JOB_STARTUP_ALLOWANCE_SECONDS = 180
"""Part of the Job's ``activeDeadlineSeconds`` spent before the CLI starts: scheduling, the image pull
and the pip install of the pinned requirements (the deadline counts from the Job's start)."""
REPORT_MARGIN_SECONDS = 20
"""Kept after the CLI's budget for the report and the exit."""
MIN_RUN_SECONDS = 60
"""The least budget a run can check anything useful in."""


MIN_JOB_DEADLINE_SECONDS = JOB_STARTUP_ALLOWANCE_SECONDS + REPORT_MARGIN_SECONDS + MIN_RUN_SECONDS
"""The least ``smoke.timeoutSeconds`` (the settings schema's bound)."""


@dataclass(frozen=True)
class GateBudget:
    """The smoke Job's time limits, all from one number: the Job's deadline."""

    job_deadline_seconds: int
    """``activeDeadlineSeconds`` of the Job."""
    run_seconds: int
    """The CLI's ``--timeout``: its whole run (readiness, cases, split) ends within it."""


def gate_budget(job_deadline_seconds: int) -> GateBudget:
    """The one formula: the Job's deadline minus its startup allowance and the report margin is the
    CLI's budget (``--timeout``), so the CLI reports before Kubernetes kills the Job."""
    if job_deadline_seconds < MIN_JOB_DEADLINE_SECONDS:
        raise ValueError(f"a smoke Job deadline must be at least {MIN_JOB_DEADLINE_SECONDS} s "
                         f"({JOB_STARTUP_ALLOWANCE_SECONDS} s to start, {MIN_RUN_SECONDS} s to check, "
                         f"{REPORT_MARGIN_SECONDS} s to report), got {job_deadline_seconds}")
    return GateBudget(job_deadline_seconds,
                      job_deadline_seconds - JOB_STARTUP_ALLOWANCE_SECONDS - REPORT_MARGIN_SECONDS)


HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,256}$")
"""An HTTP header name as the Gateway API's ``HTTPHeaderName`` accepts it."""
HEADER_FORMAT = ("an HTTP header match written 'name: value', e.g. 'x-llm-ab-variant: canary' (name: letters, "
                 "digits and !#$%&'*+-.^_`|~; value: non-empty, visible ASCII characters and spaces, at most 4096)")


def parse_header(text: str) -> tuple[str, str]:
    """``"x-llm-ab-variant: canary"`` -> ``("x-llm-ab-variant", "canary")``: the one format of a header match,
    in stack config (``split.canaryHeader``), in the HTTPRoute and on the smoke command line. ValueError
    (:data:`HEADER_FORMAT`) otherwise."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    # Visible ASCII only: HTTP clients (httpx) encode header values as ASCII and raise on anything else, i.e.
    # only when the gate sends its first request.
    if not sep or not HEADER_NAME.match(name) or not value or len(value) > 4096 or any(
            not 0x20 <= ord(ch) <= 0x7E for ch in value):
        raise ValueError(HEADER_FORMAT)
    return name, value


def variant_header_flag(variant: str) -> str:
    return f"--{variant}-header"


def variant_url_flag(variant: str) -> str:
    return f"--{variant}-url"


def variant_model_flag(variant: str) -> str:
    return f"--{variant}-model"


def variant_revision_flag(variant: str) -> str:
    return f"--{variant}-revision"


API_TGI = "tgi"
API_OPENAI = "openai"
APIS = (API_TGI, API_OPENAI)
"""The APIs a variant's engine speaks: TGI's native one, or the OpenAI-compatible one (vLLM)."""


def variant_api_flag(variant: str) -> str:
    return f"--{variant}-api"


def variant_weights_flag(variant: str) -> str:
    return f"--{variant}-weights"


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where one TGI variant answers (its own Service, or the Gateway with its header) and the model it must
    serve (see :mod:`smoke.identity`)."""

    url: str
    model: str
    """The full Hugging Face repo id."""
    header: str | None = None
    """``name: value`` sent with every request, so a Gateway routes it to this variant (gateway mode)."""
    revision: str | None = None
    weights: str | None = None
    api: str = API_TGI
    """The API its engine speaks (:data:`APIS`); sent only when not TGI's."""
    """The ``MODEL_ID`` the server was started with (the staged weights' path, containing the revision)."""


@dataclass(frozen=True, kw_only=True)
class SmokePlan:
    """The gate's inputs: targets, the expected split, bounds, and the case files."""

    tgi_url: str | None = None
    """The entry point in front of both variants: the traffic Service, or the Gateway in gateway mode."""
    canary_percent: float | None = None
    """The canary share the split check expects, 0-100: the stack's *effective* share (replicas mode: canary
    replicas / total, what the Service can deliver; gateway mode: the declared share, which the weights give
    exactly)."""
    stable: Target | None = None
    canary: Target | None = None
    """A variant with no replicas is not probed directly (None)."""
    v2_url: str | None = None
    v2_models: tuple[str, ...] = ()
    """ModelMesh InferenceServices to check: the primary, then the candidate."""
    samples: int | None = None
    """Upper bound of split samples."""
    timeout: int | None = None
    """The whole run's budget in seconds (:func:`gate_budget`)."""
    cases: tuple[str, ...] = ()
    """Case files, as paths the CLI can open."""
    rollback_command: str | None = None
    """Printed when the gate fails: how to take the canary out of traffic."""

    def targets(self) -> dict[str, Target]:
        found = {"stable": self.stable, "canary": self.canary}
        return {name: target for name, target in found.items() if target is not None}

    def to_argv(self) -> list[str]:
        """The plan as ``python -m smoke`` arguments (the one serialisation of the plan)."""
        argv: list[str] = []
        if self.tgi_url is not None:
            argv += [TGI_URL, self.tgi_url]
        if self.canary_percent is not None:
            argv += [CANARY_PERCENT, f"{self.canary_percent:.4g}"]
        for variant, target in self.targets().items():
            argv += [variant_url_flag(variant), target.url, variant_model_flag(variant), target.model]
            if target.header is not None:
                argv += [variant_header_flag(variant), target.header]
            if target.revision is not None:
                argv += [variant_revision_flag(variant), target.revision]
            if target.weights is not None:
                argv += [variant_weights_flag(variant), target.weights]
            if target.api != API_TGI:
                argv += [variant_api_flag(variant), target.api]
        if self.v2_url is not None:
            argv += [V2_URL, self.v2_url]
        for model in self.v2_models:
            argv += [V2_MODEL, model]
        if self.samples is not None:
            argv += [SAMPLES, str(self.samples)]
        if self.timeout is not None:
            argv += [TIMEOUT, str(self.timeout)]
        for case in self.cases:
            argv += [CASES, case]
        if self.rollback_command is not None:
            argv += [ROLLBACK, self.rollback_command]
        return argv
