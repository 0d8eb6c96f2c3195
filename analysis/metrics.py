"""Server-side figures: scrape a variant's Prometheus ``/metrics`` before and after the run, and the deltas.

Parsing uses :func:`prometheus_client.parser.text_string_to_metric_families` (the text
exposition format TGI's and vLLM's exporters write). A family's delta is computed per type:

* counter: ``after - before`` summed over label sets, plus a breakdown by labels when the
  family has any (TGI's ``tgi_request_failure{err=...}``);
* histogram: the deltas of ``_count`` and ``_sum`` (so the mean over the run's requests only)
  and p50/p95 estimated from the bucket deltas by linear interpolation inside the bucket, as
  PromQL's ``histogram_quantile`` does;
* gauge: sampled during the run (``GaugeSamples``): max and mean, besides before/after.

Only families of LLM engines (:data:`ENGINE_PREFIXES`) are reported; the preferred ones come
first in :data:`PREFERRED` order.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from prometheus_client.parser import text_string_to_metric_families

ENGINE_PREFIXES = ("tgi_", "vllm:", "sglang:")

PREFERRED = (
    "tgi_request_count",
    "tgi_request_success",
    "tgi_request_failure",
    "tgi_request_duration",
    "tgi_request_queue_duration",
    "tgi_request_inference_duration",
    "tgi_request_mean_time_per_token_duration",
    "tgi_request_generated_tokens",
    "tgi_request_input_length",
    "tgi_queue_size",
    "tgi_batch_current_size",
    "vllm:request_success",
    "vllm:time_to_first_token_seconds",
    "vllm:e2e_request_latency_seconds",
    "vllm:inter_token_latency_seconds",
    "vllm:time_per_output_token_seconds",
    "vllm:request_queue_time_seconds",
    "vllm:generation_tokens",
    "vllm:prompt_tokens",
    "vllm:num_requests_running",
    "vllm:num_requests_waiting",
)
_ORDER = {name: i for i, name in enumerate(PREFERRED)}

LabelSet = tuple[tuple[str, str], ...]


class MetricsParseError(ValueError):
    """The ``/metrics`` body is not the Prometheus text format."""


@dataclass(frozen=True)
class Family:
    """One metric family of a scrape: its type and samples keyed by (sample name, labels)."""

    name: str
    type: str
    samples: Mapping[tuple[str, LabelSet], float]


@dataclass(frozen=True)
class Snapshot:
    """A parsed scrape of one endpoint."""

    families: Mapping[str, Family]

    def gauge_values(self) -> dict[str, float]:
        """Every gauge's value summed over its label sets."""
        return {name: sum(fam.samples.values()) for name, fam in self.families.items() if fam.type == "gauge"}


def parse(text: str) -> Snapshot:
    """Parse Prometheus text exposition; only engine families are kept."""
    families: dict[str, Family] = {}
    try:
        for metric in text_string_to_metric_families(text):
            if not metric.name.startswith(ENGINE_PREFIXES) or metric.name.endswith("_created"):
                continue  # prometheus_client's *_created series are creation timestamps, not figures
            samples = {
                (s.name, tuple(sorted(s.labels.items()))): float(s.value)
                for s in metric.samples
                if not s.name.endswith("_created")
            }
            families[metric.name] = Family(metric.name, metric.type, samples)
    except (ValueError, TypeError, IndexError) as err:
        raise MetricsParseError(f"not the Prometheus text format: {err}") from err
    return Snapshot(families)


@dataclass
class GaugeSamples:
    """Gauge values sampled during the run (one dict per scrape)."""

    scrapes: list[dict[str, float]] = field(default_factory=list)

    def add(self, snapshot: Snapshot) -> None:
        """Record the gauges of one scrape."""
        self.scrapes.append(snapshot.gauge_values())

    def summary(self, name: str) -> tuple[float, float] | None:
        """(max, mean) of gauge ``name`` over the samples, or None when never seen."""
        values = [s[name] for s in self.scrapes if name in s]
        if not values:
            return None
        return max(values), sum(values) / len(values)


@dataclass(frozen=True)
class MetricDelta:
    """What changed in one family over the run."""

    name: str
    type: str
    delta: float | None = None
    """Counter: increase. Histogram: number of observations added."""
    mean: float | None = None
    """Histogram: mean of the observations added (delta sum / delta count)."""
    p50: float | None = None
    p95: float | None = None
    before: float | None = None
    after: float | None = None
    sampled_max: float | None = None
    sampled_mean: float | None = None
    samples: int = 0
    """Gauge: how many in-run scrapes saw it."""
    breakdown: Mapping[str, float] = field(default_factory=dict)
    """Counter: increase per label set (``err=validation``), when the family has labels."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form without empty fields."""
        out: dict[str, Any] = {"name": self.name, "type": self.type}
        for key in ("delta", "mean", "p50", "p95", "before", "after", "sampled_max", "sampled_mean"):
            value = getattr(self, key)
            if value is not None:
                out[key] = value
        if self.type == "gauge":
            out["samples"] = self.samples
        if self.breakdown:
            out["breakdown"] = dict(self.breakdown)
        return out


