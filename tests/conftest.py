"""The fixtures every test shares: one way to run Pulumi code under recording mocks.

``pulumi_mocks`` is a fresh runtime per test (:func:`tests.harness.mocked_runtime`);
``run_program(fn)`` runs code in it and ``run_main(config)`` runs ``__main__.py`` with a stack
config, returning what it exports. Helpers without a fixture's lifetime live in ``tests.harness``.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.harness import ROOT, RecordingMocks, is_secret, mocked_runtime, resolve
from tests.harness import run_main as _run_main
from tests.harness import run_program as _run_program

if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


@pytest.fixture
def pulumi_mocks() -> Iterator[RecordingMocks]:
    """A fresh Pulumi runtime with recording mocks (and the options of every resource)."""
    with mocked_runtime() as mocks:
        yield mocks


@pytest.fixture
def run_program(pulumi_mocks: RecordingMocks) -> Callable[[Callable[[], Any]], Any]:  # noqa: ARG001 - needs the mocks set up
    """Run ``fn`` as a Pulumi program under the mocks and wait for every registration."""
    return _run_program


@pytest.fixture
def run_main(pulumi_mocks: RecordingMocks) -> Callable[[dict[str, Any]], dict[str, Any]]:  # noqa: ARG001 - needs the mocks set up
    """Run ``__main__.py`` with a stack config (``llm-ab:key`` -> value) under the mocks; the exports."""
    return _run_main


@pytest.fixture(name="resolve")
def resolve_fixture(pulumi_mocks: RecordingMocks) -> Callable[[Any], Any]:  # noqa: ARG001 - needs the mocks set up
    """Resolve an Output (or a plain value, or a dict/list of them) to its value after a run."""
    return resolve


@pytest.fixture(name="is_secret")
def is_secret_fixture(pulumi_mocks: RecordingMocks) -> Callable[[Any], bool]:  # noqa: ARG001 - needs the mocks set up
    """Whether an Output is marked secret."""
    return is_secret
