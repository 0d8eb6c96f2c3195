"""A loopback server that speaks vLLM's OpenAI-compatible protocol (``vllm serve``), for the smoke and
analysis tests: what a client of vLLM sees, not a model.

Faithful to vLLM 0.x where clients can tell: ``/health`` (200, empty body), ``/v1/models`` (the
served name as ``id``, the loaded path as ``root``, ``owned_by: vllm``, ``max_model_len``),
``/v1/completions`` and ``/v1/chat/completions`` with and without ``stream`` (SSE ``data: {json}``
chunks with one space, ``text_completion`` / ``chat.completion.chunk`` objects, a first chat chunk
carrying the role, a usage chunk when ``stream_options.include_usage``, then ``data: [DONE]``),
``/metrics`` (Prometheus text), the error object ``{"object": "error", "message", "type", "param",
"code"}`` for an unknown model (404), a prompt plus ``max_tokens`` over ``max_model_len`` (400) and
a bad request (400), FastAPI's ``{"detail": "Not Found"}`` for any other path (so ``GET /info``, a
TGI route, is a 404), and an error chunk inside a stream when told to fail mid-stream.

For the analysis it also paces a stream like a server (``ttft_s`` before the first token, ``token_s``
between tokens; each chunk written and flushed on its own, ``TCP_NODELAY``) and keeps vLLM's metric
families in a ``prometheus_client`` registry (vLLM itself uses prometheus_client), labelled
``model_name`` with the served name.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from tests.loopback import LoopbackHandler, start_http

LATENCY_BUCKETS = (0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)

DEFAULT_ANSWER = "red, yellow and blue"


@dataclass
class VllmBehaviour:
    """What the fake answers; a test may change it while it runs."""

    served_name: str
    root: str
    max_model_len: int = 2048
    answers: dict[str, str] = field(default_factory=dict)
    """Prompt (or the chat's last user message) -> the greedy answer."""
    default_answer: str = DEFAULT_ANSWER
    unhealthy_first: int = 0
    fail_stream_after: int | None = None
    """Send an error chunk after this many text chunks of a stream."""
    ttft_s: float = 0.0
    """Seconds before the first token of a stream (the prefill)."""
    token_s: float = 0.0
    """Seconds between tokens of a stream (the decode)."""
    requests: list[tuple[str, Any]] = field(default_factory=list)
    """(path, decoded body) of every POST, for the tests to inspect."""

    def __post_init__(self) -> None:
        self.metrics = VllmMetrics()


class VllmMetrics:
    """Some of vLLM's families, as its ``/metrics`` names them."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        labels = ["model_name"]
        self.success = Counter("vllm:request_success", "Finished requests", labels, registry=self.registry)
        self.prompt_tokens = Counter("vllm:prompt_tokens", "Prefilled tokens", labels, registry=self.registry)
        self.generation_tokens = Counter("vllm:generation_tokens", "Generated tokens", labels,
                                         registry=self.registry)
        self.running = Gauge("vllm:num_requests_running", "Running requests", labels, registry=self.registry)
        self.ttft = Histogram("vllm:time_to_first_token_seconds", "TTFT", labels, buckets=LATENCY_BUCKETS,
                              registry=self.registry)
        self.e2e = Histogram("vllm:e2e_request_latency_seconds", "E2E", labels, buckets=LATENCY_BUCKETS,
                             registry=self.registry)


def _error(message: str, kind: str, code: int) -> dict[str, Any]:
    return {"object": "error", "message": message, "type": kind, "param": None, "code": code}


class _VllmHandler(LoopbackHandler):
    behaviour: VllmBehaviour
    lock: threading.Lock

    # -- plumbing ------------------------------------------------------------------------------

    def setup(self) -> None:
        super().setup()
        # Without it, Nagle's algorithm holds small token writes back for the peer's delayed ACK.
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _stream(self, chunks: Iterator[tuple[bool, bytes]], started: float) -> None:
        """Write each chunk as it comes, a token chunk ``ttft_s`` (the first) or ``token_s`` after the last."""
        b = self.behaviour
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream; charset=utf-8")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        first = True
        for is_token, data in chunks:
            if is_token:
                time.sleep(b.ttft_s if first else b.token_s)
                if first:
                    b.metrics.ttft.labels(b.served_name).observe(time.perf_counter() - started)
                first = False
            self.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    # -- routes --------------------------------------------------------------------------------

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        b = self.behaviour
        if self.path == "/health":
            with self.lock:
                starting = b.unhealthy_first > 0
                b.unhealthy_first -= 1 if starting else 0
            self.send_json(503 if starting else 200)
        elif self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{
                "id": b.served_name, "object": "model", "created": int(time.time()), "owned_by": "vllm",
                "root": b.root, "parent": None, "max_model_len": b.max_model_len,
                "permission": [{"id": "modelperm-0", "object": "model_permission", "allow_sampling": True}]}]})
        elif self.path == "/metrics":
            self.send_body(200, generate_latest(b.metrics.registry), "text/plain; version=0.0.4")
        else:
            self.send_json(404, {"detail": "Not Found"})

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        length = int(self.headers.get("Content-Length", "0"))
        try:
            request = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            request = None
        b = self.behaviour
        with self.lock:
            b.requests.append((self.path, request))
        if self.path not in ("/v1/completions", "/v1/chat/completions"):
            self.send_json(404, {"detail": "Not Found"})
            return
        chat = self.path == "/v1/chat/completions"
        prompt = self._prompt(request, chat)
        if prompt is None:
            field_name = "messages" if chat else "prompt"
            self.send_json(400, _error(f"[{{'type': 'missing', 'loc': ('body', '{field_name}')}}]",
                                   "BadRequestError", 400))
            return
        if request.get("model") != b.served_name:
            self.send_json(404, _error(f"The model `{request.get('model')}` does not exist.", "NotFoundError", 404))
            return
        max_tokens = int(request.get("max_tokens") or 16)
        prompt_tokens = len(prompt.split())
        if prompt_tokens + max_tokens > b.max_model_len:
            self.send_json(400, _error(
                f"This model's maximum context length is {b.max_model_len} tokens. However, you requested "
                f"{prompt_tokens + max_tokens} tokens ({prompt_tokens} in the messages, {max_tokens} in the "
                "completion). Please reduce the length of the messages or completion.", "BadRequestError", 400))
            return
        words = b.answers.get(prompt, b.default_answer).split(" ")
        tokens = [w if i == 0 else f" {w}" for i, w in enumerate(words)][:max_tokens]
        finish = "stop" if len(tokens) == len(words) else "length"
        usage = {"prompt_tokens": prompt_tokens, "total_tokens": prompt_tokens + len(tokens),
                 "completion_tokens": len(tokens)}
        base = {"id": "cmpl-5f3c", "created": int(time.time()), "model": b.served_name}
        started, metrics = time.perf_counter(), b.metrics
        metrics.running.labels(b.served_name).inc()
        try:
            if request.get("stream"):
                self._stream(self._chunks(base, tokens, finish, usage, chat, request), started)
            else:
                self._complete(base, tokens, finish, usage, chat)
        finally:
            metrics.running.labels(b.served_name).dec()
        if request.get("stream") and b.fail_stream_after is not None and b.fail_stream_after < len(tokens):
            return  # it ended in an error chunk: not a finished request
        metrics.success.labels(b.served_name).inc()
        metrics.prompt_tokens.labels(b.served_name).inc(prompt_tokens)
        metrics.generation_tokens.labels(b.served_name).inc(len(tokens))
        metrics.e2e.labels(b.served_name).observe(time.perf_counter() - started)

    def _complete(self, base: dict[str, Any], tokens: list[str], finish: str, usage: dict[str, int],
                  chat: bool) -> None:
        text = "".join(tokens)
        if chat:
            choice = {"index": 0, "message": {"role": "assistant", "content": text, "tool_calls": []},
                      "logprobs": None, "finish_reason": finish, "stop_reason": None}
            self.send_json(200, {**base, "object": "chat.completion", "choices": [choice], "usage": usage})
        else:
            choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish, "stop_reason": None}
            self.send_json(200, {**base, "object": "text_completion", "choices": [choice], "usage": usage})

    def _prompt(self, request: Any, chat: bool) -> str | None:
        if not isinstance(request, dict):
            return None
        if not chat:
            return request["prompt"] if isinstance(request.get("prompt"), str) else None
        messages = request.get("messages")
        users = [m.get("content") for m in messages or [] if isinstance(m, dict) and m.get("role") == "user"]
        return users[-1] if users and isinstance(users[-1], str) else None

    def _chunks(self, base: dict[str, Any], tokens: list[str], finish: str, usage: dict[str, int], chat: bool,
                request: dict[str, Any]) -> Iterator[tuple[bool, bytes]]:
        """(carries a token, the SSE event) of a stream, in order."""
        def event(payload: Any) -> bytes:
            return b"data: " + (payload if isinstance(payload, bytes) else json.dumps(payload).encode()) + b"\n\n"

        kind = "chat.completion.chunk" if chat else "text_completion"
        if chat:  # vLLM's first chat chunk carries only the role
            yield False, event({**base, "object": kind, "choices": [
                {"index": 0, "delta": {"role": "assistant", "content": ""}, "logprobs": None, "finish_reason": None}]})
        for i, text in enumerate(tokens):
            if self.behaviour.fail_stream_after is not None and i == self.behaviour.fail_stream_after:
                yield False, event(_error("CUDA out of memory. Tried to allocate 2.00 GiB", "InternalServerError", 500))
                yield False, event(b"[DONE]")
                return
            last = i == len(tokens) - 1
            reason = finish if last else None
            choice = ({"index": 0, "delta": {"content": text}, "logprobs": None, "finish_reason": reason} if chat
                      else {"index": 0, "text": text, "logprobs": None, "finish_reason": reason, "stop_reason": None})
            yield True, event({**base, "object": kind, "choices": [choice]})
        if (request.get("stream_options") or {}).get("include_usage"):
            yield False, event({**base, "object": kind, "choices": [], "usage": usage})
        yield False, event(b"[DONE]")


@dataclass
class RunningVllm:
    url: str
    behaviour: VllmBehaviour
    address: tuple[str, int] = ("", 0)
    """(host, port), for a proxy in front of it."""


def start_vllm(served_name: str, root: str, stops: list[Callable[[], None]], **behaviour: Any) -> RunningVllm:
    """Start the fake on a free port of 127.0.0.1; its stop function goes to ``stops``."""
    state = VllmBehaviour(served_name=served_name, root=root, **behaviour)
    handler = type("Handler", (_VllmHandler,), {"behaviour": state, "lock": threading.Lock()})
    server = start_http(handler, stops)
    host, port = server.server_address[:2]
    return RunningVllm(f"http://{host}:{port}", state, (str(host), int(port)))
