"""The shape every gate Job of ``pulumi up`` shares (the smoke gate, the A/B analysis): our tools,
shipped read-only by ConfigMap into a pinned python image, run once as a gate client.

:func:`gate_job` is its one owner: the ConfigMaps, and a Job with no retries (a failing gate must
fail this ``pulumi up``, not be retried into a pass), a deadline, the hardened non-root pod
(read-only root, writable /tmp), the gate-client labels (the serving pods and PyPI for the
hash-locked install; nothing else: components/netpol.py), the log's tail in the pod's status, the
pod's placement, and Pulumi's wait beyond the deadline. The Job is named after the caller's digest
of everything it runs, so a change to any of it is a replacement the preview shows by name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from components.naming import GATE_CLIENT_LABELS
from components.podspec import container_security, placed, pod_security, tmp_volume, with_ephemeral_storage

DIGEST_LABEL = "llm-ab/checks-digest"


@dataclass(frozen=True)
class Shipped:
    """One ConfigMap of the Job: its files, mounted read-only at ``mount``."""

    mount: str
    files: Mapping[str, str]


@dataclass(frozen=True, kw_only=True)
class GateJobSpec:
    """What differs between gate Jobs; everything else is :func:`gate_pod_spec`'s."""

    job_name: str
    container: str
    digest: str
    image: str
    command: Sequence[str]
    args: Sequence[str]
    shipped: Mapping[str, Shipped]
    """ConfigMaps by volume name, in mount order."""
    resources: Mapping[str, Any]
    tmp_size: str
    deadline_seconds: int
    """The Job's ``activeDeadlineSeconds``."""
    wait_seconds: int
    """How long Pulumi waits for the Job to complete (beyond the deadline: scheduling, image pull)."""
    placement: Mapping[str, Any] = field(default_factory=dict)
    """Pod placement (``nodeSelector``, ``tolerations``), e.g. the local cluster's simulated nodes; empty: wherever
    the scheduler puts it. A Job's pod template can't change in place: the caller's digest must cover it."""


def gate_pod_spec(spec: GateJobSpec, labels: Mapping[str, str],
                  config_maps: Mapping[str, pulumi.Input[str]]) -> dict[str, Any]:
    """The Job's pod template (pure but for the ConfigMap names)."""
    volumes = [*({"name": key, "configMap": {"name": name}} for key, name in config_maps.items()),
               tmp_volume(size=spec.tmp_size)]
    return {
        "metadata": {"labels": {**labels, **GATE_CLIENT_LABELS, DIGEST_LABEL: spec.digest}},
        "spec": placed({
            "restartPolicy": "Never",
            "securityContext": pod_security(),
            "automountServiceAccountToken": False,
            "enableServiceLinks": False,
            "containers": [{
                "name": spec.container,
                "image": spec.image,
                "command": list(spec.command),
                "args": list(spec.args),
                # The pod's status keeps the log's tail (the verdict, the rollback command).
                "terminationMessagePolicy": "FallbackToLogsOnError",
                "env": [{"name": "HOME", "value": "/tmp"}, {"name": "PYTHONUNBUFFERED", "value": "1"}],
                "resources": with_ephemeral_storage(spec.resources, volumes),
                "securityContext": container_security(),
                "volumeMounts": [
                    *({"name": key, "mountPath": shipped.mount, "readOnly": True}
                      for key, shipped in spec.shipped.items()),
                    {"name": "tmp", "mountPath": "/tmp"},
                ],
            }],
            "volumes": volumes,
        }, spec.placement),
    }


def gate_job(name: str, spec: GateJobSpec, *, namespace: pulumi.Input[str], labels: Mapping[str, str],
             parent: pulumi.Resource, wait_for: Sequence[pulumi.Resource]) -> k8s.batch.v1.Job:
    """The ConfigMaps (``<name>-<volume>``) and the Job (``<name>-job``), children of ``parent``."""
    config_maps: dict[str, pulumi.Input[str]] = {}
    for key, shipped in spec.shipped.items():
        cm = k8s.core.v1.ConfigMap(f"{name}-{key}", metadata={"namespace": namespace, "labels": dict(labels)},
                                   data=dict(shipped.files), opts=pulumi.ResourceOptions(parent=parent))
        config_maps[key] = cm.metadata.name
    wait = f"{spec.wait_seconds}s"
    return k8s.batch.v1.Job(
        f"{name}-job",
        metadata={"name": spec.job_name, "namespace": namespace, "labels": {**labels, DIGEST_LABEL: spec.digest}},
        spec={
            "backoffLimit": 0,
            "activeDeadlineSeconds": spec.deadline_seconds,
            "template": gate_pod_spec(spec, labels, config_maps),
        },
        opts=pulumi.ResourceOptions(parent=parent, depends_on=list(wait_for),
                                    custom_timeouts=pulumi.CustomTimeouts(create=wait, update=wait)),
    )
