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


def apply_dev_program(kubeconfig: str) -> float:
    """Render the dev program under mocks and apply it; seconds until every workload is ready."""
    code = f"""
import sys, subprocess, time, pytest
sys.exit(pytest.main(["-q", "-p", "no:cacheprovider", "{ROOT}/tests/integration/test_program_on_local_cluster.py"]))
"""
    env = dict(os.environ, LLMAB_IT_CLUSTER_NAME=NAME, LLMAB_KEEP_CLUSTER="1")
    dt, _ = timed([sys.executable, "-c", code], env=env)
    return dt


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
    dt = apply_dev_program(kubeconfig)
    rows.append(("dev program under mocks -> apply -> all Deployments/Jobs/PVCs ready (incl. pytest start)", f"{dt:.1f} s"))

    eng = subprocess.run([str(SCRIPTS / "toolchain"), "engine"], capture_output=True, text=True)
    if eng.returncode == 0:
        env = dict(os.environ, LLMAB_USE_CURRENT_CONTEXT="1", KUBECONFIG=kubeconfig)
        for verb in ("preview", "up", "destroy"):
            dt, proc = timed([str(SCRIPTS / "stack"), verb, "bench"], env=env, check=False)
            rows.append((f"scripts/stack {verb} bench", f"{dt:.1f} s" + ("" if proc.returncode == 0 else " (FAILED)")))
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
