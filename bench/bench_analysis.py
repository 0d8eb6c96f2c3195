"""Measure the A/B analysis in one run: the load generator's overhead and ceiling, and the verdict's error rates.

1. **Overhead against a known server.** A fake TGI server in a child process streams 8 tokens
   with a constant time to first token (20 ms) and 2 ms between tokens. The generator's TTFT
   and end-to-end latency minus those configured figures is the latency the rig adds (client
   plus the fake server's own handling: an upper bound on the generator's share). Open loop at
   several rates: achieved vs requested rate and the send lag (start minus scheduled arrival).
2. **Ceiling.** Against a zero-latency server: the highest closed-loop request rate, and the
   same server loaded by locust (an established load tool, from PyPI) with the same number of
   users, side by side, when a ``locust`` executable is found (``--locust PATH`` or on PATH).
3. **Verdict operating characteristics** on simulated log-normal latencies (no server):
   over seeded repetitions, how often the verdict says ROLLBACK when the variants are equal
   (false alarm), PROMOTE when equal (the design's "power to promote"), and ROLLBACK when the
   canary is 40 % slower against a 20 % margin (power), per sample size. The design is fixed
   sample (no sequential stopping), so its requests needed is the n in the table.

Every load is bounded in count and time and sent to 127.0.0.1 only.
Run: ``python bench/bench_analysis.py [--repetitions 200] [--seed 1] [--quick] [--sections ...]``.
"""

from __future__ import annotations

import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.loadgen import LoadPlan, Target, run_phase  # noqa: E402
from analysis.prompts import Prompt  # noqa: E402
from analysis.records import ErrorKind, RequestRecord  # noqa: E402
from analysis.sequential import simulate_prefixes  # noqa: E402
from analysis.thresholds import Thresholds  # noqa: E402
from analysis.verdict import RowStatus, Verdict, compare  # noqa: E402
from tests.analysis.servers import ServerProcess, tgi_spec  # noqa: E402

TTFT_S, TOKEN_S, TOKENS = 0.020, 0.002, 8
SECTIONS = ("overhead", "ceiling", "verdict")
PROMPTS = [Prompt("bench", "Tell me about the weather", {"max_new_tokens": TOKENS, "do_sample": False})]

LOCUSTFILE = """
from locust import HttpUser, task, constant

class Streamer(HttpUser):
    wait_time = constant(0)

    @task
    def stream(self):
        body = {"inputs": "Tell me about the weather", "parameters": {"max_new_tokens": %d, "details": True}}
        with self.client.post("/generate_stream", json=body, stream=True, catch_response=True) as response:
            for _ in response.iter_lines():
                pass
            response.success()
"""


def ms(value: float) -> str:
    return f"{value * 1000:7.2f}"


def quantiles(values: list[float]) -> tuple[float, float, float]:
    array = np.asarray(values)
    return float(np.quantile(array, 0.5)), float(np.quantile(array, 0.95)), float(np.quantile(array, 0.99))


