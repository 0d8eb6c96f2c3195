"""Self-contained HTML report: verdict, tables and plotly charts, with plotly.js inlined (works offline).

Charts: CDFs of TTFT and end-to-end latency per target, TTFT and tokens/s over the run, the
per-request mean inter-token latency distribution, and error counts by kind.
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
from plotly.offline import get_plotlyjs

from .records import RequestRecord
from .report import delta_text, fmt_estimate, fmt_seconds, fmt_value
from .runner import AnalysisReport

COLOURS = {"stable": "#1f77b4", "canary": "#ff7f0e", "traffic": "#7f7f7f"}
CHART_IDS = ("ttft-cdf", "e2e-cdf", "ttft-over-time", "tokens-per-s-over-time", "itl-distribution", "errors-by-kind")
_VERDICT_COLOUR = {"PROMOTE": "#2ca02c", "HOLD": "#d4a017", "ROLLBACK": "#d62728"}


def _ecdf(values: Sequence[float]) -> tuple[np.ndarray, np.ndarray]:
    x = np.sort(np.asarray(values, dtype=float))
    return x * 1000, np.arange(1, x.size + 1) / max(1, x.size)


def _layout(fig: go.Figure, title: str, x: str, y: str) -> go.Figure:
    fig.update_layout(
        title=title,
        xaxis_title=x,
        yaxis_title=y,
        template="plotly_white",
        height=380,
        margin={"l": 60, "r": 20, "t": 50, "b": 50},
        legend={"orientation": "h", "y": -0.2},
    )
    return fig


def _figures(records: dict[str, list[RequestRecord]]) -> dict[str, go.Figure]:
    figs = {key: go.Figure() for key in CHART_IDS}
    for name, recs in records.items():
        ok = [r for r in recs if r.ok]
        colour = COLOURS.get(name, "#333333")
        for key, attr in (("ttft-cdf", "ttft_s"), ("e2e-cdf", "e2e_s")):
            values = [getattr(r, attr) for r in ok if getattr(r, attr) is not None]
            if values:
                x, y = _ecdf(values)
                figs[key].add_trace(
                    go.Scatter(x=x, y=y, mode="lines", name=name, line={"color": colour, "shape": "hv"})
                )
        timed = [(r.started_s, r.ttft_s) for r in ok if r.ttft_s is not None]
        figs["ttft-over-time"].add_trace(
            go.Scatter(
                x=[started for started, _ in timed],
                y=[ttft * 1000 for _, ttft in timed],
                mode="markers",
                name=name,
                marker={"color": colour, "size": 5, "opacity": 0.7},
            )
        )
        rated = [r for r in ok if r.tokens_per_s is not None]
        figs["tokens-per-s-over-time"].add_trace(
            go.Scatter(
                x=[r.started_s for r in rated],
                y=[r.tokens_per_s for r in rated],
                mode="markers",
                name=name,
                marker={"color": colour, "size": 5, "opacity": 0.7},
            )
        )
        itl = [r.mean_itl_s * 1000 for r in ok if r.mean_itl_s is not None]
        if itl:
            figs["itl-distribution"].add_trace(go.Histogram(x=itl, name=name, marker={"color": colour}, opacity=0.6))
    kinds = sorted({r.error.value for recs in records.values() for r in recs if r.error is not None})
    for name, recs in records.items():
        counts = [sum(1 for r in recs if r.error is not None and r.error.value == k) for k in kinds]
        figs["errors-by-kind"].add_trace(
            go.Bar(x=kinds or ["none"], y=counts or [0], name=name, marker={"color": COLOURS.get(name, "#333333")})
        )
    _layout(figs["ttft-cdf"], "Time to first token: CDF", "TTFT (ms)", "fraction of requests")
    _layout(figs["e2e-cdf"], "End-to-end latency: CDF", "latency (ms)", "fraction of requests")
    _layout(figs["ttft-over-time"], "Time to first token over the run", "request start (s into the phase)", "TTFT (ms)")
    _layout(
        figs["tokens-per-s-over-time"],
        "Output tokens/s per request over the run",
        "request start (s into the phase)",
        "tokens/s",
    )
    _layout(figs["itl-distribution"], "Mean inter-token latency per request", "ITL (ms)", "requests")
    figs["itl-distribution"].update_layout(barmode="overlay")
    _layout(figs["errors-by-kind"], "Errors by kind", "kind", "requests")
    figs["errors-by-kind"].update_layout(barmode="group")
    return figs


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render(report: AnalysisReport) -> str:
    """The whole report as one HTML document."""
    verdict = report.comparison.verdict.value
    comparison = _table(
        ("Metric", "Stable", "Canary", "Canary - stable", "Interval", "Pass rule", "Result", "Why"),
        [
            (
                r.metric,
                fmt_value(r.stable, r.unit),
                fmt_value(r.canary, r.unit),
                *fmt_estimate(r),
                r.rule,
                r.status.value.upper(),
                r.reason,
            )
            for r in report.comparison.rows
        ],
    )
    clients = _table(
        (
            "Target",
            "URL",
            "Engine",
            "Requests",
            "OK",
            "Errors",
            "TTFT p50",
            "TTFT p95",
            "E2E p50",
            "E2E p95",
            "tok/s p50",
            "Req/s",
        ),
        [
            (
                s.target,
                s.url,
                s.engine,
                str(s.requests),
                str(s.ok),
                ", ".join(f"{k} {v}" for k, v in s.errors.items()) or "0",
                fmt_seconds(s.ttft_p50),
                fmt_seconds(s.ttft_p95),
                fmt_seconds(s.e2e_p50),
                fmt_seconds(s.e2e_p95),
                "-" if s.tokens_per_s_p50 is None else f"{s.tokens_per_s_p50:.1f}",
                "-" if s.achieved_rps is None else f"{s.achieved_rps:.1f}",
            )
            for s in report.summaries.values()
        ],
    )
    names = [n for n in ("stable", "canary", "traffic") if report.server.get(n)]
    families: list[str] = []
    for name in names:
        families += [d.name for d in report.server[name] if d.name not in families]
    by_target = {n: {d.name: d for d in report.server[n]} for n in names}
    server = (
        _table(("Family", *names), [(f, *(delta_text(by_target[n].get(f)) for n in names)) for f in families])
        if families
        else "<p>No server metrics were scraped.</p>"
    )
    figs = _figures(report.records)
    charts = "\n".join(
        f'<div class="chart">{fig.to_html(full_html=False, include_plotlyjs=False, div_id=key)}</div>'
        for key, fig in figs.items()
    )
    reasons = "".join(f"<li>{html.escape(r)}</li>" for r in report.comparison.reasons)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>llm-ab A/B analysis: {verdict}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2em; color: #222; }}
table {{ border-collapse: collapse; margin: 1em 0; font-size: 0.9em; }}
th, td {{ border: 1px solid #ccc; padding: 4px 8px; text-align: left; }}
th {{ background: #f3f3f3; }}
.verdict {{ display: inline-block; padding: 0.3em 0.8em; color: white; border-radius: 4px;
  background: {_VERDICT_COLOUR[verdict]}; font-weight: bold; }}
.chart {{ max-width: 1000px; }}
</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>A/B analysis <span class="verdict">{verdict}</span></h1>
<p>Exit code {report.exit_code}; {report.seconds:.1f} s. {html.escape(report.config.plan.describe())}.</p>
<ul>{reasons}</ul>
<h2>Canary vs stable</h2>{comparison}
<h2>Client-side figures</h2>{clients}
<h2>Server-side metrics (deltas over the run)</h2>{server}
<h2>Charts</h2>
{charts}
</body></html>
"""


def write(report: AnalysisReport, path: str | Path) -> Path:
    """Write the report to ``path`` (parent directories are created)."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render(report), encoding="utf-8")
    return target
