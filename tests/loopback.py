"""What the tests' fake servers and CLI runs share: a threaded HTTP server on 127.0.0.1 and an
in-process run of a package's ``main(argv)``."""

from __future__ import annotations

import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 makes concurrent connects wait for SYN retries


def start_http(handler: type[BaseHTTPRequestHandler], stops: list[Callable[[], None]]) -> LoopbackServer:
    """Serve ``handler`` on a free port of 127.0.0.1 in a thread; its stop function goes to ``stops``."""
    server = LoopbackServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()

    def stop() -> None:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)

    stops.append(stop)
    return server


def cli_runner(main: Callable[[list[str]], int], capsys: pytest.CaptureFixture[str]
               ) -> Callable[..., tuple[int, str, str]]:
    """``run(*argv)``: ``main(argv)`` in-process; (exit code, stdout, stderr), usage errors included."""

    def run(*argv: str) -> tuple[int, str, str]:
        try:
            code = main(list(argv))
        except SystemExit as exit_:  # argparse usage errors
            code = int(exit_.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run