def _label_text(labels: LabelSet) -> str:
    return ",".join(f"{k}={v}" for k, v in labels) or "-"


def _sum(family: Family | None, suffix: str = "") -> float:
    if family is None:
        return 0.0
    return sum(v for (name, _), v in family.samples.items() if name == family.name + suffix)


def _counter_delta(name: str, before: Family | None, after: Family) -> MetricDelta:
    def per_labels(fam: Family | None) -> dict[LabelSet, float]:
        out: dict[LabelSet, float] = defaultdict(float)
        if fam is not None:
            for (sample, labels), value in fam.samples.items():
                if sample in (fam.name, fam.name + "_total"):
                    out[labels] += value
        return out

    b, a = per_labels(before), per_labels(after)
    # A counter that went down was reset (pod restart): count from zero, as PromQL's increase() does.
    deltas = {
        labels: (a[labels] - b.get(labels, 0.0)) if a[labels] >= b.get(labels, 0.0) else a[labels] for labels in a
    }
    breakdown = {_label_text(k): v for k, v in sorted(deltas.items()) if k and v}
    return MetricDelta(name, "counter", delta=sum(deltas.values()), breakdown=breakdown)


def _buckets(family: Family | None) -> dict[float, float]:
    out: dict[float, float] = defaultdict(float)
    if family is None:
        return out
    for (sample, labels), value in family.samples.items():
        if sample == family.name + "_bucket":
            le = dict(labels).get("le")
            if le is not None:
                out[float(le)] += value
    return out


def histogram_quantile(q: float, buckets: Mapping[float, float]) -> float | None:
    """Quantile ``q`` from cumulative bucket counts ``{upper bound: count}`` (PromQL's method).

    Linear interpolation inside the bucket holding the rank; the lowest bucket starts at 0 (or
    at its bound when negative); a rank in the ``+Inf`` bucket gives the highest finite bound.
    """
    if not buckets:
        return None
    bounds = sorted(buckets)
    total = buckets[bounds[-1]]
    if total <= 0:
        return None
    rank = q * total
    prev_bound, prev_count = 0.0, 0.0
    for bound in bounds:
        count = buckets[bound]
        if count >= rank:
            if math.isinf(bound):
                finite = [b for b in bounds if not math.isinf(b)]
                return finite[-1] if finite else None
            lower = prev_bound if bound > 0 else bound
            if count == prev_count:
                return bound
            return lower + (bound - lower) * (rank - prev_count) / (count - prev_count)
        prev_bound, prev_count = bound, count
    return bounds[-1]


def _histogram_delta(name: str, before: Family | None, after: Family) -> MetricDelta:
    count = _sum(after, "_count") - _sum(before, "_count")
    total = _sum(after, "_sum") - _sum(before, "_sum")
    b, a = _buckets(before), _buckets(after)
    delta_buckets = {le: a[le] - b.get(le, 0.0) for le in a}
    return MetricDelta(
        name,
        "histogram",
        delta=count,
        mean=(total / count) if count > 0 else None,
        p50=histogram_quantile(0.5, delta_buckets) if count > 0 else None,
        p95=histogram_quantile(0.95, delta_buckets) if count > 0 else None,
    )


def deltas(before: Snapshot, after: Snapshot, during: GaugeSamples | None = None) -> list[MetricDelta]:
    """Per-family deltas from ``before`` to ``after``; gauges with their in-run samples."""
    rows: list[MetricDelta] = []
    for name, fam in after.families.items():
        previous = before.families.get(name)
        if fam.type == "counter":
            rows.append(_counter_delta(name, previous, fam))
        elif fam.type == "histogram":
            rows.append(_histogram_delta(name, previous, fam))
        elif fam.type == "gauge":
            summary = during.summary(name) if during else None
            rows.append(
                MetricDelta(
                    name,
                    "gauge",
                    before=_sum(previous) if previous else None,
                    after=_sum(fam),
                    sampled_max=summary[0] if summary else None,
                    sampled_mean=summary[1] if summary else None,
                    samples=len([s for s in during.scrapes if name in s]) if during else 0,
                )
            )
    return sorted(rows, key=lambda r: (_ORDER.get(r.name, len(_ORDER)), r.name))


def interesting(rows: Iterable[MetricDelta]) -> list[MetricDelta]:
    """Rows worth showing: preferred families, and any other that changed."""
    return [r for r in rows if r.name in _ORDER or (r.delta not in (None, 0.0)) or (r.sampled_max not in (None, 0.0))]


def by_name(rows: Sequence[MetricDelta]) -> dict[str, MetricDelta]:
    """Rows keyed by family name."""
    return {r.name: r for r in rows}
