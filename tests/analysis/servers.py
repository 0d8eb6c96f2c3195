"""The streaming TGI server of the analysis tests (``/generate_stream``); vLLM's OpenAI-compatible one is
:mod:`tests.vllm_server`, shared with the smoke tests.

It listens on 127.0.0.1 (port chosen by the OS), streams one SSE event per token with a
configurable time to first token (log-normal around a median) and per-token delay, injects
errors of a chosen kind at a chosen rate (seeded), and serves ``/metrics`` the way TGI's Rust
exporter writes it (counters without ``_total``; ``tgi_request_failure{err=...}``; histograms
with ``le`` buckets).

Every server runs in daemon threads and is stopped by the fixture that started it; a handler
never sleeps longer than ``MAX_SLEEP_S``.
"""

from __future__ import annotations

import contextlib
import json
import math
import random
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.loopback import LoopbackHandler, start_http
from tests.smoke.servers import REPO_ROOT, RunningServer

MAX_SLEEP_S = 3.0
ERROR_MODES = ("http_500", "http_424", "http_429", "stream_error", "drop", "hang")
DEFAULT_ANSWER = "a generated answer with eight tokens in it"
LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
TOKEN_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128)


@dataclass
class StreamBehaviour:
    """How a fake server answers; a test may change it between runs."""

    model_id: str
    ttft_s: float = 0.010
    """Median time to first token."""
    ttft_sigma: float = 0.0
    """Log-normal spread of the time to first token (0: constant)."""
    token_s: float = 0.002
    """Delay between tokens."""
    answers: dict[str, str] = field(default_factory=dict)
    default_answer: str = DEFAULT_ANSWER
    error_rate: float = 0.0
    error_mode: str = "http_500"
    seed: int = 0
    served: int = 0
    injected: dict[str, int] = field(default_factory=dict)
    """Errors injected so far, by mode."""

    def __post_init__(self) -> None:
        if self.error_mode not in ERROR_MODES:
            raise ValueError(f"error_mode must be one of {ERROR_MODES}")
        self.rng = random.Random(self.seed)
        self.lock = threading.Lock()

    def draw(self) -> tuple[float, str | None]:
        """(time to first token, injected error mode or None) for the next request."""
        with self.lock:
            self.served += 1
            ttft = self.ttft_s * math.exp(self.ttft_sigma * self.rng.gauss(0, 1)) if self.ttft_sigma else self.ttft_s
            error = self.error_mode if self.rng.random() < self.error_rate else None
            if error:
                self.injected[error] = self.injected.get(error, 0) + 1
        return min(ttft, MAX_SLEEP_S), error

    def tokens_for(self, prompt: str, max_new_tokens: int) -> tuple[list[str], str]:
        """The tokens to stream (words with their leading space) and the finish reason."""
        words = self.answers.get(prompt, self.default_answer).split()
        tokens = [w if i == 0 else " " + w for i, w in enumerate(words)][:max_new_tokens]
        return tokens, ("length" if len(words) > max_new_tokens else "eos_token")


class _Histogram:
    """A TGI-style histogram: cumulative buckets, sum and count."""

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.total = 0.0
        self.n = 0

    def observe(self, value: float) -> None:
        for i, bound in enumerate(self.bounds):
            if value <= bound:
                self.counts[i] += 1
        self.total += value
        self.n += 1

    def lines(self, name: str) -> list[str]:
        out = [f"# TYPE {name} histogram"]
        out += [f'{name}_bucket{{le="{b:g}"}} {c}' for b, c in zip(self.bounds, self.counts, strict=True)]
        out += [f'{name}_bucket{{le="+Inf"}} {self.n}', f"{name}_sum {self.total!r}", f"{name}_count {self.n}"]
        return out


