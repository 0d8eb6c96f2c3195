"""The sequential design: per-look levels, stages, early stopping (simulated records, no server)."""

from __future__ import annotations

import pytest

from analysis.sequential import look_confidence, simulate_prefixes, stage_sizes
from analysis.thresholds import Thresholds
from analysis.verdict import Verdict
from tests.analysis.test_verdict import records


def test_bonferroni_splits_the_error_over_the_looks() -> None:
    assert look_confidence(0.95, 1) == pytest.approx(0.95)
    assert look_confidence(0.95, 4) == pytest.approx(0.9875)
    with pytest.raises(ValueError, match="looks must be 1..10"):
        look_confidence(0.95, 11)


@pytest.mark.parametrize(("requests", "looks", "sizes"), [(400, 4, [100] * 4), (10, 3, [4, 3, 3]), (5, 1, [5])])
def test_stages_split_the_requests_evenly(requests: int, looks: int, sizes: list[int]) -> None:
    assert stage_sizes(requests, looks) == sizes
    assert sum(stage_sizes(requests, looks)) == requests


def test_more_looks_than_requests_is_refused() -> None:
    with pytest.raises(ValueError, match="need 1 <= looks <= requests"):
        stage_sizes(3, 4)


def test_a_clearly_slower_canary_is_rolled_back_at_the_first_look() -> None:
    comparison, history = simulate_prefixes(
        records("stable", 400, seed=1),
        records("canary", 400, slower=1.6, seed=2),
        Thresholds(),
        looks=4,
        resamples=300,
    )
    assert [look.look for look in history] == [1]
    assert history[0].n_stable == 100 and history[0].verdict is Verdict.ROLLBACK
    assert comparison.verdict is Verdict.ROLLBACK


def test_an_equal_canary_is_promoted_only_when_every_row_has_enough_evidence() -> None:
    # Zero errors pass the 2-point increase margin at 98.75 % only from n = 306 on: the last look.
    comparison, history = simulate_prefixes(
        records("stable", 400, seed=1), records("canary", 400, seed=2), Thresholds(), looks=4, resamples=300
    )
    assert [look.verdict for look in history] == [Verdict.HOLD] * 3 + [Verdict.PROMOTE]
    assert all("error rate increase" in " ".join(look.reasons) for look in history[:3])
    assert comparison.verdict is Verdict.PROMOTE
