"""Ephemeral storage (issue 22, the scanners' finding): every container asks for the node disk its pod's
emptyDirs and logs need, so a 50Gi staging /tmp lands on a node that has it instead of being evicted
mid-download; the whole program's pods are checked in tests/stacks/test_program.py."""

from __future__ import annotations

from fractions import Fraction

import pytest

from components.podspec import LOG_ALLOWANCE, ephemeral_storage, tmp_volume, with_ephemeral_storage
from components.quantity import binary_quantity, quantity_value

SHM = {"name": "shm", "emptyDir": {"medium": "Memory", "sizeLimit": "8Gi"}}


@pytest.mark.parametrize(("value", "text"), [
    (Fraction(50 * 1024 ** 3), "50Gi"), (Fraction(50 * 1024 ** 3 + 256 * 1024 ** 2), "51456Mi"),
    (Fraction(1024), "1Ki"), (Fraction(1500), "1500"), (Fraction(3, 2), "2"), (Fraction(2 * 1024 ** 4), "2Ti"),
])
def test_byte_amounts_are_written_with_the_largest_whole_binary_suffix(value: Fraction, text: str) -> None:
    assert binary_quantity(value) == text


def test_a_sized_scratch_volume_is_requested_and_limited_with_the_log_allowance() -> None:
    assert ephemeral_storage([tmp_volume(size="50Gi")]) == {"requests": {"ephemeral-storage": "51456Mi"},
                                                           "limits": {"ephemeral-storage": "51456Mi"}}
    assert quantity_value(LOG_ALLOWANCE) == 256 * 1024 ** 2


def test_memory_backed_and_non_emptydir_volumes_do_not_count() -> None:
    volumes = [SHM, {"name": "data", "emptyDir": {"sizeLimit": "10Gi"}}, tmp_volume(),
               {"name": "w", "persistentVolumeClaim": {"claimName": "minio-data"}}, {"name": "c", "configMap": {}}]
    assert ephemeral_storage(volumes)["requests"] == {"ephemeral-storage": "11520Mi"}


def test_without_a_sized_disk_emptydir_only_the_allowance_is_requested_and_nothing_limited() -> None:
    assert ephemeral_storage([]) == {"requests": {"ephemeral-storage": LOG_ALLOWANCE}}
    assert ephemeral_storage([SHM]) == {"requests": {"ephemeral-storage": LOG_ALLOWANCE}}
    unbounded = [{"name": "tmp", "emptyDir": {}}, tmp_volume(size="1Gi")]
    assert "limits" not in ephemeral_storage(unbounded)  # an unbounded emptyDir: no limit to derive


def test_cpu_and_memory_are_kept() -> None:
    resources = {"requests": {"cpu": "250m", "memory": "512Mi"}, "limits": {"cpu": "2", "memory": "2Gi"}}
    assert with_ephemeral_storage(resources, [tmp_volume(size="64Mi")]) == {
        "requests": {"cpu": "250m", "memory": "512Mi", "ephemeral-storage": "320Mi"},
        "limits": {"cpu": "2", "memory": "2Gi", "ephemeral-storage": "320Mi"}}
    assert resources["requests"] == {"cpu": "250m", "memory": "512Mi"}  # not mutated