class TgiMetrics:
    """The TGI router's Prometheus families this fake keeps."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.request_count = 0
        self.request_success = 0
        self.failures: dict[str, int] = {}
        self.queue_size = 0
        self.batch_current_size = 0
        self.duration = _Histogram(LATENCY_BUCKETS)
        self.queue_duration = _Histogram(LATENCY_BUCKETS)
        self.mean_time_per_token = _Histogram(LATENCY_BUCKETS)
        self.generated_tokens = _Histogram(TOKEN_BUCKETS)
        self.input_length = _Histogram(TOKEN_BUCKETS)

    def text(self) -> str:
        with self.lock:
            lines = ["# TYPE tgi_request_count counter", f"tgi_request_count {self.request_count}"]
            lines += ["# TYPE tgi_request_success counter", f"tgi_request_success {self.request_success}"]
            if self.failures:
                lines.append("# TYPE tgi_request_failure counter")
                lines += [f'tgi_request_failure{{err="{k}"}} {v}' for k, v in sorted(self.failures.items())]
            lines += ["# TYPE tgi_queue_size gauge", f"tgi_queue_size {self.queue_size}"]
            lines += ["# TYPE tgi_batch_current_size gauge", f"tgi_batch_current_size {self.batch_current_size}"]
            lines += self.duration.lines("tgi_request_duration")
            lines += self.queue_duration.lines("tgi_request_queue_duration")
            lines += self.mean_time_per_token.lines("tgi_request_mean_time_per_token_duration")
            lines += self.generated_tokens.lines("tgi_request_generated_tokens")
            lines += self.input_length.lines("tgi_request_input_length")
        return "\n".join(lines) + "\n"


class _Streaming(LoopbackHandler):
    """Shared plumbing: chunked SSE writing, JSON answers, TCP_NODELAY."""

    behaviour: StreamBehaviour

    def setup(self) -> None:
        super().setup()
        # Without it, Nagle's algorithm holds small token writes back for the peer's delayed ACK.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()

    def _chunk(self, data: bytes) -> None:
        self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")

    def _end_stream(self) -> None:
        self.wfile.write(b"0\r\n\r\n")

    def _drop(self) -> None:
        """Close the connection mid-stream without the terminating chunk."""
        self.close_connection = True
        with contextlib.suppress(OSError):
            self.request.shutdown(socket.SHUT_RDWR)

    def _read_json(self) -> Any:
        length = int(self.headers.get("Content-Length", "0"))
        try:
            return json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            return None


class _TgiHandler(_Streaming):
    """``/generate_stream``, ``/health``, ``/info``, ``/metrics`` as TGI serves them."""

    stats: TgiMetrics

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        if self.path == "/health":
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif self.path == "/info":
            self.send_json(200, {"model_id": self.behaviour.model_id, "version": "3.3.7", "max_input_tokens": 512})
        elif self.path == "/metrics":
            self.send_body(200, self.stats.text().encode(), "text/plain; version=0.0.4")
        elif self.path == "/_injected":
            self.send_json(200, {"served": self.behaviour.served, "injected": self.behaviour.injected})
        else:
            self.send_json(404, {"error": "not found", "error_type": "not_found"})

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        request = self._read_json()
        if (
            self.path != "/generate_stream"
            or not isinstance(request, dict)
            or not isinstance(request.get("inputs"), str)
        ):
            self.send_json(422, {"error": "expected {inputs: str} on /generate_stream", "error_type": "validation"})
            return
        parameters = request.get("parameters") or {}
        max_new = int(parameters.get("max_new_tokens") or 20)
        start = time.perf_counter()
        ttft, error = self.behaviour.draw()
        with self.stats.lock:
            self.stats.request_count += 1
        if error in ("http_500", "http_424", "http_429"):
            status = {"http_500": 500, "http_424": 424, "http_429": 429}[error]
            err = "overloaded" if status == 429 else "generation"
            with self.stats.lock:
                self.stats.failures[err] = self.stats.failures.get(err, 0) + 1
            self.send_json(status, {"error": "Request failed during generation", "error_type": err})
            return
        tokens, finish = self.behaviour.tokens_for(request["inputs"], max_new)
        with self.stats.lock:
            self.stats.queue_size += 1
        time.sleep(min(ttft * 0.2, MAX_SLEEP_S))
        with self.stats.lock:
            self.stats.queue_size -= 1
            self.stats.batch_current_size += 1
            self.stats.queue_duration.observe(ttft * 0.2)
        try:
            self._stream_tokens(request, tokens, finish, ttft * 0.8, error, start)
        finally:
            with self.stats.lock:
                self.stats.batch_current_size -= 1

    def _stream_tokens(
        self, request: dict[str, Any], tokens: list[str], finish: str, wait: float, error: str | None, start: float
    ) -> None:
        time.sleep(min(wait, MAX_SLEEP_S))
        if error == "hang":
            time.sleep(MAX_SLEEP_S)
            self._drop()
            return
        self._start_stream()
        details = bool((request.get("parameters") or {}).get("details"))
        input_length = len(request["inputs"].split())
        for i, text in enumerate(tokens):
            if i:
                time.sleep(self.behaviour.token_s)
            if error in ("stream_error", "drop") and i == len(tokens) // 2:
                if error == "drop":
                    self._drop()
                    return
                with self.stats.lock:
                    self.stats.failures["generation"] = self.stats.failures.get("generation", 0) + 1
                payload = {"error": "Request failed during generation: CUDA out of memory", "error_type": "generation"}
                self._chunk(b"data:" + json.dumps(payload).encode() + b"\n\n")
                self._end_stream()
                return
            last = i == len(tokens) - 1
            event: dict[str, Any] = {
                "index": i + 1,
                "token": {"id": 100 + i, "text": text, "logprob": -0.1, "special": False},
                "generated_text": "".join(tokens) if last else None,
                "details": (
                    {
                        "finish_reason": finish,
                        "generated_tokens": len(tokens),
                        "seed": None,
                        "input_length": input_length,
                    }
                    if last and details
                    else None
                ),
                "top_tokens": None,
            }
            self._chunk(b"data:" + json.dumps(event).encode() + b"\n\n")
            if i == 0:
                self._chunk(b":\n\n")  # a keep-alive comment, as axum sends when idle
        self._end_stream()
        total = time.perf_counter() - start
        with self.stats.lock:
            self.stats.request_success += 1
            self.stats.duration.observe(total)
            self.stats.generated_tokens.observe(len(tokens))
            self.stats.input_length.observe(input_length)
            self.stats.mean_time_per_token.observe(total / max(1, len(tokens)))


def start_tgi_stream(model_id: str, stops: list[Callable[[], None]], **behaviour: Any) -> RunningServer:
    """Start a streaming TGI fake; ``server.behaviour`` is its :class:`StreamBehaviour`, ``.stats`` its metrics."""
    state = StreamBehaviour(model_id=model_id, **behaviour)
    stats = TgiMetrics()
    handler = type("Handler", (_TgiHandler,), {"behaviour": state, "stats": stats})
    server = start_http(handler, stops)
    host, port = server.server_address[:2]
    running = RunningServer(f"http://{host}:{port}", (str(host), int(port)), state)
    running.stats = stats  # type: ignore[attr-defined]
    return running


# -- out-of-process servers ----------------------------------------------------------------------
#
# Latency figures measured by a client that shares a process (and the GIL) with the servers are
# dominated by that contention, so the end-to-end tests start their servers in a child process:
# ``python -m tests.analysis.servers '<json spec>'`` prints one URL per server, serves until its
# standard input closes (so it never outlives the test process), and answers ``GET /_injected``
# with the errors it injected so far.


def _serve_spec(spec: list[dict[str, Any]]) -> None:
    stops: list[Callable[[], None]] = []
    for item in spec:
        kind = item.pop("kind")
        model = item.pop("model_id")
        if kind != "tgi":
            raise ValueError(f"unknown server kind {kind!r}: only tgi runs out of process")
        print(start_tgi_stream(model, stops, **item).url, flush=True)
    sys.stdin.read()  # until the parent closes our stdin (or dies)
    for stop in reversed(stops):
        stop()


class ServerProcess:
    """Streaming servers in a child process (so the client's timings do not share the GIL with them)."""

    def __init__(self, specs: list[dict[str, Any]]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.analysis.servers", json.dumps(specs)],
            cwd=REPO_ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        self.urls = [self.process.stdout.readline().strip() for _ in specs]
        if not all(url.startswith("http://127.0.0.1:") for url in self.urls):
            self.close()
            raise RuntimeError(
                f"server process did not start: {self.process.stderr.read() if self.process.stderr else ''}"
            )

    def injected(self, url: str) -> dict[str, Any]:
        """What the server at ``url`` served and injected."""
        return dict(httpx.get(url + "/_injected", timeout=5).json())

    def close(self) -> None:
        """Close its stdin (it then stops its servers and exits); kill if it does not."""
        if self.process.stdin:
            self.process.stdin.close()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


def tgi_spec(model_id: str, **behaviour: Any) -> dict[str, Any]:
    """Spec of one TGI server for :class:`ServerProcess`."""
    return {"kind": "tgi", "model_id": model_id, **behaviour}


if __name__ == "__main__":
    _serve_spec(json.loads(sys.argv[1]))
