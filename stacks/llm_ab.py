"""``build(settings)``: the whole stack, in one straight line, and its outputs.

platform -> experiment (namespace, weights, staging, Dataset, TGI pair, traffic) -> an HPA per variant
when autoscaling -> ModelMesh when enabled -> the smoke gate after everything it calls -> the analysis gate
after the smoke gate. A new platform is a ``stacks.platform_<name>`` module and one entry in
:data:`PLATFORMS`; a new feature is a module and one line here. No resources are created on import;
``__main__.py`` is the only caller that exports.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pulumi

from stacks import autoscaling_track, modelmesh_track, platform_local
from stacks.experiment import build_experiment, experiment_namespace, experiment_outputs, minio_weights
from stacks.gates import build_analysis_gate, build_smoke_gate
from stacks.observability import build_observability
from stacks.platform import Platform as ProvisionedPlatform
from stacks.settings import Platform, Settings


def _eks(settings: Settings) -> ProvisionedPlatform:
    from stacks import platform_eks  # pulumi_aws is only needed on eks

    return platform_eks.provision(settings)


PLATFORMS: dict[Platform, Callable[[Settings], ProvisionedPlatform]] = {
    Platform.LOCAL: platform_local.provision,
    Platform.EKS: _eks,
}


def build(settings: Settings) -> Mapping[str, Any]:
    """Create every resource of the stack; returns the stack outputs."""
    platform = PLATFORMS[settings.platform](settings)
    namespace = experiment_namespace(settings, platform, feature_labels=modelmesh_track.namespace_labels(settings))
    weights = platform.weights or minio_weights(settings, platform, namespace)
    experiment = build_experiment(settings, platform, namespace, weights)
    outputs = {**experiment_outputs(settings, experiment), **platform.outputs}
    outputs.update(autoscaling_track.build_autoscaling(settings, platform, experiment))

    serving = experiment.serving
    mm = settings.enabled_modelmesh
    if mm is not None:
        track = modelmesh_track.build_modelmesh(settings, mm, platform, namespace, weights)
        serving = [*serving, track.serving]
        outputs.update(track.outputs)

    if settings.observability.prometheus:
        outputs.update(build_observability(settings, platform, namespace))

    gates: list[pulumi.Resource] = []
    if settings.smoke.enabled:
        smoke_outputs, gates = build_smoke_gate(settings, platform, namespace, after=serving)
        outputs.update(smoke_outputs)
    if settings.analysis.enabled:
        outputs.update(build_analysis_gate(settings, platform, namespace, after=[*serving, *gates]))
    return outputs
