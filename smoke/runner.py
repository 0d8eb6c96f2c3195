"""Runs the smoke checks in order (variants, traffic Service, V2) and collects the report.

Order and rules:

* per TGI variant with its own URL (``--stable-url``/``--canary-url``): ``health`` (retried until
  the deadline while the endpoint starts), ``model`` (``/info`` model_id must match the given
  model, see :func:`smoke.tgi.model_matches`), then every applicable case. A variant whose
  expected share is 0 % (no replicas) is skipped, unless it has a header (a Gateway's header match reaches it
  at weight 0); after a failed health or model check its
  remaining checks are skipped and say why;
* traffic Service (``--tgi-url``): ``health``, then ``split`` when ``--canary-percent`` is given;
* V2 (``--v2-url``): every case of every V2 case file for the model (the first infer doubles as
  the readiness probe, since the ModelMesh REST proxy has no health route).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from .cases import TgiCase, TgiCaseFile, V2CaseFile
from .modelmesh import READINESS_STATUS, infer, output_mismatches
from .net import EndpointError, RetryPolicy
from .split import SplitDesign, SplitResult, fixed_sample_size, run_split_check
from .tgi import TgiClient, model_matches

PASS, FAIL, SKIP = "pass", "fail", "skip"


@dataclass(frozen=True)
class VariantSpec:
    """One TGI variant as declared on the command line."""

    name: str
    url: str | None
    model: str | None
    share: float | None
    """Expected share of traffic in [0, 1], or None when no split is checked."""
    headers: dict[str, str] = field(default_factory=dict)
    """Sent with every request to ``url`` (a Gateway's header match that routes to this variant)."""


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, already validated by the CLI."""

    stable: VariantSpec
    canary: VariantSpec
    tgi_url: str | None = None
    split: SplitDesign | None = None
    v2_url: str | None = None
    v2_model: str | None = None
    tgi_files: tuple[TgiCaseFile, ...] = ()
    v2_files: tuple[V2CaseFile, ...] = ()
    timeout: float = 300.0
    """Hard deadline in seconds, from the start of the run, for endpoints to become ready."""
    request_timeout: float = 60.0
    """Timeout of one health/info/split request in seconds (cases use their latency bound)."""

    @property
    def variants(self) -> tuple[VariantSpec, VariantSpec]:
        """Stable then canary."""
        return self.stable, self.canary


@dataclass
class Check:
    """One check's outcome; ``detail`` says what was expected and what came back."""

    target: str
    name: str
    status: str
    detail: str = ""
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class PlanTarget:
    """One target of the run plan and the checks planned on it."""

    target: str
    url: str
    model: str
    checks: list[str]
    note: str = ""


@dataclass
class Plan:
    """What the run will do, shown before it starts."""

    targets: list[PlanTarget]
    deadline_s: float
    split: dict[str, Any] | None
    unused_case_files: list[str]


@dataclass
class Report:
    """The whole run: plan, checks, split statistics and the verdict."""

    plan: Plan
    checks: list[Check]
    split: SplitResult | None
    started_at: str
    seconds: float

    @property
    def ok(self) -> bool:
        """True when no check failed."""
        return all(check.status != FAIL for check in self.checks)

    @property
    def exit_code(self) -> int:
        """0 when every check passed (skips allowed), 1 otherwise."""
        return 0 if self.ok else 1

    def counts(self) -> dict[str, int]:
        """Number of checks per status."""
        return {status: sum(c.status == status for c in self.checks) for status in (PASS, FAIL, SKIP)}

    def to_dict(self) -> dict[str, Any]:
        """The report as JSON-ready data (the ``--json`` output)."""
        split = None
        if self.split is not None:
            split = {**asdict(self.split), "observed": self.split.observed, "passed": self.split.passed}
        return {
            "ok": self.ok,
            "exit_code": self.exit_code,
            "started_at": self.started_at,
            "seconds": round(self.seconds, 3),
            "counts": self.counts(),
            "plan": asdict(self.plan),
            "checks": [asdict(check) for check in self.checks],
            "split": split,
        }


class Ui(Protocol):
    """Receives the plan, progress and results while the run goes on."""

    def plan(self, plan: Plan) -> None:
        """Called once, before any check runs."""

    def check_done(self, check: Check) -> None:
        """Called as each check ends."""

    def split_progress(self, result: SplitResult) -> None:
        """Called after every split sample."""


def applicable_files(files: Sequence[TgiCaseFile], model: str) -> list[TgiCaseFile]:
    """The TGI case files that apply to a variant serving ``model``."""
    return [f for f in files if f.model is None or model_matches(f.model, model)]


def v2_files_for(files: Sequence[V2CaseFile], model: str | None) -> list[V2CaseFile]:
    """V2 case files for ``--v2-model`` (all of them when no model was given)."""
    return [f for f in files if model is None or f.model == model]


def build_plan(config: RunConfig) -> Plan:
    """The run plan: targets, checks, split design and case files that nothing will use."""
    targets: list[PlanTarget] = []
    used: set[str] = set()
    for spec in config.variants:
        if spec.url is None:
            continue
        targets.append(_plan_variant(spec, config, used))
    if config.tgi_url is not None:
        checks = ["health"] + (["split"] if config.split is not None else [])
        targets.append(PlanTarget("traffic", config.tgi_url, "stable + canary", checks))
    if config.v2_url is not None:
        for case_file in v2_files_for(config.v2_files, config.v2_model):
            used.add(case_file.path)
            model = config.v2_model or case_file.model
            checks = [f"infer {case.name}" for case in case_file.cases]
            targets.append(PlanTarget("v2", config.v2_url, model, checks, f"cases from {case_file.path}"))
    all_files = [f.path for f in config.tgi_files] + [f.path for f in config.v2_files]
    return Plan(targets, config.timeout, _plan_split(config), [p for p in all_files if p not in used])


def _plan_variant(spec: VariantSpec, config: RunConfig, used: set[str]) -> PlanTarget:
    model = spec.model or "(not declared)"
    if spec.share == 0.0 and not spec.headers:
        return PlanTarget(spec.name, spec.url or "", model, [], "skipped: expected share 0 %, no replicas")
    checks = ["health", "model"]
    if spec.model is None:
        used.update(f.path for f in config.tgi_files)
        return PlanTarget(spec.name, spec.url or "", model, checks + ["cases chosen by the served model_id"])
    files = applicable_files(config.tgi_files, spec.model)
    used.update(f.path for f in files)
    checks += [f"case {case.name}" for f in files for case in f.cases]
    note = "no case file applies" if not files else "cases from " + ", ".join(f.path for f in files)
    if spec.headers:
        note += "; with header " + ", ".join(f"{k}: {v}" for k, v in spec.headers.items())
    return PlanTarget(spec.name, spec.url or "", model, checks, note)


def _plan_split(config: RunConfig) -> dict[str, Any] | None:
    design = config.split
    if design is None:
        return None
    return {
        "expected_percent": round(design.expected * 100, 6),
        "alpha": design.alpha,
        "beta": design.beta,
        "delta_percent": round(design.delta * 100, 6),
        "max_samples": design.max_samples,
        "fixed_sample_equivalent": fixed_sample_size(design),
        "test": "two one-sided SPRTs (alpha/2 each), exact binomial test at the cap",
    }


class Runner:
    """Executes the plan against live endpoints and reports each check to the UI as it ends."""

    def __init__(self, config: RunConfig, ui: Ui, clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.ui = ui
        self.clock = clock
        self.deadline = clock() + config.timeout
        self.checks: list[Check] = []
        self.identities: dict[str, str] = {}
        self.split_result: SplitResult | None = None

    def run(self) -> Report:
        """Run every planned check and return the report."""
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        started = self.clock()
        plan = build_plan(self.config)
        self.ui.plan(plan)
        for spec in self.config.variants:
            if spec.url is not None:
                self._check_variant(spec, spec.url)
        if self.config.tgi_url is not None:
            self._check_traffic(self.config.tgi_url)
        if self.config.v2_url is not None:
            self._check_v2(self.config.v2_url)
        return Report(plan, self.checks, self.split_result, started_at, self.clock() - started)

    # -- recording -------------------------------------------------------------------------

    def _record(self, check: Check) -> Check:
        self.checks.append(check)
        self.ui.check_done(check)
        return check

    @contextmanager
    def _check(self, target: str, name: str) -> Iterator[Check]:
        """Time a check; an EndpointError (or any error) inside makes it fail with its message."""
        check = Check(target, name, PASS)
        started = self.clock()
        try:
            yield check
        except EndpointError as err:
            check.status, check.detail = FAIL, str(err)
        except Exception as err:  # a bug must not hide the other results
            check.status, check.detail = FAIL, f"internal error: {type(err).__name__}: {err}"
        check.seconds = self.clock() - started
        self._record(check)

    def _skip(self, target: str, names: Sequence[str], reason: str) -> None:
        for name in names:
            self._record(Check(target, name, SKIP, reason))

    # -- TGI variants ----------------------------------------------------------------------

    def _check_variant(self, spec: VariantSpec, url: str) -> None:
        if spec.share == 0.0 and not spec.headers:  # a header reaches a 0 %-weight variant through a Gateway
            self._skip(spec.name, ["health"], "expected share 0 %: no replicas")
            return
        with httpx.Client(headers=spec.headers) as client:
            tgi = TgiClient(url, client, self.config.request_timeout)
            with self._check(spec.name, "health") as check:
                tgi.health(RetryPolicy.readiness(self.deadline))
                check.detail = f"GET {tgi.url('/health')} answered 200"
            if check.status != PASS:
                self._skip(spec.name, ["model", *self._planned_cases(spec)], f"not run: {spec.name} /health failed")
                return
            served = self._check_model(spec, tgi)
            if served is None:
                self._skip(
                    spec.name, self._planned_cases(spec), f"not run: {spec.name} serves the wrong model or /info failed"
                )
                return
            for case_file in applicable_files(self.config.tgi_files, spec.model or served):
                for case in case_file.cases:
                    self._check_case(spec.name, tgi, case)

    def _planned_cases(self, spec: VariantSpec) -> list[str]:
        if spec.model is None:
            return []
        return [f"case {c.name}" for f in applicable_files(self.config.tgi_files, spec.model) for c in f.cases]

    def _check_model(self, spec: VariantSpec, tgi: TgiClient) -> str | None:
        served: str | None = None
        with self._check(spec.name, "model") as check:
            model_id = str(tgi.info(RetryPolicy.brief())["model_id"])
            check.data["model_id"] = model_id
            if spec.model is not None and not model_matches(spec.model, model_id):
                raise EndpointError(
                    f"GET {tgi.url('/info')}: model_id {model_id!r} is not {spec.model!r} "
                    "(compared by equality or path ending)"
                )
            check.detail = f"serves {model_id!r}"
            served = model_id
            self.identities[spec.name] = model_id
        return served

    def _check_case(self, target: str, tgi: TgiClient, case: TgiCase) -> None:
        with self._check(target, f"case {case.name}") as check:
            check.data["source"] = case.source
            generation = tgi.generate(case, RetryPolicy.brief())
            check.data.update(text=generation.text, latency_s=round(generation.latency_s, 3))
            if generation.latency_s > case.max_latency_s:
                raise EndpointError(
                    f"took {generation.latency_s:.2f} s, over the bound of {case.max_latency_s:g} s "
                    f"(text {generation.text[:80]!r})"
                )
            mismatch = case.expect.mismatch(generation.text)
            if mismatch is not None:
                raise EndpointError(f"{case.route} route: {mismatch}")
            check.detail = f"{case.expect.describe()} ok in {generation.latency_s:.2f} s"

    # -- traffic Service -------------------------------------------------------------------

    def _check_traffic(self, url: str) -> None:
        with httpx.Client() as client:
            tgi = TgiClient(url, client, self.config.request_timeout)
            with self._check("traffic", "health") as check:
                tgi.health(RetryPolicy.readiness(self.deadline))
                check.detail = f"GET {tgi.url('/health')} answered 200"
        if self.config.split is None:
            return
        if check.status != PASS:
            self._skip("traffic", ["split"], "not run: traffic /health failed")
            return
        self._check_split(url, self.config.split)

    def classify(self, model_id: str) -> str | None:
        """Which variant served ``model_id``: observed ids first (exact), then declared models."""
        exact = [name for name, seen in self.identities.items() if seen == model_id]
        if len(exact) == 1:
            return exact[0]
        declared = [
            spec.name for spec in self.config.variants if spec.model is not None and model_matches(spec.model, model_id)
        ]
        return declared[0] if len(declared) == 1 else None

    def _check_split(self, url: str, design: SplitDesign) -> None:
        with self._check("traffic", "split") as check:
            result = run_split_check(
                url, design, self.classify, self.config.request_timeout, on_sample=self.ui.split_progress
            )
            self.split_result = result
            check.data["split"] = {**asdict(result), "observed": result.observed}
            summary = _split_summary(result)
            if result.error is not None:
                raise EndpointError(f"{result.error} ({summary})")
            if not result.passed:
                raise EndpointError(f"canary share differs from the expected one: {summary}")
            check.detail = summary

    # -- V2 / ModelMesh --------------------------------------------------------------------

    def _check_v2(self, url: str) -> None:
        with httpx.Client() as client:
            for case_file in v2_files_for(self.config.v2_files, self.config.v2_model):
                model = self.config.v2_model or case_file.model
                self._check_v2_file(client, url, model, case_file)

    def _check_v2_file(self, client: httpx.Client, url: str, model: str, case_file: V2CaseFile) -> None:
        ready = False
        for index, case in enumerate(case_file.cases):
            if index > 0 and not ready:
                self._skip("v2", [f"infer {case.name}"], f"not run: the first infer of model {model!r} failed")
                continue
            policy = RetryPolicy.brief() if ready else RetryPolicy.readiness(self.deadline, READINESS_STATUS)
            with self._check("v2", f"infer {case.name}") as check:
                check.data.update(model=model, source=case.source)
                result = infer(client, url, model, case, policy)
                ready = True
                check.data.update(outputs=list(result.outputs), latency_s=round(result.latency_s, 3))
                problems = output_mismatches(model, case.outputs, result)
                if result.latency_s > case.max_latency_s:
                    problems.append(f"took {result.latency_s:.2f} s, over the bound of {case.max_latency_s:g} s")
                if problems:
                    raise EndpointError(f"model {model!r}: " + "; ".join(problems))
                check.detail = f"{len(case.outputs)} output(s) as expected in {result.latency_s:.2f} s"


def _split_summary(result: SplitResult) -> str:
    observed = "n/a" if result.observed is None else f"{result.observed:.1%}"
    return (
        f"expected {result.expected:.1%}, observed {observed} ({result.canary}/{result.samples} canary), "
        f"{result.confidence:.0%} CI [{result.ci_low:.1%}, {result.ci_high:.1%}], "
        f"decided by {result.decided_by or 'nothing'}"
    )