def overhead(quick: bool) -> None:
    print("## 1. Generator overhead against a server with known latency")
    print(
        f"server: TTFT {TTFT_S * 1000:.0f} ms constant, {TOKENS} tokens {TOKEN_S * 1000:.0f} ms apart "
        f"(end-to-end {(TTFT_S + (TOKENS - 1) * TOKEN_S) * 1000:.0f} ms), in a child process"
    )
    servers = ServerProcess([tgi_spec("bench", ttft_s=TTFT_S, token_s=TOKEN_S)])
    try:
        url = servers.urls[0]
        n = 100 if quick else 300
        records = run_phase(
            [Target("t", url)], PROMPTS, LoadPlan(concurrency=1, requests=n, duration_s=60), scrape_metrics=False
        ).records["t"]
        ok = [r for r in records if r.ok]
        added_ttft = [r.ttft_s - TTFT_S for r in ok if r.ttft_s]
        added_e2e = [r.e2e_s - (TTFT_S + (TOKENS - 1) * TOKEN_S) for r in ok if r.e2e_s]
        p50, p95, p99 = quantiles(added_ttft)
        e50, e95, e99 = quantiles(added_e2e)
        print(
            f"closed loop, 1 client, {len(ok)}/{n} ok: added TTFT p50/p95/p99 {ms(p50)} {ms(p95)} {ms(p99)} ms; "
            f"added end-to-end {ms(e50)} {ms(e95)} {ms(e99)} ms"
        )
        print()
        print(
            "| requested req/s | arrivals due | sent | sent per s of the window | send lag p50 / p99 (ms) "
            "| added TTFT p50 / p95 (ms) | errors |"
        )
        print("|---:|---:|---:|---:|---:|---:|---|")
        duration = 2.0 if quick else 4.0
        for rate in (25, 50, 100, 200, 400):
            plan = LoadPlan(
                mode="open",
                rate=float(rate),
                requests=int(rate * duration * 2),
                duration_s=duration,
                seed=rate,
                max_inflight=512,
            )
            result = run_phase([Target("t", url)], PROMPTS, plan, scrape_metrics=False)
            recs = result.records["t"]
            sent = [r for r in recs if r.error is not ErrorKind.CLIENT_OVERLOAD]
            lags = [r.started_s - r.scheduled_s for r in sent if r.scheduled_s is not None]
            ttft = [r.ttft_s - TTFT_S for r in sent if r.ok and r.ttft_s]
            l50, _, l99 = quantiles(lags)
            t50, t95, _ = quantiles(ttft) if ttft else (float("nan"),) * 3
            errors = Counter(r.error.value for r in recs if r.error is not None)
            print(
                f"| {rate} | {len(recs)} | {len(sent)} | {len(sent) / duration:.1f} | {ms(l50)} / {ms(l99)} | "
                f"{ms(t50)} / {ms(t95)} | "
                f"{dict(errors) or 0} |"
            )
    finally:
        servers.close()
    print()


def ceiling(quick: bool, locust: str | None) -> None:
    print("## 2. Ceiling against a zero-latency server (closed loop)")
    servers = ServerProcess([tgi_spec("bench", ttft_s=0.0, token_s=0.0)])
    duration = 3.0 if quick else 6.0
    try:
        url = servers.urls[0]
        print("| round | tool | users | requests | req/s | token events/s | errors |")
        print("|---:|---|---:|---:|---:|---:|---|")
        # Alternate the tools, twice each, so a change in the machine's load hits both.
        for round_, users in ((1, 8), (1, 32), (2, 8), (2, 32)):
            plan = LoadPlan(concurrency=users, requests=100_000, duration_s=duration)
            result = run_phase([Target("t", url)], PROMPTS, plan, scrape_metrics=False)
            recs = result.records["t"]
            ok = [r for r in recs if r.ok]
            errors = Counter(r.error.value for r in recs if r.error is not None)
            print(
                f"| {round_} | analysis (httpx, asyncio, SSE parsed) | {users} | {len(recs)} | "
                f"{len(recs) / result.elapsed_s:.0f} | "
                f"{sum(r.output_tokens for r in ok) / result.elapsed_s:.0f} | {dict(errors) or 0} |"
            )
            if locust:
                print(f"| {round_} " + run_locust(locust, url, users, duration))
        if not locust:
            print(
                "| - | locust | - | - | - | - | not run: no locust executable (pip install locust==2.47.0 in a "
                "separate venv, then --locust PATH) |"
            )
    finally:
        servers.close()
    print("The fake server is Python's ThreadingHTTPServer on the same 2 cores: its own ceiling bounds both tools.")
    print()


