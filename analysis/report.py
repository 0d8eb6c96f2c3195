"""Human output with rich: the run plan, a progress bar per target, the figures and the verdict.

With ``--json`` the CLI points the console at stderr so stdout carries only JSON. In a Job log
(no terminal) the progress bar is drawn once when a phase ends instead of animating.
"""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskID, TextColumn, TimeElapsedColumn
from rich.table import Table

from smoke.report import make_console

from .loadgen import Target
from .metrics import MetricDelta
from .records import RequestRecord
from .runner import AnalysisConfig, AnalysisReport
from .sequential import Look
from .summary import TargetSummary
from .verdict import Row, RowStatus, Verdict

__all__ = ["ConsoleUi", "make_console", "fmt_value"]

_STATUS_STYLE = {
    RowStatus.PASS: "green",
    RowStatus.HOLD: "yellow",
    RowStatus.FAIL: "bold red",
    RowStatus.INFO: "dim",
    RowStatus.SKIP: "dim",
}
_VERDICT_STYLE = {Verdict.PROMOTE: "bold green", Verdict.HOLD: "bold yellow", Verdict.ROLLBACK: "bold red"}


def fmt_seconds(value: float | None) -> str:
    """Seconds as ms below 1 s, else s."""
    if value is None:
        return "-"
    return f"{value * 1000:.1f} ms" if value < 1 else f"{value:.3f} s"


def fmt_value(value: float | None, unit: str) -> str:
    """A metric value in its unit."""
    if value is None:
        return "-"
    if unit == "s":
        return fmt_seconds(value)
    if unit == "rate":
        return f"{value:.2%}"
    return f"{value:.1f} {unit}"


def fmt_estimate(row: Row) -> tuple[str, str]:
    """The difference and its interval as text."""
    if row.interval is None:
        return "-", "-"
    i = row.interval
    if row.kind == "relative":
        return f"{i.estimate:+.1%}", f"[{i.low:+.1%}, {i.high:+.1%}]"
    if row.kind == "difference":
        return f"{i.estimate * 100:+.2f} pts", f"[{i.low * 100:+.2f}, {i.high * 100:+.2f}] pts"
    return "(canary's own rate)", f"[{i.low:.2%}, {i.high:.2%}]"


