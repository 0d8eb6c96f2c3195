"""Runs the smoke checks in order (variants, traffic Service, V2) and collects the report.

Order and rules:

* per TGI variant with its own URL (``--stable-url``/``--canary-url``): ``health`` (retried until
  the deadline while the endpoint starts), ``model`` (``/info`` must report the declared model:
  the whole repo id and the revision, see :mod:`smoke.identity`), then every applicable case, or
  the built-in generic case when no case file names the model (no variant passes without an
  inference). A variant whose expected share is 0 % (no replicas) is skipped, unless it has a
  header (a Gateway's header match reaches it at weight 0); after a failed health or model check
  its remaining checks are skipped and say why;
* traffic Service (``--tgi-url``): ``health``, then ``split`` when ``--canary-percent`` is given,
  skipped (and saying so) when both variants serve the same model at the same revision, as after a
  promotion: their answers can't be told apart, and each was checked on its own URL;
* V2 (``--v2-url``): for each ``--v2-model`` (primary and candidate) every case of its V2 case
  files, or, for a model no file names, another model's cases checked by output shape and datatype
  (the first infer doubles as the readiness probe: the ModelMesh REST proxy has no health route).

The whole run ends within ``timeout`` seconds (its budget): no request starts after it and the
split check stops there, undecided (a failure); the report is returned even when the run is
aborted (:class:`RunAborted`, e.g. SIGTERM at the Job's deadline).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import httpx

from .cases import GENERIC_SOURCE, TgiCase, TgiCaseFile, V2CaseFile, borrowed_v2_file, generic_case_file
from .identity import Expected, Served, repo_matches
from .modelmesh import READINESS_STATUS, infer, output_mismatches
from .net import EndpointError, RetryPolicy
from .openai import OpenAiClient
from .plan import API_OPENAI
from .split import SplitDesign, SplitResult, fixed_sample_size, fresh_connection_client, run_split_check
from .tgi import TgiClient

PASS, FAIL, SKIP = "pass", "fail", "skip"


class RunAborted(BaseException):  # noqa: N818 - a signal, like KeyboardInterrupt, not an error of a check
    """Raised into the run (by the CLI's SIGTERM handler): stop, and report what ran."""


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
    revision: str | None = None
    weights: str | None = None
    api: str = "tgi"
    """``tgi`` or ``openai`` (:data:`smoke.plan.APIS`): which client calls it."""

    @property
    def expected(self) -> Expected | None:
        """What it must serve, when declared."""
        return None if self.model is None else Expected(self.model, self.revision, self.weights)


@dataclass(frozen=True)
class RunConfig:
    """Everything a run needs, already validated by the CLI."""

    stable: VariantSpec
    canary: VariantSpec
    tgi_url: str | None = None
    split: SplitDesign | None = None
    v2_url: str | None = None
    v2_models: tuple[str, ...] = ()
    """V2 models to check; empty: each V2 case file's model."""
    tgi_files: tuple[TgiCaseFile, ...] = ()
    v2_files: tuple[V2CaseFile, ...] = ()
    timeout: float = 300.0
    """The run's budget in seconds from its start: readiness, cases and split all end within it."""
    request_timeout: float = 60.0
    """Timeout of one health/info/split request in seconds (cases use their latency bound)."""
    rollback_command: str | None = None
    """Printed when the run fails."""

    @property
    def variants(self) -> tuple[VariantSpec, VariantSpec]:
        """Stable then canary."""
        return self.stable, self.canary

    def split_blind_reason(self) -> str | None:
        """Why the split can't be observed from the declared models (None when it can)."""
        stable, canary = self.stable.expected, self.canary.expected
        if self.stable.api != self.canary.api:
            return None  # one model on two engines: their /v1/models answers tell them apart
        if stable is not None and canary is not None and stable.indistinguishable_from(canary):
            return same_model_reason(stable.describe())
        return None


def same_model_reason(model: str) -> str:
    return (f"not run: stable and canary both serve {model}, so the traffic Service's answers can't tell them "
            "apart; each variant was checked on its own Service")


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
    advice: list[str] = field(default_factory=list)
    """What to do about a failure (empty when the run passed)."""

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
            "advice": list(self.advice),
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
    """The TGI case files that apply to a variant serving ``model`` (a repo id or a served model_id):
    those for any model, and those whose ``model`` is it (the whole id, see :func:`repo_matches`)."""
    return [f for f in files if f.model is None or repo_matches(f.model, model)]


def cases_for(files: Sequence[TgiCaseFile], model: str) -> list[TgiCaseFile]:
    """The case files to run on ``model``: the applicable ones, else the built-in generic case."""
    return applicable_files(files, model) or [generic_case_file()]


def v2_targets(config: RunConfig) -> list[tuple[str, list[V2CaseFile]]]:
    """Each V2 model with the case files it runs: its own, or (a model no file names, e.g. the
    candidate) the first file's cases for another model, checked by shape and datatype."""
    models = list(config.v2_models) or list(dict.fromkeys(f.model for f in config.v2_files))
    out = []
    for model in models:
        own = [f for f in config.v2_files if f.model == model]
        if not own and config.v2_files:
            own = [borrowed_v2_file(config.v2_files[0], model)]
        out.append((model, own))
    return out


def failure_advice(checks: Sequence[Check], rollback_command: str | None) -> list[str]:
    """What a failed gate leaves serving and how to roll back (empty when nothing failed)."""
    failed = {c.target for c in checks if c.status == FAIL}
    if not failed:
        return []
    advice = ["Nothing was rolled back: what this update deployed keeps serving, the canary included, "
              "at its share of the traffic."]
    if rollback_command:
        advice.append(f"To send every request to stable (and drop the ModelMesh candidate): {rollback_command}")
    if "stable" in failed:
        advice.append("The stable variant failed itself (after a promotion it serves the promoted model): "
                      "rolling back the canary does not fix it; restore the previous stack file "
                      "(git revert of the change to Pulumi.<stack>.yaml) and run `make up` again.")
    return advice


def build_plan(config: RunConfig) -> Plan:
    """The run plan: targets, checks, split design and case files that nothing will use."""
    targets: list[PlanTarget] = []
    used: set[str] = set()
    for spec in config.variants:
        if spec.url is None:
            continue
        targets.append(_plan_variant(spec, config, used))
    if config.tgi_url is not None:
        checks, note = ["health"], ""
        if config.split is not None:
            blind = config.split_blind_reason()
            checks.append("split" if blind is None else "split (skipped)")
            note = blind or ""
        targets.append(PlanTarget("traffic", config.tgi_url, "stable + canary", checks, note))
    if config.v2_url is not None:
        for model, files in v2_targets(config):
            used.update(f.path for f in files)
            checks = [f"infer {case.name}" for f in files for case in f.cases]
            note = "cases from " + ", ".join(f.path for f in files) if files else "no V2 case file"
            if any(f.model != model or any(not o.compare_values for c in f.cases for o in c.outputs) for f in files):
                note += " (outputs by shape and datatype)"
            targets.append(PlanTarget(f"v2 {model}", config.v2_url, model, checks, note))
    all_files = [f.path for f in config.tgi_files] + [f.path for f in config.v2_files]
    return Plan(targets, config.timeout, _plan_split(config), [p for p in all_files if p not in used])


def _plan_variant(spec: VariantSpec, config: RunConfig, used: set[str]) -> PlanTarget:
    expected = spec.expected
    model = expected.describe() if expected else "(not declared)"
    if spec.share == 0.0 and not spec.headers:
        return PlanTarget(spec.name, spec.url or "", model, [], "skipped: expected share 0 %, no replicas")
    checks = ["health", "model"]
    if spec.model is None:
        used.update(f.path for f in config.tgi_files)
        return PlanTarget(spec.name, spec.url or "", model, checks + ["cases chosen by the served model_id"])
    files = cases_for(config.tgi_files, spec.model)
    used.update(f.path for f in files)
    checks += [f"case {case.name}" for f in files for case in f.cases]
    note = "cases from " + ", ".join(f.path for f in files)
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
        """The end of the run's budget (readiness retries stop there too)."""
        self.checks: list[Check] = []
        self.identities: dict[str, Served] = {}
        self.split_result: SplitResult | None = None

    def run(self) -> Report:
        """Run every planned check and return the report (also when aborted or a bug strikes)."""
        started_at = datetime.now(UTC).isoformat(timespec="seconds")
        started = self.clock()
        plan = Plan([], self.config.timeout, None, [])
        try:
            plan = build_plan(self.config)
            self.ui.plan(plan)
            for spec in self.config.variants:
                if spec.url is not None:
                    self._check_variant(spec, spec.url)
            if self.config.tgi_url is not None:
                self._check_traffic(self.config.tgi_url)
            if self.config.v2_url is not None:
                self._check_v2(self.config.v2_url)
        except (RunAborted, KeyboardInterrupt) as err:
            reason = str(err) or type(err).__name__
            self._record(Check("run", "aborted", FAIL, f"{reason}: the checks after this did not run",
                               self.clock() - started))
        except Exception as err:  # a bug outside a check must not lose the report
            self._record(Check("run", "internal error", FAIL, f"{type(err).__name__}: {err}", self.clock() - started))
        advice = failure_advice(self.checks, self.config.rollback_command)
        return Report(plan, self.checks, self.split_result, started_at, self.clock() - started, advice)

    # -- policies --------------------------------------------------------------------------

    def _readiness(self, retry_status: Any = None) -> RetryPolicy:
        if retry_status is None:
            return RetryPolicy.readiness(self.deadline, budget_end=self.deadline)
        return RetryPolicy.readiness(self.deadline, retry_status, budget_end=self.deadline)

    def _brief(self) -> RetryPolicy:
        return RetryPolicy.brief(budget_end=self.deadline)

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
            tgi: TgiClient | OpenAiClient = (
                OpenAiClient(url, client, self.config.request_timeout) if spec.api == API_OPENAI
                else TgiClient(url, client, self.config.request_timeout))
            with self._check(spec.name, "health") as check:
                tgi.health(self._readiness())
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
            for case_file in cases_for(self.config.tgi_files, spec.model or served.model_id):
                for case in case_file.cases:
                    self._check_case(spec.name, tgi, case)

    def _planned_cases(self, spec: VariantSpec) -> list[str]:
        if spec.model is None:
            return []
        return [f"case {c.name}" for f in cases_for(self.config.tgi_files, spec.model) for c in f.cases]

    def _check_model(self, spec: VariantSpec, tgi: TgiClient | OpenAiClient) -> Served | None:
        found: Served | None = None
        with self._check(spec.name, "model") as check:
            # vLLM: /v1/models' root is the path it loaded (the weights, with the revision), as TGI's /info model_id.
            route = "/v1/models" if isinstance(tgi, OpenAiClient) else "/info"
            served = (tgi.served_model(self._brief()).served() if isinstance(tgi, OpenAiClient)
                      else Served.from_info(tgi.info(self._brief())))
            check.data.update(model_id=served.model_id, model_sha=served.sha)
            expected = spec.expected
            problem = expected.problem(served) if expected is not None else None
            if problem is not None:
                raise EndpointError(f"GET {tgi.url(route)}: {problem}")
            check.detail = f"serves {served.label()!r}" + (f" = {expected.describe()}" if expected else "")
            found = served
            self.identities[spec.name] = served
        return found

    def _check_case(self, target: str, tgi: TgiClient | OpenAiClient, case: TgiCase) -> None:
        with self._check(target, f"case {case.name}") as check:
            check.data["source"] = case.source
            generation = tgi.generate(case, self._brief())
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
            if case.source == GENERIC_SOURCE:
                check.detail += " (built-in generic case: no case file names this model)"

    # -- traffic Service -------------------------------------------------------------------

    def _check_traffic(self, url: str) -> None:
        with httpx.Client() as client:
            tgi = TgiClient(url, client, self.config.request_timeout)
            with self._check("traffic", "health") as check:
                tgi.health(self._readiness())
                check.detail = f"GET {tgi.url('/health')} answered 200"
        if self.config.split is None:
            return
        if check.status != PASS:
            self._skip("traffic", ["split"], "not run: traffic /health failed")
            return
        blind = self.config.split_blind_reason()
        if blind is not None:
            self._skip("traffic", ["split"], blind)
            return
        self._check_split(url, self.config.split)

    def classify(self, served: Served, identities: Mapping[str, Served]) -> str | None:
        """Which variant served a sample: the variants' observed ``identities`` first (exact), then declared
        models."""
        exact = [name for name, seen in identities.items() if seen == served]
        if len(exact) == 1:
            return exact[0]
        declared = [spec.name for spec in self.config.variants
                    if spec.expected is not None and spec.expected.problem(served) is None]
        return declared[0] if len(declared) == 1 else None

    def _models_identities(self) -> dict[str, Served]:
        """Each variant's answer to ``GET /v1/models`` on its own Service: what a split sample of a pair with
        an OpenAI-compatible engine is compared with. A vLLM variant's is its model check's; a TGI variant's
        (TGI 2.3+) is asked here, as it differs from its ``/info``."""
        found: dict[str, Served] = {}
        for spec in self.config.variants:
            if spec.name not in self.identities:
                continue  # not checked (no URL, no replicas) or its model check failed
            if spec.api == API_OPENAI or spec.url is None:
                found[spec.name] = self.identities[spec.name]
                continue
            with httpx.Client(headers=spec.headers) as client:
                models = OpenAiClient(spec.url, client, self.config.request_timeout).served_model(self._brief())
            found[spec.name] = models.served()
        return found

    def _check_split(self, url: str, design: SplitDesign) -> None:
        with self._check("traffic", "split") as check:
            # A pair with an OpenAI-compatible engine is sampled by /v1/models (TGI 2.3+ serves it too); each
            # sample is compared with what each variant answered to the same request on its own Service.
            by_models = any(spec.api == API_OPENAI for spec in self.config.variants)
            identities = self._models_identities() if by_models else self.identities
            seen = [identities.get(spec.name) for spec in self.config.variants]
            if seen[0] is not None and seen[0] == seen[1]:  # observed: one answer could be either variant's
                check.status, check.detail = SKIP, same_model_reason(repr(seen[0].label()))
                return
            with fresh_connection_client() as fresh:
                sampler = (
                    (lambda: OpenAiClient(url, fresh, self.config.request_timeout).served_model(
                        RetryPolicy.brief(budget_end=self.deadline)).served())
                    if by_models else None)
                result = run_split_check(
                    url, design, lambda served: self.classify(served, identities), self.config.request_timeout,
                    on_sample=self.ui.split_progress, sampler=sampler, budget_end=self.deadline, clock=self.clock,
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
            for model, files in v2_targets(self.config):
                if not files:
                    with self._check(f"v2 {model}", "infer"):
                        raise EndpointError(f"no V2 case file to run on model {model!r}")
                for case_file in files:
                    self._check_v2_file(client, url, model, case_file)

    def _check_v2_file(self, client: httpx.Client, url: str, model: str, case_file: V2CaseFile) -> None:
        ready = False
        target = f"v2 {model}"
        for index, case in enumerate(case_file.cases):
            if index > 0 and not ready:
                self._skip(target, [f"infer {case.name}"], f"not run: the first infer of model {model!r} failed")
                continue
            policy = self._brief() if ready else self._readiness(READINESS_STATUS)
            with self._check(target, f"infer {case.name}") as check:
                check.data.update(model=model, source=case.source)
                result = infer(client, url, model, case, policy)
                ready = True
                check.data.update(outputs=list(result.outputs), latency_s=round(result.latency_s, 3))
                problems = output_mismatches(model, case.outputs, result)
                if result.latency_s > case.max_latency_s:
                    problems.append(f"took {result.latency_s:.2f} s, over the bound of {case.max_latency_s:g} s")
                if problems:
                    raise EndpointError(f"model {model!r}: " + "; ".join(problems))
                what = "as expected" if all(o.compare_values for o in case.outputs) else "shaped as expected"
                check.detail = f"{len(case.outputs)} output(s) {what} in {result.latency_s:.2f} s"


def _split_summary(result: SplitResult) -> str:
    observed = "n/a" if result.observed is None else f"{result.observed:.1%}"
    return (
        f"expected {result.expected:.1%}, observed {observed} ({result.canary}/{result.samples} canary), "
        f"{result.confidence:.0%} CI [{result.ci_low:.1%}, {result.ci_high:.1%}], "
        f"decided by {result.decided_by or 'nothing'}"
    )
