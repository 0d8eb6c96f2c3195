"""Fixtures of the policy tests; the helpers that run the pack are in ``tests.policy.pack_runner``."""

from __future__ import annotations

import pytest

from tests.harness import RecordingMocks, Registration


@pytest.fixture
def registrations(pulumi_mocks: RecordingMocks) -> list[Registration]:
    """What the monitor received for each resource (options and property dependencies are not in
    ``RecordingMocks.resources``)."""
    return pulumi_mocks.registrations
