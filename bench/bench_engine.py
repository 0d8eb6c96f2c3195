#!/usr/bin/env python3
"""The real engine beside the API server on its own, measured side by side in one run.

On a bench-only local cluster (``llm-ab-bench``) and a throwaway state directory:
- `pulumi up` from empty (``python -m deploy up``, the path `make up` takes) of the dev program on a
  new stack each time, paired with ``kubectl apply --server-side`` of the same objects (rendered
  under Pulumi mocks) into a new namespace each time;
- `pulumi preview` with no changes, paired with ``kubectl apply --server-side --dry-run=server`` of
  the same objects: the issue's goal is a ratio within 3x.
Pairs run in turn (A B A B ...) and the ratio is taken pair by pair, so drift of the machine's speed
doesn't move it; the medians are printed, with min and max. Also: the toolchain's cold build times
(from its markers) and a warm `scripts/toolchain` check.

Usage: venv/bin/python bench/bench_engine.py [--runs N] [--keep]   (prints a markdown table)
"""

from __future__ import annotations

import argparse
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from deploy.workspace import toolchain_env  # noqa: E402 - the repository root is on the path now
from tests import samples  # noqa: E402
from tests.harness import mocked_runtime, run_main  # noqa: E402
from tests.integration.render import manifests  # noqa: E402

SCRIPTS = ROOT / "scripts"
NAME = "llm-ab-bench"



def run(cmd: list[str], env: dict[str, str] | None = None, check: bool = True,
        **kw: object) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT, **kw)
    dt = time.monotonic() - t0
    if check and proc.returncode != 0:
        sys.exit(f"{' '.join(cmd[:6])} ... failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}")
    return dt, proc


def dev_config(namespace: str) -> dict:
    return {**samples.dev_config(), "llm-ab:namespace": namespace, "llm-ab:credentials": {"generator": "builtin"}}


def rendered(namespace: str) -> str:
    """The dev program's Kubernetes objects, rendered under Pulumi mocks, as YAML."""
    with mocked_runtime(stack="bench") as mocks:
        run_main(dev_config(namespace))
    return yaml.safe_dump_all(manifests(mocks.resources), sort_keys=False)


def spread(values: list[float], unit: str = "s") -> str:
    return f"{statistics.median(values):.2f} {unit} (min {min(values):.2f}, max {max(values):.2f})"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3, help="pairs per comparison (default 3)")
    ap.add_argument("--keep", action="store_true", help="keep the bench cluster")
    args = ap.parse_args()
    rows: list[tuple[str, str]] = []

    status = run([str(SCRIPTS / "toolchain"), "status"])[1].stdout
    for line in status.splitlines():
        m = re.match(r"\s+(\S+ \S+)\s+built \(built in (\S+)", line)
        if m:
            rows.append((f"cold build of {m.group(1)} (toolchain marker)", m.group(2)))
    dt, _ = run([str(SCRIPTS / "toolchain")])
    rows.append(("`scripts/toolchain`, warm (everything built)", f"{dt:.2f} s"))

    lc = [str(SCRIPTS / "local-cluster"), "--name", NAME]
    run([*lc, "down"], check=False)
    dt, _ = run([*lc, "up"])
    rows.append(("`local-cluster up`, new cluster", f"{dt:.1f} s"))
    kubeconfig = run([*lc, "kubeconfig"])[1].stdout.strip()
    env = toolchain_env()
    kubectl = str(Path(env["LLMAB_TOOLCHAIN_BIN"]) / "kubectl")
    work = Path(tempfile.mkdtemp(prefix="llm-ab-bench-"))
    shutil.copy(ROOT / "Pulumi.yaml", work / "Pulumi.yaml")
    env.update(KUBECONFIG=kubeconfig, LLMAB_STATE_DIR=str(work / "state"), PULUMI_CONFIG_PASSPHRASE="bench-only")
    env.pop("PULUMI_BACKEND_URL", None)

    def deploy(verb: str, stack: str) -> float:
        return run([sys.executable, "-m", "deploy", verb, "--stack", stack, "--work-dir", str(work)], env=env)[0]

    def kubectl_apply(text: str, *extra: str) -> float:
        return run([kubectl, "--kubeconfig", kubeconfig, "apply", "--server-side", "--force-conflicts", *extra,
                    "-f", "-"], input=text)[0]

    ups, applies, up_ratios = [], [], []
    count = 0
    for i in range(args.runs):
        stack = f"bench-{i}"
        (work / f"Pulumi.{stack}.yaml").write_text(yaml.safe_dump({"config": dev_config(f"llm-ab-bench-{i}")}))
        objects = rendered(f"llm-ab-kubectl-{i}")
        count = objects.count("\nkind: ") + objects.startswith("kind: ")
        namespaces = [o for o in yaml.safe_load_all(objects) if o and o["kind"] == "Namespace"]
        a = deploy("up", stack)
        b = kubectl_apply(yaml.safe_dump_all(namespaces)) + kubectl_apply(objects)
        ups.append(a)
        applies.append(b)
        up_ratios.append(a / b)

    previews, dry_runs, preview_ratios = [], [], []
    objects = rendered("llm-ab-bench-0")
    for _ in range(args.runs):
        a = deploy("preview", "bench-0")
        b = kubectl_apply(objects, "--dry-run=server")
        previews.append(a)
        dry_runs.append(b)
        preview_ratios.append(a / b)

    rows += [
        (f"`pulumi up` from empty, dev program (python -m deploy up, policy pack on), {args.runs} new stacks",
         spread(ups)),
        (f"`kubectl apply --server-side` of the same {count} objects, new namespaces", spread(applies)),
        ("**ratio up / apply**, pair by pair", spread(up_ratios, "x")),
        ("`pulumi preview`, no changes (python -m deploy preview, policy pack on)", spread(previews)),
        (f"`kubectl apply --server-side --dry-run=server` of the {count} objects", spread(dry_runs)),
        ("**ratio preview / dry-run**, pair by pair (goal: within 3x)", spread(preview_ratios, "x")),
    ]
    if not args.keep:
        run([*lc, "down"], check=False)
        shutil.rmtree(work, ignore_errors=True)

    print("| what | figure |\n|---|---|")
    for step, value in rows:
        print(f"| {step} | {value} |")


if __name__ == "__main__":
    main()
