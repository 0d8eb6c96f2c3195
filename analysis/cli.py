"""Command line of the A/B analysis: parse and validate, run, print, write reports, return the exit code.

Exit status: 0 PROMOTE, 3 HOLD (not enough evidence yet), 1 ROLLBACK or an endpoint that never
answered, 2 bad usage (bad flag, threshold out of range, unreadable prompt or case file), each
with a message naming the input.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from dataclasses import fields
from pathlib import Path

from .engines import ENGINES
from .htmlreport import write as write_html
from .loadgen import MODES, LoadPlan, Target
from .plan import HOLD_PASSES, JOB_SETTING_KEYS, threshold_flag
from .prompts import LengthControls, Prompt, PromptFileError, from_case_files, from_jsonl, prepare
from .report import ConsoleUi, make_console
from .runner import AnalysisConfig, PreflightError, run
from .sequential import MAX_LOOKS
from .thresholds import (
    CONFIG_KEYS,
    CONFIG_PREFIX,
    ThresholdError,
    Thresholds,
    analysis_object_from_pulumi_json,
    thresholds_from_config,
)
from .verdict import Verdict

USAGE_ERROR = 2
FAILURE = 1
DEFAULT_CASES = Path(__file__).resolve().parents[1] / "smoke" / "cases"

EPILOG = f"""\
decision: each metric is a non-inferiority test of the canary at the --confidence level:
latency quantiles (TTFT, end-to-end p50/p95) as the relative change canary/stable - 1 with a
two-sample percentile bootstrap interval; error and golden-case pass rates with Wilson (the
canary's own rate) and Newcombe hybrid score (canary - stable) intervals. PROMOTE when every
row passes, ROLLBACK when one fails, HOLD otherwise (exit 0 / 1 / 3; 2 = usage).

thresholds: each --max-*/--min-* flag is the stack setting {CONFIG_PREFIX}<key> named in its help;
'none' makes a latency metric informational.

default prompts: the smoke case files in {DEFAULT_CASES}.
"""

_HELP_UNITS = {
    "max_ttft_p50_regression_pct": "percent",
    "max_ttft_p95_regression_pct": "percent",
    "max_e2e_p50_regression_pct": "percent",
    "max_e2e_p95_regression_pct": "percent",
    "max_itl_p50_regression_pct": "percent",
    "max_tokens_per_s_drop_pct": "percent",
    "max_error_rate": "fraction",
    "max_error_rate_increase": "fraction",
    "min_case_pass_rate": "fraction",
    "max_case_pass_rate_drop": "fraction",
    "min_samples": "requests",
    "confidence": "two-sided level",
}


def _flag(name: str) -> str:
    return threshold_flag(name)


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be an integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _threshold_value(text: str) -> str:
    return text  # validated together by Thresholds, so the message names the setting


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (flag names are the interface the in-cluster analysis Job will use)."""
    parser = argparse.ArgumentParser(
        prog="python -m analysis",
        description="A/B analysis of two LLM variants: streamed load, client and server figures, "
        "canary-vs-stable statistics and a PROMOTE / HOLD / ROLLBACK verdict.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    targets = parser.add_argument_group("targets")
    targets.add_argument("--stable-url", metavar="URL", required=True, help="stable variant's own Service")
    targets.add_argument("--canary-url", metavar="URL", required=True, help="canary variant's own Service")
    targets.add_argument(
        "--traffic-url", metavar="URL", help="traffic Service (loaded in a second phase; reported only)"
    )
    targets.add_argument("--engine", choices=ENGINES, default="tgi", help="protocol of every target (default tgi)")
    for name in ("stable", "canary", "traffic"):
        targets.add_argument(
            f"--{name}-engine", choices=ENGINES, help=f"protocol of the {name} target (default --engine)"
        )
        targets.add_argument(
            f"--{name}-model",
            metavar="ID",
            help=f"model the {name} target serves (default: learned from /info or /v1/models)",
        )
    load = parser.add_argument_group("load")
    load.add_argument("--mode", choices=MODES, default="closed", help="open (Poisson arrivals) or closed loop")
    load.add_argument("--rate", type=_positive_float, metavar="R", help="open loop: arrivals per second per target")
    load.add_argument("--concurrency", type=_positive_int, metavar="N", help="closed loop: clients per target")
    load.add_argument(
        "--requests", type=_positive_int, metavar="N", required=True, help="at most N requests per target"
    )
    load.add_argument(
        "--duration",
        type=_positive_float,
        metavar="S",
        required=True,
        help="no request starts after S seconds of a phase",
    )
    load.add_argument(
        "--request-timeout",
        type=_positive_float,
        metavar="S",
        default=60.0,
        help="limit of one streamed request (default 60)",
    )
    load.add_argument(
        "--ready-timeout",
        type=_positive_float,
        metavar="S",
        default=30.0,
        help="how long to wait for each endpoint to answer before the load (default 30)",
    )
    load.add_argument(
        "--max-inflight",
        type=_positive_int,
        metavar="N",
        default=256,
        help="open loop: cap of requests in flight per target (default 256)",
    )
    load.add_argument(
        "--scrape-interval",
        type=float,
        metavar="S",
        default=1.0,
        help="in-run /metrics scrape period for gauges; 0 = off (default 1)",
    )
    load.add_argument("--no-server-metrics", action="store_true", help="do not scrape /metrics")
    load.add_argument("--seed", type=int, default=0, help="seed of arrivals and bootstrap (default 0)")
    prompts = parser.add_argument_group("prompts")
    source = prompts.add_mutually_exclusive_group()
    source.add_argument("--cases", metavar="PATH", action="append", help="smoke case file or directory (repeatable)")
    source.add_argument("--prompts", metavar="FILE", help="JSONL prompt set (one JSON object per line)")
    prompts.add_argument(
        "--max-new-tokens", type=_positive_int, metavar="N", help="override every prompt's max_new_tokens"
    )
    prompts.add_argument("--max-prompt-chars", type=_positive_int, metavar="N", help="cut prompts to N characters")
    prompts.add_argument(
        "--truncate-tokens", type=_positive_int, metavar="N", help="server-side truncation to the last N prompt tokens"
    )
    decision = parser.add_argument_group("thresholds (stack settings analysis.*)")
    for f in fields(Thresholds):
        decision.add_argument(
            _flag(f.name),
            dest=f.name,
            type=_threshold_value,
            metavar="X",
            help=f"{CONFIG_PREFIX}{CONFIG_KEYS[f.name]} ({_HELP_UNITS[f.name]}; default "
            f"{'none: informational' if f.default is None else f.default})",
        )
    decision.add_argument(
        "--looks",
        type=_positive_int,
        metavar="K",
        default=1,
        help=f"sequential design: analyse after each of K equal stages, stop at the first PROMOTE or ROLLBACK; "
        f"intervals at 1 - (1 - confidence) / K (Bonferroni); 1..{MAX_LOOKS} (default 1: fixed sample)",
    )
    decision.add_argument(
        HOLD_PASSES,
        action="store_true",
        help="exit 0 on HOLD instead of 3 (the in-cluster gate unless analysis.failOnHold); the verdict is printed",
    )
    decision.add_argument(
        "--stack-config",
        metavar="FILE",
        help="`pulumi config --json` output: its analysis.* thresholds are the defaults the flags override",
    )
    decision.add_argument(
        "--bootstrap-resamples",
        type=_positive_int,
        metavar="B",
        default=2000,
        help="bootstrap resamples per latency metric (default 2000)",
    )
    out = parser.add_argument_group("output")
    out.add_argument("--json", action="store_true", help="print the report as JSON on stdout (human output to stderr)")
    out.add_argument("--html", metavar="PATH", help="write a self-contained HTML report with charts")
    out.add_argument("--records", metavar="PATH", help="write every request record as JSONL")
    return parser


STACK_ONLY_KEYS = JOB_SETTING_KEYS
"""Keys of the ``analysis`` config object that are not thresholds (the Job's own settings); skipped here."""


def thresholds_from_args(args: argparse.Namespace) -> Thresholds:
    """Thresholds from ``--stack-config``, then the flags given; ThresholdError names the setting."""
    values: dict[str, object] = {}
    if args.stack_config:
        try:
            document = json.loads(Path(args.stack_config).read_text(encoding="utf-8"))
        except (OSError, ValueError) as err:
            raise ThresholdError("(file)", f"cannot read {args.stack_config} as JSON: {err}") from None
        values.update(analysis_object_from_pulumi_json(document))
    values.update(
        {CONFIG_KEYS[f.name]: getattr(args, f.name) for f in fields(Thresholds) if getattr(args, f.name) is not None}
    )
    return thresholds_from_config(values, other_keys=STACK_ONLY_KEYS)


def _check_usage(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if args.mode == "open" and args.concurrency is not None:
        parser.error("--concurrency is for --mode closed; open loop takes --rate")
    if args.mode == "closed" and args.rate is not None:
        parser.error("--rate is for --mode open; closed loop (the default) takes --concurrency")
    if args.mode == "open" and args.rate is None:
        parser.error("--mode open needs --rate R (arrivals per second per target)")
    if args.mode == "closed" and args.concurrency is None:
        parser.error("--mode closed needs --concurrency N (clients per target)")
    if args.looks > MAX_LOOKS:
        parser.error(f"--looks must be 1..{MAX_LOOKS}, got {args.looks}")
    if args.looks > args.requests:
        parser.error(f"--looks {args.looks} needs at least as many --requests, got {args.requests}")
    if args.scrape_interval < 0:
        parser.error(f"--scrape-interval must be >= 0, got {args.scrape_interval:g}")
    for flag in ("stable_url", "canary_url", "traffic_url"):
        url = getattr(args, flag)
        if url is not None and not url.startswith(("http://", "https://")):
            parser.error(f"--{flag.replace('_', '-')} must be an http:// or https:// URL, got {url!r}")


def _load_prompts(args: argparse.Namespace) -> tuple[Prompt, ...]:
    controls = LengthControls(args.max_new_tokens, args.max_prompt_chars, args.truncate_tokens)
    raw = from_jsonl(args.prompts) if args.prompts else from_case_files(args.cases or [str(DEFAULT_CASES)])
    return tuple(prepare(raw, controls))


def build_config(args: argparse.Namespace, thresholds: Thresholds, prompts: tuple[Prompt, ...]) -> AnalysisConfig:
    """Turn validated arguments into an :class:`AnalysisConfig`."""

    def target(name: str, url: str) -> Target:
        return Target(name, url, getattr(args, f"{name}_engine") or args.engine, getattr(args, f"{name}_model"))

    plan = LoadPlan(
        mode=args.mode,
        rate=args.rate,
        concurrency=args.concurrency,
        requests=args.requests,
        duration_s=args.duration,
        request_timeout_s=args.request_timeout,
        max_inflight=args.max_inflight,
        seed=args.seed,
        scrape_interval_s=args.scrape_interval,
    )
    return AnalysisConfig(
        stable=target("stable", args.stable_url),
        canary=target("canary", args.canary_url),
        traffic=target("traffic", args.traffic_url) if args.traffic_url else None,
        plan=plan,
        prompts=prompts,
        thresholds=thresholds,
        resamples=args.bootstrap_resamples,
        seed=args.seed,
        ready_timeout_s=args.ready_timeout,
        scrape_metrics=not args.no_server_metrics,
        looks=args.looks,
    )


def main(argv: Sequence[str] | None = None) -> int:
    """Run the analysis; return the exit status (argparse usage errors exit 2 themselves)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_usage(args, parser)
    err = sys.stderr
    try:
        thresholds = thresholds_from_args(args)
    except ThresholdError as error:
        flag = next((_flag(n) for n, k in CONFIG_KEYS.items() if k == error.key), "--stack-config")
        print(f"{parser.prog}: error: {flag} ({error})", file=err)
        return USAGE_ERROR
    try:
        prompts = _load_prompts(args)
    except PromptFileError as error:
        print(f"{parser.prog}: error: {error}", file=err)
        return USAGE_ERROR
    config = build_config(args, thresholds, prompts)
    ui = ConsoleUi(make_console(sys.stderr if args.json else sys.stdout))
    try:
        report = run(config, ui)
    except PreflightError as error:
        print(f"{parser.prog}: error: endpoint not answering: {error}", file=err)
        if args.json:
            sys.stdout.write(json.dumps({"verdict": None, "exit_code": FAILURE, "error": str(error)}, indent=2) + "\n")
        return FAILURE
    ui.results(report)
    exit_code = report.exit_code
    if args.hold_passes and report.comparison.verdict is Verdict.HOLD:
        ui.console.print(f"HOLD does not fail this run ({HOLD_PASSES}): exit 0")
        exit_code = 0
    if args.html:
        path = write_html(report, args.html)
        ui.console.print(f"HTML report: {path}")
    if args.records:
        with Path(args.records).open("w", encoding="utf-8") as handle:
            for records in report.records.values():
                for record in records:
                    handle.write(json.dumps(record.to_dict()) + "\n")
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    return exit_code