class ConsoleUi:
    """Prints the plan, drives the progress bars, prints the results."""

    def __init__(self, console: Console) -> None:
        self.console = console
        self._progress: Progress | None = None
        self._tasks: dict[str, TaskID] = {}
        self._errors: dict[str, int] = {}

    def plan(self, config: AnalysisConfig) -> None:
        """The run plan: targets, load, prompts, thresholds."""
        table = Table(title="A/B analysis plan", title_justify="left")
        for column in ("Target", "URL", "Engine", "Model"):
            table.add_column(column, overflow="fold")
        for target in config.targets():
            table.add_row(target.name, escape(target.url), target.engine, escape(target.model or "-"))
        self.console.print(table)
        self.console.print(f"Load: {escape(config.plan.describe())}")
        phases = (
            "stable and canary together, then the traffic Service" if config.traffic else "stable and canary together"
        )
        self.console.print(f"Phases: {phases}; {len(config.prompts)} prompt(s) round-robin")
        self.console.print(f"Time bound: at most {config.bound_seconds()} s from the start, pre-flight included")
        t = config.thresholds
        self.console.print(
            f"Decision: non-inferiority at {t.confidence:.0%} confidence; min {t.min_samples} samples per variant; "
            f"error rate <= {t.max_error_rate:.1%} (increase <= {t.max_error_rate_increase:.1%}); "
            f"case-pass rate >= {t.min_case_pass_rate:.0%} (drop <= {t.max_case_pass_rate_drop:.0%})"
        )
        self.console.print()

    def phase_started(self, name: str, targets: Sequence[Target], requests: int) -> None:
        """A progress bar per target of the phase."""
        self.console.print(f"Phase [bold]{name}[/]: {', '.join(t.name for t in targets)}")
        self._progress = Progress(
            TextColumn("{task.description:<8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn("errors {task.fields[errors]}"),
            TimeElapsedColumn(),
            console=self.console,
            transient=False,
        )
        self._tasks = {t.name: self._progress.add_task(t.name, total=requests, errors=0) for t in targets}
        self._errors = {t.name: 0 for t in targets}
        self._progress.start()

    def record(self, record: RequestRecord) -> None:
        """Advance the target's bar by one finished request."""
        if self._progress is None:
            return
        if record.error is not None:
            self._errors[record.target] += 1
        self._progress.update(self._tasks[record.target], advance=1, errors=self._errors[record.target])

    def phase_done(self) -> None:
        """Stop the bars (drawn once more in their final state)."""
        if self._progress is not None:
            self._progress.stop()
            self._progress = None

    def look(self, look: Look, looks: int) -> None:
        """One line per interim analysis of a sequential run."""
        if self._progress is not None:
            self._progress.refresh()
        style = _VERDICT_STYLE[look.verdict]
        why = f": {escape(look.reasons[0])}" if look.reasons else ""
        more = f" (+{len(look.reasons) - 1} more)" if len(look.reasons) > 1 else ""
        self.console.print(
            f"Look {look.look}/{looks}: stable {look.n_stable}, canary {look.n_canary} requests, "
            f"{look.confidence:.2%} intervals -> [{style}]{look.verdict.value}[/]{why}{more}"
        )

    def results(self, report: AnalysisReport) -> None:
        """Client figures, the comparison, server deltas and the verdict."""
        self.console.print()
        self.console.print(_client_table(list(report.summaries.values())))
        self.console.print(_comparison_table(report.comparison.rows))
        server = _server_table(report)
        if server is not None:
            self.console.print(server)
        for name, error in report.server_errors.items():
            if error:
                self.console.print(f"[yellow]note[/]: no server metrics for {name}: {escape(error)}")
        for name, summary in report.summaries.items():
            if summary.requests and summary.ok == 0:
                self.console.print(
                    f"[bold red]{name}[/]: all {summary.requests} requests failed; "
                    f"first: {escape(summary.first_error or '')}"
                )
        verdict = report.comparison.verdict
        self.console.print(
            f"Verdict: [{_VERDICT_STYLE[verdict]}]{verdict.value}[/] (exit {verdict.exit_code}) "
            f"after {report.seconds:.1f} s"
        )
        for reason in report.comparison.reasons:
            self.console.print(f"  - {escape(reason)}")


CLIENT_ROWS: tuple[tuple[str, object], ...] = (
    ("URL", lambda s: s.url),
    ("Requests", lambda s: str(s.requests)),
    ("OK", lambda s: str(s.ok)),
    ("Errors by kind", lambda s: ", ".join(f"{k} {v}" for k, v in s.errors.items()) or "0"),
    ("TTFT p50 / p95", lambda s: f"{fmt_seconds(s.ttft_p50)} / {fmt_seconds(s.ttft_p95)}"),
    ("End-to-end p50 / p95", lambda s: f"{fmt_seconds(s.e2e_p50)} / {fmt_seconds(s.e2e_p95)}"),
    ("ITL p50 / p95 (per-request mean)", lambda s: f"{fmt_seconds(s.itl_p50)} / {fmt_seconds(s.itl_p95)}"),
    ("Tokens/s per request, p50", lambda s: _num(s.tokens_per_s_p50)),
    ("Output / input tokens, mean", lambda s: f"{_num(s.output_tokens_mean)} / {_num(s.input_tokens_mean)}"),
    ("Requests/s achieved", lambda s: _num(s.achieved_rps)),
    ("Output tokens/s, all requests", lambda s: _num(s.throughput_tokens_per_s)),
    ("Golden cases passed", lambda s: f"{s.case_passed}/{s.case_scored}" if s.case_scored else "not scored"),
)
"""Rows of the client-side table: label and how to show it for a :class:`TargetSummary`."""


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _client_table(summaries: Sequence[TargetSummary]) -> Table:
    table = Table(title="Client-side figures", title_justify="left")
    table.add_column("Figure")
    for s in summaries:
        table.add_column(s.target, overflow="fold")
    for label, show in CLIENT_ROWS:
        table.add_row(label, *(escape(show(s)) for s in summaries))  # type: ignore[operator]
    return table


def _comparison_table(rows: Sequence[Row]) -> Table:
    table = Table(title="Canary vs stable", title_justify="left")
    for column in ("Metric", "Stable", "Canary", "Canary - stable", "Interval", "Pass rule", "Result", "Why"):
        table.add_column(column, overflow="fold")
    for row in rows:
        diff, interval = fmt_estimate(row)
        style = _STATUS_STYLE[row.status]
        table.add_row(
            row.metric,
            fmt_value(row.stable, row.unit),
            fmt_value(row.canary, row.unit),
            diff,
            interval,
            escape(row.rule),
            f"[{style}]{row.status.value.upper()}[/]",
            escape(row.reason),
        )
    return table


def delta_text(delta: MetricDelta | None) -> str:
    """One family's change over the run as text (counter increase, histogram n/mean/p50/p95, gauge max)."""
    if delta is None:
        return "-"
    if delta.type == "counter":
        text = f"+{delta.delta:g}"
        if delta.breakdown:
            text += " (" + ", ".join(f"{k}: {v:g}" for k, v in delta.breakdown.items()) + ")"
        return text
    if delta.type == "histogram":
        if not delta.delta:
            return "+0"
        seconds = delta.name.endswith(("duration", "seconds"))
        fmt = fmt_seconds if seconds else (lambda v: "-" if v is None else f"{v:.1f}")
        return f"n +{delta.delta:g}, mean {fmt(delta.mean)}, p50 {fmt(delta.p50)}, p95 {fmt(delta.p95)}"
    if delta.sampled_max is not None:
        return f"max {delta.sampled_max:g}, mean {delta.sampled_mean:.1f} ({delta.samples} scrapes)"
    return f"{delta.before if delta.before is not None else '-'} -> {delta.after:g}"


def _server_table(report: AnalysisReport) -> Table | None:
    names = [n for n in ("stable", "canary", "traffic") if report.server.get(n)]
    if not names:
        return None
    table = Table(title="Server-side metrics over the run (Prometheus /metrics deltas)", title_justify="left")
    table.add_column("Metric", overflow="fold")
    for name in names:
        table.add_column(name, overflow="fold")
    families: list[str] = []
    for name in names:
        for delta in report.server[name]:
            if delta.name not in families:
                families.append(delta.name)
    by_target = {n: {d.name: d for d in report.server[n]} for n in names}
    for family in families:
        table.add_row(family, *(delta_text(by_target[n].get(family)) for n in names))
    return table
