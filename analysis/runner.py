"""One analysis run: check the endpoints answer, load the variants, then the traffic Service, compare.

The variant phase loads stable and canary at the same time; the traffic phase (optional)
follows it. The comparison uses the variant phase only: requests through the traffic Service
cannot be told apart by variant from the stream, so they are reported but do not decide.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import httpx

from smoke.net import EndpointError, RetryPolicy, excerpt, json_body, request_ok
from smoke.tgi import TgiClient

from .loadgen import LoadPlan, PhaseResult, ServerMetrics, Target, run_phase
from .metrics import MetricDelta
from .plan import PREFLIGHT_REQUEST_TIMEOUT_S, run_bound_seconds
from .prompts import Prompt
from .records import RequestRecord
from .sequential import Look, evaluate, stage_sizes
from .summary import TargetSummary, summarize
from .thresholds import Thresholds
from .verdict import Comparison, compare


class PreflightError(Exception):
    """An endpoint never answered (or not as its engine should); the message names the flag and URL."""


class Ui(Protocol):
    """What the runner tells the person watching (see :class:`analysis.report.ConsoleUi`)."""

    def plan(self, config: AnalysisConfig) -> None: ...
    def phase_started(self, name: str, targets: Sequence[Target], requests: int) -> None: ...
    def record(self, record: RequestRecord) -> None: ...
    def phase_done(self) -> None: ...
    def look(self, look: Look, looks: int) -> None: ...


@dataclass(frozen=True)
class AnalysisConfig:
    """Everything one run needs."""

    stable: Target
    canary: Target
    traffic: Target | None
    plan: LoadPlan
    prompts: tuple[Prompt, ...]
    thresholds: Thresholds
    resamples: int = 2000
    """Bootstrap resamples per latency row."""
    seed: int = 0
    ready_timeout_s: float = 30.0
    """How long the pre-flight check waits for each endpoint to answer."""
    scrape_metrics: bool = True
    looks: int = 1
    """Interim analyses of the variant phase (1: fixed sample; see :mod:`analysis.sequential`)."""
    flags: dict[str, str] = field(
        default_factory=lambda: {"stable": "--stable-url", "canary": "--canary-url", "traffic": "--traffic-url"}
    )
    """CLI flag of each target's URL, for error messages."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (prompts by name)."""
        return {
            "targets": {t.name: {"url": t.url, "engine": t.engine, "model": t.model} for t in self.targets()},
            "plan": {k: getattr(self.plan, k) for k in self.plan.__dataclass_fields__},
            "prompts": [p.name for p in self.prompts],
            "thresholds": self.thresholds.to_dict(),
            "bootstrap_resamples": self.resamples,
            "seed": self.seed,
            "looks": self.looks,
            "run_bound_s": self.bound_seconds(),
        }

    def bound_seconds(self) -> int:
        """The longest this run can last (:func:`analysis.plan.run_bound_seconds`)."""
        return run_bound_seconds(
            duration_s=self.plan.duration_s,
            request_timeout_s=self.plan.request_timeout_s,
            ready_timeout_s=self.ready_timeout_s,
            targets=len(self.targets()),
            traffic_phase=self.traffic is not None,
            looks=self.looks,
            scrape_metrics=self.scrape_metrics,
        )

    def targets(self) -> list[Target]:
        """Stable, canary and (when given) traffic."""
        return [self.stable, self.canary, *([self.traffic] if self.traffic else [])]