def run_locust(locust: str, url: str, users: int, duration: float) -> str:
    with tempfile.TemporaryDirectory() as tmp:
        locustfile = Path(tmp) / "locustfile.py"
        locustfile.write_text(LOCUSTFILE % TOKENS)
        command = [
            locust,
            "-f",
            str(locustfile),
            "--headless",
            "-u",
            str(users),
            "-r",
            str(users),
            "--host",
            url,
            "-t",
            f"{int(duration)}s",
            "--csv",
            str(Path(tmp) / "out"),
            "--only-summary",
            "--stop-timeout",
            "2",
        ]
        try:
            subprocess.run(command, capture_output=True, text=True, timeout=duration + 60, check=False)
        except subprocess.TimeoutExpired:
            return f"| locust | {users} | - | - | - | timed out |"
        stats = Path(tmp) / "out_stats.csv"
        if not stats.exists():
            return f"| locust | {users} | - | - | - | no stats written |"
        lines = stats.read_text().splitlines()
        header = lines[0].split(",")
        total = next(line.split(",") for line in lines[1:] if line.split(",")[1] == "Aggregated")
        row = dict(zip(header, total, strict=False))
        rps = float(row["Requests/s"])
        return (
            f"| locust {locust_version(locust)} (requests, gevent, body read) | {users} | {row['Request Count']} | "
            f"{rps:.0f} | {rps * TOKENS:.0f} | {row['Failure Count']} failures |"
        )


def locust_version(locust: str) -> str:
    out = subprocess.run([locust, "--version"], capture_output=True, text=True, timeout=60, check=False).stdout
    match = re.search(r"(\d+\.\d+\.\d+)", out)
    return match.group(1) if match else "?"


def simulated(target: str, n: int, slower: float, rng: np.random.Generator) -> list[RequestRecord]:
    out = []
    for i in range(n):
        ttft = float(rng.lognormal(np.log(0.2), 0.4)) * slower
        gap = float(rng.lognormal(np.log(0.03), 0.3)) * slower
        record = RequestRecord(
            target=target,
            index=i,
            prompt="p",
            started_s=0.0,
            ttft_s=ttft,
            e2e_s=ttft + 31 * gap,
            itl_s=[gap] * 31,
            output_tokens=32,
        )
        out.append(record)
    return out


SCENARIOS = (("equal", 1.0), ("+20 % (at the p50 margin)", 1.2), ("+40 %", 1.4))
"""Canary latency relative to stable (every quantile scaled alike)."""


def operating_characteristics(repetitions: int, seed: int, quick: bool) -> None:
    print("## 3. Verdict operating characteristics (simulated, no server)")
    print(
        "TTFT log-normal (median 200 ms, sigma 0.4), 32 tokens 30 ms apart (sigma 0.3), no errors; default "
        "thresholds (margins 20 % on p50, 30 % on p95, minSamples 30), 95 % intervals, 1000 bootstrap resamples. "
        "The canary scales every latency by the factor named."
    )
    print()
    print(
        "| n per variant | canary | P(PROMOTE) | P(HOLD) | P(ROLLBACK) | rows holding (share of runs) | s per verdict |"
    )
    print("|---:|---|---:|---:|---:|---|---:|")
    rng = np.random.default_rng(seed)
    thresholds = Thresholds()
    for n in (50, 100, 200) if quick else (50, 100, 200, 400):
        counts = {label: Counter() for label, _ in SCENARIOS}
        holding = {label: Counter() for label, _ in SCENARIOS}
        started = time.perf_counter()
        for rep in range(repetitions):
            stable = simulated("stable", n, 1.0, rng)
            for label, slower in SCENARIOS:
                comparison = compare(stable, simulated("canary", n, slower, rng), thresholds, resamples=1000, seed=rep)
                counts[label][comparison.verdict] += 1
                holding[label].update(r.metric for r in comparison.rows if r.status is RowStatus.HOLD)
        per = (time.perf_counter() - started) / (len(SCENARIOS) * repetitions)
        for label, _ in SCENARIOS:
            c = counts[label]
            rows = ", ".join(f"{m} {k / repetitions:.2f}" for m, k in holding[label].most_common(3)) or "-"
            print(
                f"| {n} | {label} | {c[Verdict.PROMOTE] / repetitions:.3f} | {c[Verdict.HOLD] / repetitions:.3f} | "
                f"{c[Verdict.ROLLBACK] / repetitions:.3f} | {rows} | {per:.3f} |"
            )
    print(f"{repetitions} seeded repetitions per cell (seed {seed}); a rate of 0 means none of them.")
    print(
        "False alarm = P(ROLLBACK) for an equal canary; false promote = P(PROMOTE) at the margin (at most 0.025 "
        "by design, one-sided 2.5 % per row); power = P(ROLLBACK) at +40 %."
    )
    print(
        "With no errors, the rate rows alone need n >= z^2 (1 - d) / d = 188 per variant to PROMOTE at the "
        "default 2-point error-rate-increase margin (Newcombe upper bound of 0/n - 0/n); below that the verdict "
        "is HOLD."
    )
    print()
    sequential_vs_fixed(repetitions, seed, quick)


