#!/usr/bin/env python3
"""Wall time of the unit suite (no engine, no cluster) and of one run of the dev program under mocks.

Both are measured in this one process run, side by side, several times; the median is reported.
Usage: venv/bin/python bench/bench_unit.py [--repeat N]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROGRAM_UNDER_MOCKS = r"""
import asyncio, json, os, runpy, sys, time
sys.path.insert(0, %(root)r)
import pulumi, yaml
from deploy.workspace import user_config
cfg = user_config(yaml.safe_load(open(os.path.join(%(root)r, "Pulumi.dev.yaml"))))
os.environ["PULUMI_CONFIG"] = json.dumps({k: v if isinstance(v, str) else json.dumps(v) for k, v in cfg.items()})
class Mocks(pulumi.runtime.Mocks):
    n = 0
    def new_resource(self, args):
        Mocks.n += 1
        return args.name + "-id", dict(args.inputs)
    def call(self, args):
        return {}, None
asyncio.set_event_loop(asyncio.new_event_loop())
pulumi.runtime.set_mocks(Mocks(), project="llm-ab", stack="dev", preview=False)
pulumi.export = lambda *a: None
t0 = time.perf_counter()
@pulumi.runtime.test
def program():
    runpy.run_path(os.path.join(%(root)r, "__main__.py"), run_name="__main__")
program()
print(json.dumps({"seconds": time.perf_counter() - t0, "resources": Mocks.n}))
"""


def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    done = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True)
    elapsed = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"command failed ({done.returncode}): {' '.join(cmd)}\n{done.stdout[-2000:]}{done.stderr[-2000:]}")
    return elapsed, done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=3)
    opts = parser.parse_args()
    suite, program, in_process, resources, tests = [], [], [], 0, ""
    for _ in range(opts.repeat):
        seconds, out = timed([sys.executable, "-m", "pytest", "-q", "-m", "not integration and not slow",
                              "tests/unit", "tests/components", "tests/stacks"])
        suite.append(seconds)
        tests = out.strip().splitlines()[-1]
        seconds, out = timed([sys.executable, "-c", PROGRAM_UNDER_MOCKS % {"root": str(ROOT)}])
        program.append(seconds)
        import json
        data = json.loads(out.strip().splitlines()[-1])
        in_process.append(data["seconds"])
        resources = data["resources"]
    med = statistics.median
    print(f"{'measure':<48}{'median s':>10}{'min s':>10}")
    print(f"{'unit suite (unit+components+stacks), wall':<48}{med(suite):>10.2f}{min(suite):>10.2f}   [{tests}]")
    print(f"{'dev program under mocks, process wall':<48}{med(program):>10.2f}{min(program):>10.2f}")
    print(f"{'dev program under mocks, program only':<48}{med(in_process):>10.3f}{min(in_process):>10.3f}"
          f"   [{resources} resources registered]")
    print(f"ratio unit suite / one program run (process): {med(suite) / med(program):.1f}x  (repeat={opts.repeat})")


if __name__ == "__main__":
    main()
