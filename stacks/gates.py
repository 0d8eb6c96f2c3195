"""The gates of ``pulumi up``: the smoke-test Job, after everything it calls.

:func:`smoke_plan` is the one place the gate's inputs are decided (a :class:`smoke.plan.SmokePlan`);
:func:`build_smoke_gate` runs it in the cluster once ``after`` (the serving resources) is ready.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pulumi

from components.modelmesh import rest_base_url
from components.namespace import ExperimentNamespace
from components.naming import TGI_APP, TGI_PORT, service_url, tgi_deployment_name
from components.smoke_gate import SmokeTestJob, SmokeTestJobArgs
from smoke.plan import SmokePlan, Target
from stacks import outputs as OUT
from stacks.platform import Platform
from stacks.settings import Settings, Variant

READINESS_MARGIN_SECONDS = 60
"""Part of the Job's deadline kept for the split check and the report after readiness."""


def smoke_cases(settings: Settings) -> tuple[str, ...]:
    """The case files the gate runs: the stack's, then the ModelMesh track's V2 cases."""
    mm = settings.enabled_modelmesh
    extra = mm.smoke_cases if mm else ()
    return (*settings.smoke.cases, *[c for c in extra if c not in settings.smoke.cases])


def smoke_plan(settings: Settings) -> SmokePlan:
    """What the gate checks for this stack: in-cluster names, models, the split, the cases.

    The split check expects the *effective* share (canary replicas / total): that is what the
    Service can deliver, and the settings already hold it within ``split.tolerance`` of the declared
    share. A variant with no replicas is not probed directly. With the ModelMesh track on, its
    primary InferenceService is checked through the V2 REST proxy.
    """
    ns = settings.namespace
    targets = {
        variant: Target(url=service_url(tgi_deployment_name(variant.value), ns, TGI_PORT),
                        model=settings.model(variant).id)
        for variant in Variant if settings.replicas(variant) > 0
    }
    mm = settings.enabled_modelmesh
    return SmokePlan(
        tgi_url=service_url(TGI_APP, ns, TGI_PORT),
        canary_percent=settings.split.plan().effective_percent,
        stable=targets.get(Variant.STABLE), canary=targets.get(Variant.CANARY),
        v2_url=rest_base_url(ns) if mm else None, v2_model=mm.primary_name if mm else None,
        samples=settings.smoke.samples,
        timeout=max(30, settings.smoke.timeout_seconds - READINESS_MARGIN_SECONDS),
        cases=smoke_cases(settings),
    )


def build_smoke_gate(settings: Settings, platform: Platform, namespace: ExperimentNamespace,
                     after: Sequence[pulumi.Resource]) -> dict[str, Any]:
    """The smoke Job, created once everything in ``after`` is ready; its stack output."""
    plan = smoke_plan(settings)
    job = SmokeTestJob(
        "smoke",
        SmokeTestJobArgs(namespace=namespace.name, stack=settings.stack, image=settings.smoke.image, plan=plan,
                         timeout_seconds=settings.smoke.timeout_seconds, wait_for=after),
        opts=platform.opts(),
    )
    return {OUT.SMOKE: {"job": job.job_name, "digest": job.digest, "cases": list(plan.cases)}}
