"""The gates of ``pulumi up``: the smoke-test Job after everything it calls, then the A/B analysis Job.

:func:`smoke_plan` is the one place the smoke gate's inputs are decided (a :class:`smoke.plan.SmokePlan`);
:func:`config_identity` is what the smoke Job's identity covers of the stack; :func:`build_smoke_gate`
runs it in the cluster once ``after`` (the serving resources) is ready.
:func:`analysis_plan` and :func:`build_analysis_gate` do the same for the analysis (an
:class:`analysis.plan.AnalysisPlan`), after the smoke Job: no point measuring variants that do not answer.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Sequence
from typing import Any

import pulumi

from analysis.plan import AnalysisPlan
from analysis.plan import Target as AnalysisTarget
from components.analysis_job import AnalysisJob, AnalysisJobArgs, log_command
from components.modelmesh import rest_base_url
from components.namespace import ExperimentNamespace
from components.naming import TGI_APP, TGI_PORT, model_mount_path, service_url, tgi_deployment_name
from components.smoke_gate import SmokeTestJob, SmokeTestJobArgs
from smoke.plan import SmokePlan, Target, gate_budget
from stacks import outputs as OUT
from stacks.experiment import serving_engine
from stacks.local_settings import Part
from stacks.platform import Platform
from stacks.promote import rollback_command
from stacks.settings import Settings, Variant


def config_identity(settings: Settings) -> str:
    """The smoke Job's identity: a digest of the stack's whole validated config, a superset of what the
    serving components are given (models and revisions, engines and their args, images, replica
    counts, the split, storage, platform), so the gate re-runs after any change of what serves, a key
    added tomorrow included, without a list of keys to keep up to date. The price: a change that does
    not affect serving (e.g. ``storage.protect``) re-runs the gate too (the analysis Job, whose run
    is longer, keys on the narrower :func:`serving_identity`)."""
    config = settings.model_dump(mode="json", by_alias=True)
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()


def smoke_cases(settings: Settings) -> tuple[str, ...]:
    """The case files the gate runs: the stack's, then the ModelMesh track's V2 cases."""
    mm = settings.enabled_modelmesh
    extra = mm.smoke_cases if mm else ()
    return (*settings.smoke.cases, *[c for c in extra if c not in settings.smoke.cases])


def traffic_entry_url(settings: Settings) -> str:
    """Where requests enter the split: the traffic Service, or in gateway mode the Gateway (``split.gateway.url``)."""
    if settings.split.gateway_mode and settings.split.gateway.url:
        return settings.split.gateway.url
    return service_url(TGI_APP, settings.namespace, TGI_PORT)


def smoke_target(settings: Settings, variant: Variant) -> Target:
    """Where a variant answers (its own Service, or in gateway mode the Gateway with its header match) and
    what it must serve: the repo id, the revision and the ``MODEL_ID`` its pods are given (the staged
    weights' path, which contains the revision)."""
    model, split = settings.model(variant), settings.split
    headers = split.headers() if split.gateway_mode else {}
    entry = split.gateway.url if split.gateway_mode else None
    identity = {"model": model.id, "revision": model.revision,
                "weights": model_mount_path(settings.datashim.dataset_name, model.object_prefix),
                "api": serving_engine(settings, variant).api}
    if entry and variant.value in headers:
        return Target(url=entry, header="{}: {}".format(*headers[variant.value]), **identity)
    return Target(url=service_url(tgi_deployment_name(variant.value), settings.namespace, TGI_PORT), **identity)


def smoke_plan(settings: Settings) -> SmokePlan:
    """What the gate checks for this stack: in-cluster names, models, the split, the cases.

    Replicas mode: the split check expects the *effective* share (canary replicas / total): that is what
    the Service can deliver, and the settings already hold it within ``split.tolerance`` of the declared
    share. Gateway mode: it samples through the Gateway and expects the declared share, which the route's
    weights give exactly; a variant with a header match (``split.canaryHeader``, ``split.stableHeader``) is
    checked through the Gateway with that header, the others through their own Service. A variant with no
    replicas is not probed directly. When both variants serve the same model and revision (after a
    promotion) the CLI runs inference on both and skips the split, which their answers can't show. With
    the ModelMesh track on, the primary and the candidate InferenceService are checked through the V2
    REST proxy. The CLI's budget is :func:`smoke.plan.gate_budget`'s, so it reports before the Job's
    deadline.
    """
    ns, split = settings.namespace, settings.split
    targets = {variant: smoke_target(settings, variant) for variant in Variant if settings.replicas(variant) > 0}
    mm = settings.enabled_modelmesh
    v2_models = ((mm.primary_name, *([mm.candidate_name] if mm.candidate else ()))) if mm else ()
    return SmokePlan(
        tgi_url=traffic_entry_url(settings),
        canary_percent=split.effective_percent,
        stable=targets.get(Variant.STABLE), canary=targets.get(Variant.CANARY),
        v2_url=rest_base_url(ns) if mm else None, v2_models=v2_models,
        samples=settings.smoke.samples,
        timeout=gate_budget(settings.smoke.timeout_seconds).run_seconds,
        cases=smoke_cases(settings),
        rollback_command=rollback_command(settings.stack),
    )


def build_smoke_gate(settings: Settings, platform: Platform, namespace: ExperimentNamespace,
                     after: Sequence[pulumi.Resource]) -> tuple[dict[str, Any], list[pulumi.Resource]]:
    """The smoke Job, created once everything in ``after`` is ready; its stack output and the Job (what a
    later gate waits for)."""
    plan = smoke_plan(settings)
    job = SmokeTestJob(
        "smoke",
        SmokeTestJobArgs(namespace=namespace.name, stack=settings.stack, image=settings.smoke.image, plan=plan,
                         config_identity=config_identity(settings),
                         timeout_seconds=settings.smoke.timeout_seconds, wait_for=after,
                         placement=platform.placement(Part.GATES)),
        opts=platform.opts(),
    )
    return {OUT.SMOKE: {"job": job.job_name, "digest": job.digest, "cases": list(plan.cases)}}, [job]


def analysis_skip_reason(settings: Settings) -> str | None:
    """Why the analysis cannot run on this stack, or None: it compares two variants, so both must serve."""
    idle = [v.value for v in Variant if settings.replicas(v) == 0]
    if idle:
        why = settings.replicas_key if settings.split.gateway_mode else \
            f"split.canaryPercent {settings.split.canary_percent:g}"
        return f"{' and '.join(idle)} has 0 replicas ({why}): there is nothing to compare, so no analysis Job runs"
    return None


def analysis_plan(settings: Settings) -> AnalysisPlan:
    """What the analysis gate runs for this stack: both variants' own Services and models, the load and its
    bounds from ``analysis.*``, the smoke case files as prompts, the thresholds."""
    cfg, ns = settings.analysis, settings.namespace
    target = {v: AnalysisTarget(url=service_url(tgi_deployment_name(v.value), ns, TGI_PORT),
                                model=settings.model(v).id, api=serving_engine(settings, v).api) for v in Variant}
    return AnalysisPlan(
        stable=target[Variant.STABLE], canary=target[Variant.CANARY],
        traffic_url=traffic_entry_url(settings) if cfg.include_traffic else None,
        mode=cfg.mode, concurrency=cfg.concurrency if cfg.mode == "closed" else None, rate=cfg.rate,
        requests=cfg.requests, duration_s=cfg.duration_seconds, request_timeout_s=cfg.request_timeout_seconds,
        ready_timeout_s=cfg.ready_timeout_seconds, max_new_tokens=cfg.max_new_tokens, looks=cfg.looks,
        cases=tuple(settings.smoke.cases), thresholds=cfg.thresholds, fail_on_hold=cfg.fail_on_hold,
    )


def local_analysis_argv(settings: Settings, stable_url: str, canary_url: str) -> list[str]:
    """``python -m analysis`` arguments for a run from outside the cluster (``make analyze``): the gate's
    plan and thresholds, against local (port-forwarded) URLs, without the traffic phase (a port-forward
    pins one pod), with the CLI's own exit codes (HOLD exits 3)."""
    plan = analysis_plan(settings)
    local = dataclasses.replace(
        plan, stable=dataclasses.replace(plan.stable, url=stable_url),
        canary=dataclasses.replace(plan.canary, url=canary_url), traffic_url=None, fail_on_hold=True)
    return local.to_argv()


def serving_identity(settings: Settings) -> dict[str, Any]:
    """What the variants serve, for the analysis Job's digest: a change to any of it measures something new.
    Each variant's engine with every setting it was given (its image and arguments), its model and revision,
    its replicas, and the serving section's resources and GPUs."""
    return {
        "variants": {v.value: {"engine": serving_engine(settings, v).name,
                               "engine_settings": dataclasses.asdict(serving_engine(settings, v)),
                               "model": settings.model(v).model_dump(mode="json"), "replicas": settings.replicas(v)}
                     for v in Variant},
        "serving": settings.serving.model_dump(mode="json"),
    }


def build_analysis_gate(settings: Settings, platform: Platform, namespace: ExperimentNamespace,
                        after: Sequence[pulumi.Resource]) -> dict[str, Any]:
    """The analysis Job, created once everything in ``after`` (the smoke Job, the serving resources) is done;
    its stack output says where to read the report, or why there is none."""
    skipped = analysis_skip_reason(settings)
    if skipped is not None:
        return {OUT.ANALYSIS: {"skipped": skipped}}
    plan = analysis_plan(settings)
    job = AnalysisJob(
        "analysis",
        AnalysisJobArgs(namespace=namespace.name, stack=settings.stack, image=settings.analysis.image, plan=plan,
                        serving=serving_identity(settings), wait_for=after,
                        placement=platform.placement(Part.GATES)),
        opts=platform.opts(),
    )
    return {OUT.ANALYSIS: {
        "job": job.job_name, "digest": job.digest,
        "logs": pulumi.Output.all(namespace.name, job.job_name).apply(lambda v: log_command(v[0], v[1])),
        "deadlineSeconds": plan.deadline_seconds(), "failsOn": "ROLLBACK or HOLD" if plan.fail_on_hold else "ROLLBACK",
    }}
