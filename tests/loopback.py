"""What the tests' fake servers and CLI runs share: a threaded HTTP server on 127.0.0.1 and an
in-process run of a package's ``main(argv)``."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest


class LoopbackServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 256  # the default backlog of 5 makes concurrent connects wait for SYN retries


class LoopbackHandler(BaseHTTPRequestHandler):
    """The base of the fake servers' handlers: HTTP/1.1 keep-alive with idle connections ending (so no
    handler thread lives long), quiet logs, and whole answers with their length."""

    protocol_version = "HTTP/1.1"
    timeout = 5

    def log_message(self, *_: Any) -> None:
        """Keep test output quiet."""

    def send_body(self, status: int, body: bytes = b"", content_type: str | None = None,
                  headers: Mapping[str, str] | None = None) -> None:
        self.send_response(status)
        if content_type is not None:
            self.send_header("Content-Type", content_type)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def send_json(self, status: int, payload: Any = None, headers: Mapping[str, str] | None = None) -> None:
        """``payload`` as JSON; no payload: an empty body without a content type."""
        if payload is None:
            self.send_body(status, headers=headers)
        else:
            self.send_body(status, json.dumps(payload).encode(), "application/json", headers)


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



