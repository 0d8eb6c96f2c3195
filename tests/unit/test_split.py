"""The split arithmetic: declared percent -> replica counts, as plain functions."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from components.split import SplitError, canary_replicas_for, plan_split, smallest_fitting_total


@pytest.mark.parametrize(
    ("percent", "total", "stable", "canary"),
    [(50, 2, 1, 1), (10, 10, 9, 1), (25, 4, 3, 1), (0, 3, 3, 0), (100, 3, 0, 3), (1, 2, 1, 1), (99, 2, 1, 1)],
)
def test_plan_gives_expected_replicas(percent: float, total: int, stable: int, canary: int) -> None:
    plan = plan_split(percent, total, tolerance=100)
    assert (plan.stable_replicas, plan.canary_replicas) == (stable, canary)


def test_zero_percent_turns_the_canary_off_and_hundred_turns_stable_off() -> None:
    assert plan_split(0, 4, 0).canary_replicas == 0
    assert plan_split(100, 4, 0).stable_replicas == 0


def test_split_outside_tolerance_names_the_smallest_total_that_fits() -> None:
    with pytest.raises(SplitError) as err:
        plan_split(10, 2, tolerance=5)
    message = str(err.value)
    assert "50% canary (1 of 2)" in message
    assert "smallest replica total that fits is 7" in message
    assert smallest_fitting_total(10, 5) == 7


def test_smallest_fitting_total_is_really_the_smallest() -> None:
    # 1/7 = 14.29% is within 5 points of 10%; 1/6 = 16.7% is not.
    assert plan_split(10, 7, 5).canary_replicas == 1
    with pytest.raises(SplitError):
        plan_split(10, 6, 5)


def test_single_replica_cannot_hold_both_variants() -> None:
    with pytest.raises(SplitError, match="needs replicas on both sides"):
        plan_split(50, 1, 5)


def test_unreachable_split_says_to_raise_the_tolerance() -> None:
    with pytest.raises(SplitError, match="raise the tolerance"):
        plan_split(0.01, 2, tolerance=0)


def test_canary_replicas_for_rejects_empty_deployments() -> None:
    with pytest.raises(ValueError):
        canary_replicas_for(50, 0)


@given(
    percent=st.floats(min_value=0, max_value=100, allow_nan=False),
    total=st.integers(min_value=1, max_value=200),
    tolerance=st.floats(min_value=0, max_value=50, allow_nan=False),
)
def test_plan_is_within_tolerance_or_a_clear_error(percent: float, total: int, tolerance: float) -> None:
    try:
        plan = plan_split(percent, total, tolerance)
    except SplitError as err:
        assert "tolerance" in str(err) or "both sides" in str(err)
        return
    assert plan.stable_replicas >= 0 and plan.canary_replicas >= 0
    assert plan.total == total
    assert plan.deviation <= tolerance + 1e-9
    if 0 < percent < 100:
        assert plan.stable_replicas >= 1 and plan.canary_replicas >= 1


@given(
    percent=st.floats(min_value=0, max_value=100, allow_nan=False),
    tolerance=st.floats(min_value=0.5, max_value=50, allow_nan=False),
)
def test_suggested_total_always_fits(percent: float, tolerance: float) -> None:
    total = smallest_fitting_total(percent, tolerance)
    if total is None:
        return
    plan = plan_split(percent, total, tolerance)
    assert plan.deviation <= tolerance + 1e-9
    if total > 2:
        with pytest.raises(SplitError):
            plan_split(percent, total - 1, tolerance)
