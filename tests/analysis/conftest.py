"""Fixtures of the analysis tests: streaming TGI and OpenAI-compatible servers on loopback, the CLI runner."""

from __future__ import annotations

import contextlib
import io
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from tests.analysis.servers import DEFAULT_ANSWER, ServerProcess, start_tgi_stream
from tests.loopback import cli_runner
from tests.smoke.servers import RunningServer
from tests.vllm_server import RunningVllm, start_vllm

SMALL_ID = "/mnt/datasets/model-weights/flan-t5-small/0fc9ddf78a1e988dac52e2dac162b0ede4fd74ab"
BASE_ID = "/mnt/datasets/model-weights/flan-t5-base/7bcac572ce56db69c1ea7c8af255c5d7c9672fc2"


@pytest.fixture
def tgi_stream() -> Iterator[Callable[..., RunningServer]]:
    """Factory: ``tgi_stream(model_id, ttft_s=..., token_s=..., error_rate=..., error_mode=...)``."""
    stops: list[Callable[[], None]] = []

    def start(model_id: str = SMALL_ID, **behaviour: Any) -> RunningServer:
        return start_tgi_stream(model_id, stops, **behaviour)

    yield start
    for stop in reversed(stops):
        stop()


@pytest.fixture
def openai_stream() -> Iterator[Callable[..., RunningVllm]]:
    """Factory: ``openai_stream(served_name, ttft_s=..., token_s=...)``: vLLM's OpenAI-compatible server
    (:mod:`tests.vllm_server`) answering the analysis' default answer."""
    stops: list[Callable[[], None]] = []

    def start(served_name: str = "google/flan-t5-base", **behaviour: Any) -> RunningVllm:
        root = f"/mnt/datasets/model-weights/{served_name.rsplit('/', 1)[-1]}/{'0' * 40}"
        return start_vllm(served_name, root, stops, **{"default_answer": DEFAULT_ANSWER, **behaviour})

    yield start
    for stop in reversed(stops):
        stop()


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``analysis.cli.main(argv)`` in-process; return (exit code, stdout, stderr)."""
    from analysis.cli import main

    return cli_runner(main, capsys)


@pytest.fixture
def server_process() -> Iterator[Callable[..., ServerProcess]]:
    """Factory: ``server_process(tgi_spec(...), openai_spec(...))``; stopped after the test."""
    started: list[ServerProcess] = []

    def start(*specs: dict[str, Any]) -> ServerProcess:
        started.append(ServerProcess(list(specs)))
        return started[-1]

    yield start
    for process in started:
        process.close()


def run_main(*argv: str) -> tuple[int, str, str]:
    """Run ``analysis.cli.main`` capturing stdout/stderr without pytest's capsys (for module fixtures)."""
    from analysis.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main(list(argv))
        except SystemExit as exit_:
            code = int(exit_.code or 0)
    return code, out.getvalue(), err.getvalue()
