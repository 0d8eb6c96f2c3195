"""Parsing TGI/vLLM exposition text and the before/after deltas (literal texts, no server)."""

from __future__ import annotations

import pytest

from analysis.metrics import GaugeSamples, MetricsParseError, by_name, deltas, histogram_quantile, parse

BEFORE = """\
# TYPE tgi_request_count counter
tgi_request_count 10
# TYPE tgi_request_failure counter
tgi_request_failure{err="validation"} 1
# TYPE tgi_queue_size gauge
tgi_queue_size 0
# TYPE tgi_request_duration histogram
tgi_request_duration_bucket{le="0.1"} 4
tgi_request_duration_bucket{le="0.5"} 9
tgi_request_duration_bucket{le="+Inf"} 10
tgi_request_duration_sum 2.0
tgi_request_duration_count 10
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 5
"""

AFTER = """\
# TYPE tgi_request_count counter
tgi_request_count 110
# TYPE tgi_request_failure counter
tgi_request_failure{err="validation"} 1
tgi_request_failure{err="overloaded"} 7
# TYPE tgi_queue_size gauge
tgi_queue_size 0
# TYPE tgi_request_duration histogram
tgi_request_duration_bucket{le="0.1"} 54
tgi_request_duration_bucket{le="0.5"} 109
tgi_request_duration_bucket{le="+Inf"} 110
tgi_request_duration_sum 22.0
tgi_request_duration_count 110
# TYPE process_cpu_seconds_total counter
process_cpu_seconds_total 9
"""


def test_deltas_of_tgi_counters_histograms_and_sampled_gauges() -> None:
    during = GaugeSamples()
    for size in (3, 5, 1):
        during.add(parse(f"# TYPE tgi_queue_size gauge\ntgi_queue_size {size}\n"))
    rows = by_name(deltas(parse(BEFORE), parse(AFTER), during))
    assert rows["tgi_request_count"].delta == 100
    failure = rows["tgi_request_failure"]
    assert failure.delta == 7 and failure.breakdown == {"err=overloaded": 7}
    duration = rows["tgi_request_duration"]
    assert duration.delta == 100 and duration.mean == pytest.approx(0.2)
    # 50 of the 100 new observations are <= 0.1 s, so the median is the top of that bucket.
    assert duration.p50 == pytest.approx(0.1)
    # rank 95: in (0.1, 0.5], 45 of 50 observations into it -> 0.1 + 0.4 * 45/50
    assert duration.p95 == pytest.approx(0.46)
    queue = rows["tgi_queue_size"]
    assert (queue.sampled_max, queue.sampled_mean, queue.samples) == (5, 3, 3)
    assert "process_cpu_seconds" not in rows  # only engine families are reported


def test_a_counter_that_went_down_was_reset_and_counts_from_zero() -> None:
    rows = by_name(deltas(parse(AFTER), parse(BEFORE)))
    assert rows["tgi_request_count"].delta == 10


def test_vllm_families_with_total_suffix_and_colons() -> None:
    text_before = '# TYPE vllm:request_success_total counter\nvllm:request_success_total{model_name="m"} 2.0\n'
    text_after = (
        '# TYPE vllm:request_success_total counter\nvllm:request_success_total{model_name="m"} 12.0\n'
        'vllm:request_success_created{model_name="m"} 1.7e9\n'
    )
    rows = by_name(deltas(parse(text_before), parse(text_after)))
    assert rows["vllm:request_success"].delta == 10
    assert not any(name.endswith("_created") for name in rows)


@pytest.mark.parametrize(
    ("q", "buckets", "expected"),
    [
        (0.5, {0.1: 0.0, 0.2: 10.0, float("inf"): 10.0}, 0.15),
        (0.99, {0.1: 5.0, float("inf"): 10.0}, 0.1),
        (0.5, {}, None),
        (0.5, {0.1: 0.0, float("inf"): 0.0}, None),
    ],
)
def test_histogram_quantile_interpolates_like_promql(
    q: float, buckets: dict[float, float], expected: float | None
) -> None:
    assert histogram_quantile(q, buckets) == (pytest.approx(expected) if expected is not None else None)


def test_a_body_that_is_not_the_exposition_format_raises() -> None:
    with pytest.raises(MetricsParseError, match="not the Prometheus text format"):
        parse("<html>tgi_request_count{ 1</html>\n")
