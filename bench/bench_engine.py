#!/usr/bin/env python3
"""Wall times of the offline engine path: toolchain (cold build figures from the cache markers,
warm check now), local cluster start/idempotent re-run/teardown under a bench-only cluster name,
and the dev program's objects applied until ready (rendered under Pulumi mocks, as in
tests/integration). If a pulumi v3.272.0 engine is usable (scripts/toolchain engine succeeds),
`pulumi preview` and `pulumi up` of the dev program are timed too, on a throwaway stack.

Usage: venv/bin/python bench/bench_engine.py [--keep]   (prints a markdown table)
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRIPTS = ROOT / "scripts"
NAME = "llm-ab-bench"


def timed(cmd: list[str], env: dict[str, str] | None = None, check: bool = True) -> tuple[float, subprocess.CompletedProcess]:
    t0 = time.monotonic()
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    dt = time.monotonic() - t0
    if check and proc.returncode != 0:
        sys.exit(f"{' '.join(cmd)} failed:\n{proc.stdout}\n{proc.stderr}")
    return dt, proc


def apply_dev_program() -> float:
    """Render the dev program under mocks and apply it to the bench cluster; seconds until every workload is ready."""
    code = f"""
import sys, subprocess, time, pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "{ROOT}/tests/integration/test_program_on_local_cluster.py"]))
"""
    env = dict(os.environ, LLMAB_IT_CLUSTER_NAME=NAME, LLMAB_KEEP_CLUSTER="1")
    dt, _ = timed([sys.executable, "-c", code], env=env)
    return dt


RENDER = r"""
import runpy, sys, yaml, pytest
sys.path.insert(0, %(root)r)
from tests.conftest import RecordingMocks, dev_config
from tests.integration.render import manifests
import asyncio, json, os, pulumi
cfg = dev_config()
os.environ["PULUMI_CONFIG"] = json.dumps({k: v if isinstance(v, str) else json.dumps(v) for k, v in cfg.items()})
asyncio.set_event_loop(asyncio.new_event_loop())
mocks = RecordingMocks()
# The same stack name as tests/integration, so the dry-run re-applies what that test applied.
pulumi.runtime.set_mocks(mocks, project="llm-ab", stack="test", preview=False)
pulumi.export = lambda *a: None
@pulumi.runtime.test
def program():
    runpy.run_path(%(main)r, run_name="__main__")
program()
sys.stdout.write(yaml.safe_dump_all(manifests(mocks.resources), sort_keys=False))
"""


def dry_run_seconds(kubeconfig: str, repeat: int = 3) -> tuple[float, int]:
    """Median wall time of ``kubectl apply --server-side --dry-run=server`` of the rendered dev objects."""
    rendered = timed([sys.executable, "-c", RENDER % {"root": str(ROOT), "main": str(ROOT / "__main__.py")}])[1].stdout
    kubectl = subprocess.run([str(SCRIPTS / "toolchain"), "env"], capture_output=True, text=True).stdout
    path = re.search(r'PATH="?([^:"]+)', kubectl)
    binary = str(Path(path.group(1)) / "kubectl") if path else "kubectl"
    times = []
    for _ in range(repeat):
        t0 = time.monotonic()
        proc = subprocess.run([binary, "--kubeconfig", kubeconfig, "apply", "--server-side", "--force-conflicts",
                               "--dry-run=server", "-f", "-"], input=rendered, capture_output=True, text=True)
        times.append(time.monotonic() - t0)
        if proc.returncode != 0:
            sys.exit(f"kubectl apply --dry-run=server failed:\n{proc.stderr[:2000]}")
    return sorted(times)[len(times) // 2], rendered.count("\nkind: ") + rendered.startswith("kind: ")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--keep", action="store_true", help="keep the bench cluster")
    args = ap.parse_args()
    rows: list[tuple[str, str]] = []

    status = subprocess.run([str(SCRIPTS / "toolchain"), "status"], capture_output=True, text=True).stdout
    for line in status.splitlines():
        m = re.match(r"\s+(\S+)\s+built \(built in (\d+)s", line)
        if m:
            rows.append((f"cold build: {m.group(1)} (from the cache marker)", f"{m.group(2)} s"))
    dt, _ = timed([str(SCRIPTS / "toolchain"), "cluster"])
    rows.append(("scripts/toolchain cluster, warm (all built)", f"{dt:.2f} s"))

    lc = [str(SCRIPTS / "local-cluster"), "--name", NAME]
    timed([*lc, "down"], check=False)
    dt, _ = timed([*lc, "up"])
    rows.append(("local-cluster up, new cluster (etcd+apiserver+KCM+scheduler+kwok, nodes, CRDs)", f"{dt:.1f} s"))
    dt, _ = timed([*lc, "up"])
    rows.append(("local-cluster up again (idempotent)", f"{dt:.1f} s"))
    kubeconfig = timed([*lc, "kubeconfig"])[1].stdout.strip()
    dt = apply_dev_program()
    rows.append(("dev program under mocks -> apply -> all Deployments/Jobs/PVCs ready (incl. pytest start)", f"{dt:.1f} s"))

    dry, count = dry_run_seconds(kubeconfig)
    rows.append((f"kubectl apply --dry-run=server of the {count} rendered dev objects (median of 3)", f"{dry:.2f} s"))

    eng = subprocess.run([str(SCRIPTS / "toolchain"), "engine"], capture_output=True, text=True)
    if eng.returncode == 0:
        env = dict(os.environ, LLMAB_USE_CURRENT_CONTEXT="1", KUBECONFIG=kubeconfig)
        for verb in ("up", "preview", "destroy"):
            dt, proc = timed([str(SCRIPTS / "stack"), verb, "bench"], env=env, check=False)
            ratio = f", {dt / dry:.1f}x the dry-run" if verb != "destroy" else ""
            label = {"up": "pulumi up from empty", "preview": "pulumi preview, no changes", "destroy": "pulumi destroy"}
            rows.append((f"{label[verb]} (scripts/stack {verb})",
                         f"{dt:.1f} s{ratio}" + ("" if proc.returncode == 0 else " (FAILED)")))
    else:
        rows.append(("pulumi preview / up", "not measured: no pulumi v3.272.0 engine (scripts/toolchain engine failed)"))

    if not args.keep:
        dt, _ = timed([*lc, "down"])
        rows.append(("local-cluster down", f"{dt:.1f} s"))

    print("| step | wall time |\n|---|---|")
    for step, value in rows:
        print(f"| {step} | {value} |")


if __name__ == "__main__":
    main()
