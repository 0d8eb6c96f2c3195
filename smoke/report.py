"""Human output with rich: the run plan, a line per finished check, and the results table.

Everything goes to one :class:`rich.console.Console`; with ``--json`` the CLI points it at
stderr so stdout carries only the JSON report. Lines rather than live progress bars keep the
output readable in Job logs (no TTY).
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .runner import FAIL, PASS, SKIP, Check, Plan, Report
from .split import SplitResult

_STYLE = {PASS: "green", FAIL: "bold red", SKIP: "yellow"}
_MARK = {PASS: "PASS", FAIL: "FAIL", SKIP: "SKIP"}
PROGRESS_EVERY = 50
"""Print a split progress line every this many samples."""


def make_console(stream: TextIO | None = None, quiet: bool = False) -> Console:
    """A console on ``stream`` (stdout by default); 120 columns when it is not a terminal."""
    target = stream or sys.stdout
    width = None if target.isatty() else 120
    return Console(file=target, width=width, quiet=quiet, highlight=False, soft_wrap=False)


class ConsoleUi:
    """Prints the plan, progress and results as the :class:`smoke.runner.Runner` goes."""

    def __init__(self, console: Console) -> None:
        self.console = console

    def plan(self, plan: Plan) -> None:
        """The run plan: one row per target with the checks it will get."""
        table = Table(title="Smoke test run plan", title_justify="left", show_lines=True)
        for column in ("Target", "URL", "Expected model", "Checks", "Note"):
            table.add_column(column, overflow="fold")
        for target in plan.targets:
            checks = "\n".join(target.checks) if target.checks else "-"
            table.add_row(target.target, target.url, target.model, escape(checks), escape(target.note))
        self.console.print(table)
        self.console.print(f"Readiness deadline: {plan.deadline_s:g} s from start")
        if plan.split is not None:
            s = plan.split
            self.console.print(
                f"Split check: expected canary {s['expected_percent']:g} %; {escape(s['test'])}; "
                f"alpha={s['alpha']:g} (false alarm), beta={s['beta']:g} (miss at |p - expected| >= "
                f"{s['delta_percent']:g} points); at most {s['max_samples']} samples "
                f"(a fixed-sample test would need {s['fixed_sample_equivalent']})"
            )
        for path in plan.unused_case_files:
            self.console.print(f"[yellow]note[/]: case file {escape(path)} applies to no target in this run")
        self.console.print()

    def check_done(self, check: Check) -> None:
        """One line per finished check."""
        mark = f"[{_STYLE[check.status]}]{_MARK[check.status]}[/]"
        detail = f"  {escape(check.detail)}" if check.detail else ""
        self.console.print(f"{mark} {check.target:<8} {escape(check.name)} ({check.seconds:.2f} s){detail}")

    def split_progress(self, result: SplitResult) -> None:
        """A progress line every :data:`PROGRESS_EVERY` split samples."""
        if result.samples % PROGRESS_EVERY == 0:
            self.console.print(f"     traffic  split: {result.samples} samples, {result.canary} from the canary")

    def results(self, report: Report) -> None:
        """The results table, the split statistics and the verdict."""
        table = Table(title="Smoke test results", title_justify="left")
        for column in ("Target", "Check", "Result", "Time", "Detail"):
            table.add_column(column, overflow="fold")
        for check in report.checks:
            style = _STYLE[check.status]
            table.add_row(
                check.target,
                escape(check.name),
                f"[{style}]{_MARK[check.status]}[/]",
                f"{check.seconds:.2f} s",
                escape(check.detail),
            )
        self.console.print()
        self.console.print(table)
        if report.split is not None:
            self._split_table(report.split)
        counts = report.counts()
        verdict = "[green]OK[/]" if report.ok else "[bold red]FAILED[/]"
        self.console.print(
            f"Smoke result {verdict}: {counts[PASS]} of {len(report.checks)} checks passed, "
            f"{counts[FAIL]} failed, {counts[SKIP]} skipped in {report.seconds:.1f} s"
        )
        for line in report.advice:
            self.console.print(f"[bold]{escape(line)}[/]")

    def _split_table(self, split: SplitResult) -> None:
        table = Table(title="Traffic split", title_justify="left")
        for column in ("Declared", "Observed", f"{split.confidence:.0%} CI", "Samples", "Decision", "Model ids seen"):
            table.add_column(column, overflow="fold")
        observed = "n/a" if split.observed is None else f"{split.observed:.1%}"
        decision = split.verdict or "none"
        if split.decided_by:
            decision += f" ({split.decided_by})"
        seen = "\n".join(f"{count} x {model}" for model, count in sorted(split.model_ids.items()))
        table.add_row(
            f"{split.expected:.1%}",
            observed,
            f"[{split.ci_low:.1%}, {split.ci_high:.1%}]",
            f"{split.samples} (cap {split.max_samples})",
            decision,
            escape(seen),
        )
        self.console.print(table)