def sequential_vs_fixed(repetitions: int, seed: int, quick: bool) -> None:
    """The sequential design (K looks, Bonferroni) against the fixed sample of the same maximum."""
    n_max, looks = (200, 2) if quick else (400, 4)
    print(f"### 3b. Sequential ({looks} looks, Bonferroni) against a fixed sample of {n_max} per variant")
    print()
    print("| canary | design | P(PROMOTE) | P(HOLD) | P(ROLLBACK) | mean requests per variant | s per run |")
    print("|---|---|---:|---:|---:|---:|---:|")
    rng = np.random.default_rng(seed + 1)
    thresholds = Thresholds()
    for label, slower in (("equal", 1.0), ("+40 %", 1.4)):
        tallies = {d: Counter() for d in ("fixed", "sequential")}
        used = {"fixed": 0, "sequential": 0}
        seconds = {"fixed": 0.0, "sequential": 0.0}
        for rep in range(repetitions):
            stable, canary = simulated("stable", n_max, 1.0, rng), simulated("canary", n_max, slower, rng)
            started = time.perf_counter()
            tallies["fixed"][compare(stable, canary, thresholds, resamples=500, seed=rep).verdict] += 1
            seconds["fixed"] += time.perf_counter() - started
            used["fixed"] += n_max
            started = time.perf_counter()
            comparison, history = simulate_prefixes(stable, canary, thresholds, looks, resamples=500, seed=rep)
            seconds["sequential"] += time.perf_counter() - started
            tallies["sequential"][comparison.verdict] += 1
            used["sequential"] += history[-1].n_stable
        for design in ("fixed", "sequential"):
            t = tallies[design]
            print(
                f"| {label} | {design} | {t[Verdict.PROMOTE] / repetitions:.3f} | "
                f"{t[Verdict.HOLD] / repetitions:.3f} | "
                f"{t[Verdict.ROLLBACK] / repetitions:.3f} | {used[design] / repetitions:.0f} | "
                f"{seconds[design] / repetitions:.3f} |"
            )
    print(f"{repetitions} seeded repetitions per row, 500 bootstrap resamples per look.")
    print()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--quick", action="store_true", help="fewer requests and sizes (about a minute)")
    parser.add_argument(
        "--locust",
        default=os.environ.get("LOCUST") or shutil.which("locust"),
        help="locust executable for the side-by-side ceiling (default: $LOCUST or PATH)",
    )
    parser.add_argument(
        "--sections", nargs="+", choices=SECTIONS, default=list(SECTIONS), help="which measurements (default all)"
    )
    args = parser.parse_args()
    load = os.getloadavg()
    print(
        f"# bench_analysis: {os.cpu_count()} cores, load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f} "
        f"at start, Python {sys.version.split()[0]}"
    )
    print()
    if "overhead" in args.sections:
        overhead(args.quick)
    if "ceiling" in args.sections:
        ceiling(args.quick, args.locust)
    if "verdict" in args.sections:
        operating_characteristics(
            args.repetitions if not args.quick else min(args.repetitions, 60), args.seed, args.quick
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
