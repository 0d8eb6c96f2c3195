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
VARIANTS = ("stable", "canary")


HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+\-.^_`|~]{1,256}$")
"""An HTTP header name as the Gateway API's ``HTTPHeaderName`` accepts it."""
HEADER_FORMAT = ("an HTTP header match written 'name: value', e.g. 'x-llm-ab-variant: canary' (name: letters, "
                 "digits and !#$%&'*+-.^_`|~; value: non-empty, no control characters)")


def parse_header(text: str) -> tuple[str, str]:
    """``"x-llm-ab-variant: canary"`` -> ``("x-llm-ab-variant", "canary")``: the one format of a header match,
    in stack config (``split.canaryHeader``), in the HTTPRoute and on the smoke command line. ValueError
    (:data:`HEADER_FORMAT`) otherwise."""
    name, sep, value = text.partition(":")
    name, value = name.strip(), value.strip()
    if not sep or not HEADER_NAME.match(name) or not value or len(value) > 4096 or any(
            ord(ch) < 0x20 or ord(ch) == 0x7F for ch in value):
        raise ValueError(HEADER_FORMAT)
    return name, value


def variant_header_flag(variant: str) -> str:
    return f"--{variant}-header"


def variant_url_flag(variant: str) -> str:
    return f"--{variant}-url"


def variant_model_flag(variant: str) -> str:
    return f"--{variant}-model"


@dataclass(frozen=True, kw_only=True)
class Target:
    """Where one TGI variant answers (its own Service, or the Gateway with its header) and the model it must
    serve."""

    url: str
    model: str
    header: str | None = None
    """``name: value`` sent with every request, so a Gateway routes it to this variant (gateway mode)."""


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
    v2_model: str | None = None
    samples: int | None = None
    """Upper bound of split samples."""
    timeout: int | None = None
    """Readiness deadline in seconds from the start."""
    cases: tuple[str, ...] = ()
    """Case files, as paths the CLI can open."""

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
        if self.v2_url is not None:
            argv += [V2_URL, self.v2_url]
        if self.v2_model is not None:
            argv += [V2_MODEL, self.v2_model]
        if self.samples is not None:
            argv += [SAMPLES, str(self.samples)]
        if self.timeout is not None:
            argv += [TIMEOUT, str(self.timeout)]
        for case in self.cases:
            argv += [CASES, case]
        return argv
