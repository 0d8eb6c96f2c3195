"""In-cluster A/B analysis Job: runs our ``analysis`` package against both variants and gates ``pulumi up``.

The ``analysis`` and ``smoke`` packages (analysis imports smoke's case loader and HTTP helpers)
and the case files are shipped by ConfigMap into a pinned python image, laid out as
``/opt/analysis/{analysis,smoke}`` so ``python -m analysis`` finds both; the Job installs
``analysis/requirements.lock`` (smoke's pins and analysis's, hash-locked: components/joblock.py). Pulumi waits for the
Job; a ROLLBACK (exit 1), a usage error (2) and, with ``failOnHold``, a HOLD (3) fail it and with
it the update. The report is the Job's log. The Job carries a digest of everything that decides
what it measures (its arguments, its files, what the variants serve), so any such change replaces
it and the analysis runs again.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pulumi

from analysis.plan import AnalysisPlan
from components.gate_job import GateJobSpec, Shipped, gate_job
from components.joblock import LOCK_NAME
from components.naming import common_labels
from components.podspec import pip_then_python
from components.smoke_gate import case_files, checks_digest, package_files

ROOT = Path(__file__).resolve().parent.parent
INSTALL_ROOT = "/opt/analysis"
ANALYSIS_MOUNT = f"{INSTALL_ROOT}/analysis"
SMOKE_MOUNT = f"{INSTALL_ROOT}/smoke"
CASES_MOUNT = "/opt/analysis-cases"
COMPONENT = "ab-analysis"
CONTAINER = "analysis"
WAIT_MARGIN_SECONDS = 300
"""Pulumi's wait beyond the Job's own deadline: scheduling and image pull come first."""


def shipped_files() -> dict[str, dict[str, str]]:
    """What the Job runs, per ConfigMap: both packages, flat, each with its hash-locked requirements."""
    return {"analysis": package_files(ROOT / "analysis"), "smoke": package_files(ROOT / "smoke")}


def analysis_command() -> list[str]:
    # `-m analysis` finds both packages under /opt/analysis (the mounts' parent).
    return pip_then_python(f"{ANALYSIS_MOUNT}/{LOCK_NAME}", "-m analysis", name="analysis",
                           pythonpath=INSTALL_ROOT)


def job_args(plan: AnalysisPlan, cases: Mapping[str, str]) -> list[str]:
    """The CLI arguments with the case files as mounted in the Job."""
    return dataclasses.replace(plan, cases=tuple(f"{CASES_MOUNT}/{name}" for name in cases)).to_argv()


def analysis_digest(args: Sequence[str], files: Mapping[str, Mapping[str, str]], serving: Mapping[str, Any],
                    image: str, placement: Mapping[str, Any] | None = None) -> str:
    """Short digest of the CLI arguments, every shipped file, the Job's image and command, what the variants
    serve and the pod's placement (the smoke gate's :func:`components.smoke_gate.checks_digest`)."""
    flat = {f"{package}/{name}": text for package, texts in files.items() for name, text in texts.items()}
    return checks_digest(args, flat, config_identity=json.dumps(serving, sort_keys=True), image=image,
                         command=analysis_command(), placement=placement)


def job_name(digest: str) -> str:
    """``analysis-<digest>``: a new digest is a new Job, which the preview shows by name (and the stack output's
    ``kubectl logs`` command names before the Job exists)."""
    return f"analysis-{digest}"


def log_command(namespace: str, job: str) -> str:
    """How to read the report."""
    return f"kubectl -n {namespace} logs job/{job}"


@dataclass(frozen=True, kw_only=True)
class AnalysisJobArgs:
    """Inputs for AnalysisJob. Every target is a plain in-cluster URL known at preview time."""

    namespace: pulumi.Input[str]
    stack: str
    image: str
    plan: AnalysisPlan
    """What to run; its ``cases`` are repository paths (shipped by ConfigMap, passed as mounted)."""
    serving: Mapping[str, Any] = field(default_factory=dict)
    """What the variants serve (models and revisions, images, engine settings, replicas): in the digest, so a
    change to any of it runs the analysis again."""
    wait_for: Sequence[pulumi.Resource] = field(default_factory=tuple)
    """What must be done first: the smoke gate, and everything the analysis calls."""
    placement: Mapping[str, Any] = field(default_factory=dict)
    """Pod placement (``nodeSelector``, ``tolerations``) of the Job's pod; empty: wherever the scheduler puts it."""


class AnalysisJob(pulumi.ComponentResource):
    """The analysis Job and the ConfigMaps that ship both packages and the cases."""

    job_name: pulumi.Output[str]
    digest: pulumi.Output[str]

    def __init__(self, name: str, args: AnalysisJobArgs, opts: pulumi.ResourceOptions | None = None) -> None:
        super().__init__("llmab:verify:AnalysisJob", name, None, opts)
        files = shipped_files()
        cases = case_files(args.plan.cases)
        cli_args = job_args(args.plan, cases)
        digest = analysis_digest(cli_args, {**files, "cases": cases}, args.serving, args.image, args.placement)
        deadline = args.plan.deadline_seconds()
        spec = GateJobSpec(
            job_name=job_name(digest), container=CONTAINER, digest=digest, image=args.image,
            command=analysis_command(), args=cli_args,
            shipped={"analysis": Shipped(ANALYSIS_MOUNT, files["analysis"]),
                     "smoke": Shipped(SMOKE_MOUNT, files["smoke"]), "cases": Shipped(CASES_MOUNT, cases)},
            resources={"requests": {"cpu": "500m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}},
            tmp_size="3Gi",  # numpy, scipy and plotly wheels unpacked
            deadline_seconds=deadline,
            wait_seconds=deadline + WAIT_MARGIN_SECONDS,
            placement=args.placement,
        )
        job = gate_job(name, spec, namespace=args.namespace, labels=common_labels(COMPONENT, args.stack),
                       parent=self, wait_for=args.wait_for)
        self.job_name = job.metadata.name
        self.digest = pulumi.Output.from_input(digest)
        self.register_outputs({"job_name": self.job_name, "digest": self.digest})
