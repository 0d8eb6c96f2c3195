"""Command line of the smoke tests: parse and validate arguments, run, print, return the exit code.

Exit status: 0 every check passed; 1 a check failed (the report, printed in any case, ends with
what a failure leaves serving and the rollback command); 2 bad usage or an unreadable/invalid case
file (argparse's own convention), with a message saying what is wrong and where.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from types import FrameType

from . import plan, power
from .cases import CaseFileError, TgiCaseFile, V2CaseFile, load_case_files
from .identity import components
from .report import ConsoleUi, make_console
from .runner import RunAborted, RunConfig, Runner, VariantSpec
from .split import SplitDesign

USAGE_ERROR = 2

EPILOG = """\
model identity: with --VARIANT-weights, /info model_id must be exactly that path (the stack passes
the MODEL_ID it gave the server, which contains the revision); else a model_id equal to
--VARIANT-model must report --VARIANT-revision as model_sha, and a path must end with every
component of --VARIANT-model (the organisation too), then the revision when one is given.
A variant no case file names gets a built-in generic case (one greedy inference, any text); the
stack's settings refuse that unless smoke.allowGenericCases is true.

budget: --timeout bounds the whole run (readiness, cases, split); the report is always printed.

split check: two one-sided SPRTs (H0 p = expected vs H1 |p - expected| >= delta) with error
rates alpha (false alarm) and beta (missed deviation); falls back to the exact binomial test at
the --samples cap. Each sample is GET /info on a new connection through --tgi-url.
"""


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be > 0, got {text}")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {text}")
    return value


def _header(text: str) -> tuple[str, str]:
    try:
        return plan.parse_header(text)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"must be {err}, got {text!r}") from None


def _fraction(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"must be between 0 and 1 (exclusive), got {text}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argument parser; the flags the smoke gate passes are :mod:`smoke.plan`'s."""
    parser = argparse.ArgumentParser(
        prog="python -m smoke",
        description="Post-deploy smoke tests: TGI stable/canary, the traffic split, ModelMesh V2.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    tgi = parser.add_argument_group("TGI")
    tgi.add_argument(plan.TGI_URL, metavar="URL", help="traffic Service in front of stable and canary")
    for variant in plan.VARIANTS:
        tgi.add_argument(plan.variant_url_flag(variant), metavar="URL",
                         help=f"{variant} variant's own Service (optional)")
    for variant in plan.VARIANTS:
        tgi.add_argument(plan.variant_model_flag(variant), metavar="ID",
                         help=f"model (the full repo id) the {variant} variant must serve")
        tgi.add_argument(plan.variant_revision_flag(variant), metavar="SHA",
                         help=f"revision the {variant} variant must serve (needs {plan.variant_model_flag(variant)})")
        tgi.add_argument(plan.variant_api_flag(variant), choices=plan.APIS, default=plan.API_TGI,
                         help=f"API the {variant} variant's engine speaks (openai: vLLM's OpenAI-compatible API)")
        tgi.add_argument(plan.variant_weights_flag(variant), metavar="PATH",
                         help=f"the MODEL_ID the {variant} variant was started with: /info must report it exactly")
    for variant in plan.VARIANTS:
        tgi.add_argument(
            plan.variant_header_flag(variant), metavar="'NAME: VALUE'", type=_header,
            help=f"header sent with every request to --{variant}-url (e.g. a Gateway's header match for the {variant})",
        )
    tgi.add_argument(
        plan.CANARY_PERCENT, metavar="P", type=float,
        help="expected canary share, 0-100 (the stack passes its effective share: canary replicas / total); "
        "enables the split check",
    )
    v2 = parser.add_argument_group("ModelMesh (V2 REST)")
    v2.add_argument(plan.V2_URL, metavar="URL", help="V2 REST base URL, e.g. http://modelmesh-serving.ns:8008")
    v2.add_argument(
        plan.V2_MODEL, metavar="NAME", action="append", default=[],
        help="model (InferenceService) to check, repeatable (primary, candidate); one no V2 case file names "
        "runs another file's inputs, checked by output shape and datatype; default: each V2 case file's model",
    )
    run = parser.add_argument_group("run")
    run.add_argument(plan.CASES, metavar="FILE", action="append", default=[],
                     help="case file or directory (repeatable)")
    run.add_argument(
        plan.SAMPLES, metavar="N", type=_positive_int, default=1000, help="upper bound of split samples (default 1000)"
    )
    run.add_argument(
        plan.TIMEOUT,
        metavar="S",
        type=_positive_float,
        default=300.0,
        help="budget of the whole run in seconds: readiness, cases and split end within it (default 300)",
    )
    run.add_argument(
        "--request-timeout",
        metavar="S",
        type=_positive_float,
        default=60.0,
        help="timeout of one health/info/split request (default 60)",
    )
    run.add_argument(
        "--split-alpha", metavar="A", type=_fraction, default=power.DEFAULT_ALPHA,
        help=f"split test false-alarm rate (default {power.DEFAULT_ALPHA:g})",
    )
    run.add_argument(
        "--split-beta", metavar="B", type=_fraction, default=power.DEFAULT_BETA,
        help=f"split test miss rate at delta (default {power.DEFAULT_BETA:g})",
    )
    run.add_argument(
        "--split-delta",
        metavar="D",
        type=float,
        default=power.DEFAULT_DELTA * 100,
        help=f"smallest deviation to detect, in percentage points (default {power.DEFAULT_DELTA * 100:g})",
    )
    run.add_argument(plan.ROLLBACK, metavar="CMD", help="rollback command the report prints when a check fails")
    run.add_argument(
        "--json", action="store_true", help="print the report as JSON on stdout (human output goes to stderr)"
    )
    return parser


def _check_usage(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    if not any((args.tgi_url, args.stable_url, args.canary_url, args.v2_url)):
        parser.error("nothing to check: give at least one of --tgi-url, --stable-url, --canary-url, --v2-url")
    if args.canary_percent is not None:
        if not 0 <= args.canary_percent <= 100:
            parser.error(f"--canary-percent must be between 0 and 100, got {args.canary_percent:g}")
        if args.tgi_url is None:
            parser.error("--canary-percent needs --tgi-url (the split is observed through the traffic Service)")
        if not 0 < args.split_delta <= 50:
            parser.error(f"--split-delta must be in (0, 50] percentage points, got {args.split_delta:g}")
        _check_split_identities(args, parser)
    if args.v2_model and args.v2_url is None:
        parser.error("--v2-model needs --v2-url")
    for variant in plan.VARIANTS:
        if getattr(args, f"{variant}_header") is not None and getattr(args, f"{variant}_url") is None:
            parser.error(f"{plan.variant_header_flag(variant)} needs {plan.variant_url_flag(variant)}")
        _check_identity(args, parser, variant)


def _check_identity(args: argparse.Namespace, parser: argparse.ArgumentParser, variant: str) -> None:
    model, revision, weights = (getattr(args, f"{variant}_{key}") for key in ("model", "revision", "weights"))
    if model is None and (revision is not None or weights is not None):
        parser.error(f"{plan.variant_revision_flag(variant)} and {plan.variant_weights_flag(variant)} need "
                     f"{plan.variant_model_flag(variant)}")
    if revision is not None and weights is not None and revision not in components(weights):
        parser.error(f"{plan.variant_weights_flag(variant)} {weights!r} does not contain the revision {revision!r}")


def _check_split_identities(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    needed = []
    if args.canary_percent < 100:
        needed.append(("stable", args.stable_model, args.stable_url))
    if args.canary_percent > 0:
        needed.append(("canary", args.canary_model, args.canary_url))
    for name, model, url in needed:
        if model is None and url is None:
            parser.error(
                f"the split check cannot recognise the {name} variant: give --{name}-model "
                f"(or --{name}-url to learn its model_id from /info)"
            )


def _check_v2_cases(args: argparse.Namespace, parser: argparse.ArgumentParser, v2_files: Sequence[V2CaseFile]) -> None:
    if args.v2_url is None:
        return
    if not v2_files:
        parser.error("--v2-url needs at least one V2 case file (kind: v2) in --cases")
    if args.v2_model and not any(f.model in args.v2_model for f in v2_files):
        named = ", ".join(sorted({f"{f.model!r} ({f.path})" for f in v2_files}))
        wanted = ", ".join(repr(m) for m in args.v2_model)
        parser.error(f"no V2 case file is for model {wanted}; the V2 case files name: {named}")


def _share(percent: float | None, canary: bool) -> float | None:
    if percent is None:
        return None
    return percent / 100 if canary else 1 - percent / 100


def _headers(header: tuple[str, str] | None) -> dict[str, str]:
    return dict([header]) if header is not None else {}


def build_config(
    args: argparse.Namespace, tgi_files: Sequence[TgiCaseFile], v2_files: Sequence[V2CaseFile]
) -> RunConfig:
    """Turn validated arguments and loaded case files into a :class:`RunConfig`."""
    split = None
    if args.canary_percent is not None:
        split = SplitDesign(
            expected=args.canary_percent / 100,
            alpha=args.split_alpha,
            beta=args.split_beta,
            delta=args.split_delta / 100,
            max_samples=args.samples,
        )
    return RunConfig(
        stable=_variant(args, "stable", _share(args.canary_percent, canary=False)),
        canary=_variant(args, "canary", _share(args.canary_percent, canary=True)),
        tgi_url=args.tgi_url,
        split=split,
        v2_url=args.v2_url,
        v2_models=tuple(dict.fromkeys(args.v2_model)),
        tgi_files=tuple(tgi_files),
        v2_files=tuple(v2_files),
        timeout=args.timeout,
        request_timeout=args.request_timeout,
        rollback_command=args.rollback_command,
    )


def _variant(args: argparse.Namespace, name: str, share: float | None) -> VariantSpec:
    return VariantSpec(name, getattr(args, f"{name}_url"), getattr(args, f"{name}_model"), share,
                       _headers(getattr(args, f"{name}_header")),
                       revision=getattr(args, f"{name}_revision"), weights=getattr(args, f"{name}_weights"),
                       api=getattr(args, f"{name}_api"))


@contextmanager
def _sigterm_aborts_the_run() -> Iterator[None]:
    """SIGTERM (Kubernetes at the Job's deadline, or a deleted pod) stops the run with a report."""
    def handler(signum: int, _frame: FrameType | None) -> None:
        raise RunAborted(f"stopped by {signal.Signals(signum).name}")

    try:
        previous = signal.signal(signal.SIGTERM, handler)
    except ValueError:  # not the main thread (an in-process caller): nothing to install
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the smoke tests; return the exit status (argparse usage errors exit 2 themselves)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    _check_usage(args, parser)
    try:
        tgi_files, v2_files = load_case_files(args.cases)
    except CaseFileError as err:
        print(f"{parser.prog}: error: invalid case file:\n{err}", file=sys.stderr)
        return USAGE_ERROR
    _check_v2_cases(args, parser, v2_files)
    config = build_config(args, tgi_files, v2_files)
    ui = ConsoleUi(make_console(sys.stderr if args.json else sys.stdout))
    with _sigterm_aborts_the_run():
        report = Runner(config, ui).run()
    ui.results(report)
    if args.json:
        sys.stdout.write(json.dumps(report.to_dict(), indent=2) + "\n")
    return report.exit_code
