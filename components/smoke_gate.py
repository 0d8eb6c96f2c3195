"""Post-deploy smoke-test Job: runs our ``smoke`` package in the cluster and gates ``pulumi up``.

The package and the case files are shipped by ConfigMap into a pinned python image. Pulumi waits
for the Job to complete and fails the update when it fails. The Job is named after a digest of
everything it checks and runs (:func:`checks_digest`: the CLI arguments, every shipped file, the
image and command, and the stack's whole config), so any change to what serves, to the cases
or to the tool replaces it and the checks run again.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from components.gate_job import GateJobSpec, Shipped, gate_job
from components.joblock import LOCK_NAME
from components.naming import common_labels
from components.podspec import pip_then_python
from smoke.plan import SmokePlan, gate_budget

PACKAGE_DIR = Path(__file__).resolve().parent.parent / "smoke"
PACKAGE_MOUNT = "/opt/smoke/smoke"
CASES_MOUNT = "/opt/smoke-cases"


def package_files(directory: Path = PACKAGE_DIR) -> dict[str, str]:
    """The smoke package, flat (one ConfigMap key per file), plus its hash-locked requirements."""
    files = {p.name: p.read_text() for p in sorted(directory.glob("*.py"))}
    files[LOCK_NAME] = (directory / LOCK_NAME).read_text()
    return files


def case_files(paths: Sequence[str], root: Path = PACKAGE_DIR.parent) -> dict[str, str]:
    """Case files by base name (ConfigMap keys cannot hold '/')."""
    out: dict[str, str] = {}
    for path in paths:
        name = Path(path).name
        if name in out:
            raise ValueError(f"two smoke case files share the name {name!r}")
        out[name] = (root / path).read_text()
    return out


def smoke_command() -> list[str]:
    # `-m smoke` finds the package under /opt/smoke (PACKAGE_MOUNT's parent).
    return pip_then_python(f"{PACKAGE_MOUNT}/{LOCK_NAME}", "-m smoke", name="smoke", pythonpath="/opt/smoke")


def checks_digest(args: Sequence[str], files: Mapping[str, str], *, config_identity: str = "",
                  image: str = "", command: Sequence[str] = (), placement: Mapping[str, Any] | None = None) -> str:
    """Short digest of what the gate checks and with what: the CLI arguments, every shipped file,
    the image and command the tool runs with, the stack's config (what serves) and the pod's placement
    (the Job's pod template can't change in place)."""
    content: dict[str, Any] = {"args": list(args), "files": dict(sorted(files.items())), "config": config_identity,
                               "image": image, "command": list(command)}
    if placement:
        content["placement"] = placement  # only when set: a Job that places nothing keeps its digest
    return hashlib.sha256(json.dumps(content, sort_keys=True).encode()).hexdigest()[:16]


def job_name(digest: str) -> str:
    """``smoke-<digest>``: a new digest is a new Job (a replacement the preview shows by name)."""
    return f"smoke-{digest}"


@dataclass(frozen=True, kw_only=True)
class SmokeTestJobArgs:
    """Inputs for SmokeTestJob. Every target is a plain in-cluster URL known at preview time."""

    namespace: pulumi.Input[str]
    stack: str
    image: str
    plan: SmokePlan
    """What to check; its ``cases`` are repository paths (shipped by ConfigMap, passed as mounted)."""
    config_identity: str = ""
    """Digest of the stack's config, a superset of what the serving components are given
    (``stacks.gates.config_identity``)."""
    timeout_seconds: int = 900
    """The Job's deadline; the CLI's budget (``plan.timeout``) is :func:`smoke.plan.gate_budget`'s."""
    wait_for: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """What the checks call, so what must be ready first (both TGI variants, the traffic Service, ModelMesh)."""
    placement: Mapping[str, Any] = field(default_factory=dict)
    """Pod placement (``nodeSelector``, ``tolerations``) of the Job's pod; empty: wherever the scheduler puts it."""


class SmokeTestJob(pulumi.ComponentResource):
    """The smoke-test Job and the ConfigMaps that ship the package and the cases."""

    job_name: pulumi.Output[str]
    digest: pulumi.Output[str]

    def __init__(self, name: str, args: SmokeTestJobArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:verify:SmokeTestJob", name, None, opts)
        package, cases = package_files(), case_files(args.plan.cases)
        cli_args = dataclasses.replace(args.plan, cases=tuple(f"{CASES_MOUNT}/{c}" for c in cases)).to_argv()
        command = smoke_command()
        digest = checks_digest(cli_args, {**package, **cases}, config_identity=args.config_identity,
                               image=args.image, command=command, placement=args.placement)
        spec = GateJobSpec(
            job_name=job_name(digest), container="smoke", digest=digest, image=args.image, command=command,
            args=cli_args,
            shipped={"package": Shipped(PACKAGE_MOUNT, package), "cases": Shipped(CASES_MOUNT, cases)},
            resources={"requests": {"cpu": "100m", "memory": "256Mi"}, "limits": {"cpu": "1", "memory": "1Gi"}},
            tmp_size="2Gi",
            deadline_seconds=gate_budget(args.timeout_seconds).job_deadline_seconds,
            wait_seconds=args.timeout_seconds + 300,
            placement=args.placement,
        )
        job = gate_job(name, spec, namespace=args.namespace, labels=common_labels("smoke-test", args.stack),
                       parent=self, wait_for=args.wait_for)
        self.job_name = job.metadata.name
        self.digest = pulumi.Output.from_input(digest)
        self.register_outputs({"job_name": self.job_name, "digest": self.digest})
