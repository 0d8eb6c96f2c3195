"""Fixtures of the smoke-package tests: real local TGI fakes, the split proxy, MLServer, the CLI runner.

The servers themselves live in ``tests/smoke/servers.py``; every fixture here stops what it
started.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.loopback import cli_runner
from tests.smoke.servers import (
    BASE_ANSWERS,
    BASE_ID,
    SHIPPED_CASES,
    SMALL_ANSWERS,
    SMALL_ID,
    RunningServer,
    SplitProxy,
    free_port,
    start_tgi,
    start_v2,
    stop_process,
    wait_ready,
    write_mnist_model_repository,
)

MLSERVER_START_LIMIT_S = 90


def pytest_configure(config: pytest.Config) -> None:
    """Register this directory's markers (CI runs with --strict-markers)."""
    config.addinivalue_line("markers", "slow: starts MLServer in a subprocess (a few seconds)")


@pytest.fixture
def tgi_server() -> Iterator[Callable[..., RunningServer]]:
    """Factory: ``tgi_server(model_id, answers=..., generate_status=..., unhealthy_first=...)``."""
    stops: list[Callable[[], None]] = []

    def start(model_id: str, **behaviour: Any) -> RunningServer:
        return start_tgi(model_id, stops, **behaviour)

    yield start
    for stop in reversed(stops):
        stop()


@pytest.fixture
def v2_server() -> Iterator[Callable[..., RunningServer]]:
    """Factory: ``v2_server({model: outputs})``, a fake ModelMesh REST proxy."""
    stops: list[Callable[[], None]] = []

    def start(outputs: dict[str, list[dict[str, Any]]]) -> RunningServer:
        return start_v2(outputs, stops)

    yield start
    for stop in reversed(stops):
        stop()


@pytest.fixture
def stable_and_canary(tgi_server: Callable[..., RunningServer]) -> tuple[RunningServer, RunningServer]:
    """flan-t5-small (stable) and flan-t5-base (canary) fakes answering as in the Datashim tutorial."""
    return tgi_server(SMALL_ID, answers=dict(SMALL_ANSWERS)), tgi_server(BASE_ID, answers=dict(BASE_ANSWERS))


@pytest.fixture
def split_proxy() -> Iterator[Callable[..., SplitProxy]]:
    """Factory: ``split_proxy(stable_server, canary_server, share=0.1, seed=7)``."""
    proxies: list[SplitProxy] = []

    def start(stable: RunningServer, canary: RunningServer, share: float, seed: int = 7) -> SplitProxy:
        proxy = SplitProxy(stable.address, canary.address, share, seed)
        proxies.append(proxy)
        return proxy

    yield start
    for proxy in proxies:
        proxy.close()


@pytest.fixture
def run_cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``smoke.cli.main(argv)`` in-process; return (exit code, stdout, stderr)."""
    from smoke.cli import main

    return cli_runner(main, capsys)


@pytest.fixture
def shipped_cases() -> Path:
    """The case files shipped with the smoke package."""
    return SHIPPED_CASES


@pytest.fixture
def free_port_factory() -> Callable[[], int]:
    """Factory returning free local ports."""
    return free_port


@pytest.fixture(scope="session")
def mlserver(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningServer]:
    """MLServer serving an SVC trained on scikit-learn's digits set as ``mnist-svm`` (V2 REST)."""
    executable = shutil.which("mlserver", path=str(Path(sys.executable).parent)) or shutil.which("mlserver")
    if executable is None:
        pytest.fail("mlserver is not installed: it is pinned in requirements-dev.txt (make venv)")
    root = tmp_path_factory.mktemp("mlserver")
    http_port = free_port()
    write_mnist_model_repository(root, http_port)
    log_path = root / "mlserver.log"
    with log_path.open("w") as log:
        process = subprocess.Popen([executable, "start", str(root)], stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{http_port}"
    try:
        wait_ready(f"{url}/v2/models/mnist-svm/ready", process, log_path, MLSERVER_START_LIMIT_S)
        yield RunningServer(url, ("127.0.0.1", http_port))
    finally:
        stop_process(process)
