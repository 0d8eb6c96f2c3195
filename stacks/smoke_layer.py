"""Wires the smoke-test gate onto the Kubernetes layer: after both variants (and ModelMesh)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pulumi

from components.modelmesh import rest_base_url
from components.naming import TGI_APP, TGI_PORT, service_url, tgi_deployment_name
from components.smoke_test import SmokeTestJob, SmokeTestJobArgs
from stacks.kubernetes_layer import KubernetesLayer
from stacks.modelmesh_settings import enabled_modelmesh
from stacks.settings import Settings, Variant

OUT_SMOKE = "smoke"
READINESS_MARGIN_SECONDS = 60
"""Part of the Job's deadline kept for the split check and the report after readiness."""


def smoke_cli_args(settings: Settings) -> list[str]:
    """Arguments of ``python -m smoke`` for this stack: in-cluster names, models, the split.

    The split check compares with the *effective* share (canary replicas / total): that is what
    the Service can deliver, and the preview already holds it within ``split.tolerance`` of the
    declared share. A variant with no replicas is not probed directly. With the ModelMesh track on,
    its primary InferenceService is checked through the V2 REST proxy.
    """
    ns = settings.namespace
    args = ["--tgi-url", service_url(TGI_APP, ns, TGI_PORT),
            "--canary-percent", f"{settings.plan.effective_percent:.4g}"]
    for variant in Variant:
        if settings.replicas(variant) == 0:
            continue
        args += [f"--{variant.value}-url", service_url(tgi_deployment_name(variant.value), ns, TGI_PORT),
                 f"--{variant.value}-model", settings.model(variant).id]
    mm = enabled_modelmesh(settings)
    if mm is not None:
        args += ["--v2-url", rest_base_url(ns), "--v2-model", mm.primary_name]
    args += ["--samples", str(settings.smoke.samples),
             "--timeout", str(max(30, settings.smoke.timeout_seconds - READINESS_MARGIN_SECONDS))]
    return args


def smoke_extension(settings: Settings, layer: KubernetesLayer, opts: pulumi.ResourceOptions) -> Mapping[str, Any]:
    if not settings.smoke.enabled:
        return {}
    mm = enabled_modelmesh(settings)
    cases = [*settings.smoke.cases, *[c for c in (mm.smoke_cases if mm else ()) if c not in settings.smoke.cases]]
    wait_for: list[pulumi.Resource] = [*layer.tgi.values(), layer.traffic, *layer.extra_resources]
    job = SmokeTestJob(
        "smoke",
        SmokeTestJobArgs(
            namespace=layer.namespace.name, stack=settings.stack, image=settings.smoke.image,
            cli_args=smoke_cli_args(settings), cases=cases,
            timeout_seconds=settings.smoke.timeout_seconds, wait_for=wait_for,
        ),
        opts=opts,
    )
    return {OUT_SMOKE: {"job": job.job_name, "digest": job.digest, "cases": cases}}