@dataclass
class AnalysisReport:
    """Results of a run: per-target client figures, server deltas, the comparison and the verdict."""

    config: AnalysisConfig
    summaries: dict[str, TargetSummary]
    server: dict[str, list[MetricDelta]]
    server_errors: dict[str, str | None]
    comparison: Comparison
    records: dict[str, list[RequestRecord]]
    phases: dict[str, tuple[float, float]]
    """Phase name -> (wall-clock start, seconds)."""
    seconds: float
    looks: list[Look] = field(default_factory=list)
    """The interim analyses when the design is sequential (empty for a fixed sample)."""

    @property
    def exit_code(self) -> int:
        """0 PROMOTE, 3 HOLD, 1 ROLLBACK."""
        return self.comparison.verdict.exit_code

    def to_dict(self, with_records: bool = False) -> dict[str, Any]:
        """JSON-ready form; per-request records only when asked."""
        out: dict[str, Any] = {
            "verdict": self.comparison.verdict.value,
            "exit_code": self.exit_code,
            "reasons": list(self.comparison.reasons),
            "comparison": [r.to_dict() for r in self.comparison.rows],
            "targets": {k: v.to_dict() for k, v in self.summaries.items()},
            "server_metrics": {k: [d.to_dict() for d in v] for k, v in self.server.items()},
            "server_metrics_errors": {k: v for k, v in self.server_errors.items() if v},
            "phases": {k: {"started_at": s, "seconds": d} for k, (s, d) in self.phases.items()},
            "seconds": self.seconds,
            "config": self.config.to_dict(),
        }
        if self.looks:
            out["sequential"] = {
                "looks_planned": self.config.looks,
                "stopped_at_look": self.looks[-1].look,
                "per_look_confidence": self.looks[-1].confidence,
                "history": [look.to_dict() for look in self.looks],
            }
        if with_records:
            out["records"] = {k: [r.to_dict() for r in v] for k, v in self.records.items()}
        return out


def preflight(target: Target, flag: str, ready_timeout_s: float) -> Target:
    """Wait until ``target`` answers its engine's readiness call; learn its model when not given.

    TGI: ``GET /health`` then ``GET /info`` (``model_id`` scores the case expectations meant
    for that model). OpenAI: ``GET /v1/models`` (the first id is the ``model`` field when none
    was given). Raises :class:`PreflightError` naming ``flag`` and the URL.
    """
    policy = RetryPolicy.readiness(time.monotonic() + ready_timeout_s)
    try:
        with httpx.Client(trust_env=False) as client:
            if target.engine == "tgi":
                tgi = TgiClient(target.url, client, PREFLIGHT_REQUEST_TIMEOUT_S)
                tgi.health(policy)
                model = target.model or str(tgi.info(policy)["model_id"])
                return replace(target, model=model)
            url = target.url.rstrip("/") + "/v1/models"
            response = request_ok(client, "GET", url, timeout=PREFLIGHT_REQUEST_TIMEOUT_S, policy=policy)
            body = json_body(response, "GET", url)
            ids = [m.get("id") for m in body.get("data", []) if isinstance(m, dict)] if isinstance(body, dict) else []
            if target.model is None and not ids:
                raise EndpointError(f"GET {url}: no model listed in {excerpt(response)}")
            return replace(target, model=target.model or str(ids[0]))
    except EndpointError as err:
        raise PreflightError(f"{flag} {target.url}: {err}") from None


def run(config: AnalysisConfig, ui: Ui | None = None) -> AnalysisReport:
    """Pre-flight, variant phase, traffic phase, comparison. Raises :class:`PreflightError` only."""
    started = time.perf_counter()
    ready = {t.name: preflight(t, config.flags.get(t.name, t.name), config.ready_timeout_s) for t in config.targets()}
    if config.traffic is not None and config.traffic.model is None and config.traffic.engine == "openai":
        ready["traffic"] = replace(ready["traffic"], model=ready["stable"].model)
    config = replace(config, stable=ready["stable"], canary=ready["canary"], traffic=ready.get("traffic"))
    if ui:
        ui.plan(config)
    variants, comparison, history = _variant_phase(config, ui)
    phases: dict[str, PhaseResult] = {"variants": variants}
    if config.traffic is not None:
        if ui:
            ui.phase_started("traffic", [config.traffic], config.plan.requests)
        try:
            phases["traffic"] = run_phase(
                [config.traffic], config.prompts, config.plan, ui.record if ui else None, config.scrape_metrics
            )
        finally:
            if ui:
                ui.phase_done()
    records: dict[str, list[RequestRecord]] = {}
    server: dict[str, list[MetricDelta]] = {}
    server_errors: dict[str, str | None] = {}
    summaries: dict[str, TargetSummary] = {}
    for phase in phases.values():
        records.update(phase.records)
        for target_name, metrics in phase.server.items():
            server[target_name] = metrics.deltas()
            server_errors[target_name] = metrics.error if config.scrape_metrics else None
    for target in config.targets():
        phase = phases["traffic" if target.name == "traffic" else "variants"]
        summaries[target.name] = summarize(
            records[target.name],
            target=target.name,
            url=target.url,
            engine=target.engine,
            model=target.model,
            elapsed_s=phase.elapsed_s,
        )
    return AnalysisReport(
        config=config,
        summaries=summaries,
        server=server,
        server_errors=server_errors,
        comparison=comparison,
        records=records,
        phases={name: (p.started_at, p.elapsed_s) for name, p in phases.items()},
        seconds=time.perf_counter() - started,
        looks=history,
    )


def _variant_phase(config: AnalysisConfig, ui: Ui | None) -> tuple[PhaseResult, Comparison, list[Look]]:
    """Load stable and canary together, in ``config.looks`` stages with an analysis after each.

    With one look this is a single stage and one comparison at ``confidence``. With more, the
    stages share the phase's duration bound and request cap, records keep one index and time
    axis across stages, and the phase stops at the first PROMOTE or ROLLBACK.
    """
    targets = [config.stable, config.canary]
    names = [t.name for t in targets]
    stages: list[PhaseResult] = []
    records: dict[str, list[RequestRecord]] = {n: [] for n in names}
    history: list[Look] = []
    comparison: Comparison | None = None
    start = time.perf_counter()
    if ui:
        ui.phase_started("variants", targets, config.plan.requests)
    try:
        for k, size in enumerate(stage_sizes(config.plan.requests, config.looks), start=1):
            offset = time.perf_counter() - start
            remaining = config.plan.duration_s - offset
            if remaining <= 0:
                break  # the duration bound ends the phase before the planned looks
            plan = replace(config.plan, requests=size, duration_s=remaining, seed=config.plan.seed + k - 1)
            stage = run_phase(targets, config.prompts, plan, ui.record if ui else None, config.scrape_metrics)
            stages.append(stage)
            for name in names:
                for record in stage.records[name]:
                    record.index += len(records[name])
                    record.started_s += offset
                    if record.scheduled_s is not None:
                        record.scheduled_s += offset
                records[name] += stage.records[name]
            if config.looks == 1:
                break
            comparison, look, stop = evaluate(
                records["stable"],
                records["canary"],
                config.thresholds,
                look=k,
                looks=config.looks,
                resamples=config.resamples,
                seed=config.seed,
            )
            history.append(look)
            if ui:
                ui.look(look, config.looks)
            if stop:
                break
    finally:
        if ui:
            ui.phase_done()
    if comparison is None:
        comparison = compare(
            records["stable"], records["canary"], config.thresholds, resamples=config.resamples, seed=config.seed
        )
    server = {name: _merge_server([stage.server[name] for stage in stages]) for name in names}
    phase = PhaseResult(
        records=records,
        server=server,
        started_at=stages[0].started_at,
        elapsed_s=sum(stage.elapsed_s for stage in stages),
    )
    return phase, comparison, history


def _merge_server(parts: Sequence[ServerMetrics]) -> ServerMetrics:
    """One target's scrapes over several stages: the first before, the last after, every in-run sample."""
    merged = ServerMetrics(before=parts[0].before, after=parts[-1].after)
    for part in parts:
        merged.during.scrapes.extend(part.during.scrapes)
        merged.error = merged.error or part.error
    return merged
