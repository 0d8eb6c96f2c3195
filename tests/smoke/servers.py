"""Real local servers for the smoke-package tests: TGI-protocol fakes, a per-connection split proxy, MLServer.

Everything listens on 127.0.0.1 on ports chosen by the OS (or found free just before), runs in
daemon threads (or one subprocess for MLServer) and is stopped by the fixture in conftest.py
that started it.
"""

from __future__ import annotations

import json
import random
import selectors
import socket
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from tests.loopback import LoopbackHandler, start_http

REPO_ROOT = Path(__file__).resolve().parents[2]
SHIPPED_CASES = REPO_ROOT / "smoke" / "cases"
SQUARE_ROOT_PROMPT = "The square root of x is the cube root of y. What is y to the power of 2, if x = 4?"
SMALL_ID = "/mnt/datasets/model-weights/flan-t5-small/0fc9ddf78a1e988dac52e2dac162b0ede4fd74ab"
BASE_ID = "/mnt/datasets/model-weights/flan-t5-base/7bcac572ce56db69c1ea7c8af255c5d7c9672fc2"
SMALL_ANSWERS = {SQUARE_ROOT_PROMPT: "0"}
BASE_ANSWERS = {SQUARE_ROOT_PROMPT: "x = 4 * 2 = 8 x = 16 y = 16 to the power of 2"}
MNIST_MODEL = "mnist-svm"


# -- TGI-protocol server -------------------------------------------------------------------------


@dataclass
class TgiBehaviour:
    """What a fake TGI server answers; mutable so a test can change it while it runs."""

    model_id: str
    answers: dict[str, str] = field(default_factory=dict)
    default_answer: str = "a generated answer"
    generate_status: int = 200
    unhealthy_first: int = 0
    """Answer 503 to this many /health calls first (a server still warming up)."""
    generate_delay_s: float = 0.0
    info_delay_s: float = 0.0
    """Seconds before each /info answer (a slow or overloaded server)."""
    model_sha: str | None = None
    """What /info reports as model_sha (TGI reports the Hub commit for a Hub-served model)."""
    log: list[tuple[str, str]] = field(default_factory=list)


class _TgiHandler(LoopbackHandler):
    """Implements /generate, POST / (compat, JSON list), /generate_stream (SSE), the Messages API
    (/v1/chat/completions, unstreamed), GET / and /health, /info and /v1/models (TGI 2.3+: one entry whose
    id and owned_by are the model id, huggingface/text-generation-inference#2433) like TGI."""

    behaviour: TgiBehaviour
    lock: threading.Lock

    def _health(self) -> None:
        with self.lock:
            starting = self.behaviour.unhealthy_first > 0
            if starting:
                self.behaviour.unhealthy_first -= 1
        if starting:
            self.send_json(503, {"error": "unhealthy", "error_type": "healthcheck"})
        else:
            self.send_json(200)

    def do_GET(self) -> None:  # noqa: N802 - http.server API
        self.behaviour.log.append(("GET", self.path))
        if self.path in ("/health", "/ping", "/"):
            self._health()
        elif self.path == "/info":
            time.sleep(self.behaviour.info_delay_s)
            self.send_json(200, _info(self.behaviour.model_id, self.behaviour.model_sha))
        elif self.path == "/v1/models":
            model_id = self.behaviour.model_id
            self.send_json(200, {"object": "list", "data": [
                {"id": model_id, "object": "model", "created": 0, "owned_by": model_id}]})
        else:
            self.send_json(404, {"error": "not found", "error_type": "not_found"})

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self.behaviour.log.append(("POST", self.path))
        length = int(self.headers.get("Content-Length", "0"))
        try:
            request = json.loads(self.rfile.read(length) or b"null")
        except ValueError:
            self.send_json(422, {"error": "invalid JSON", "error_type": "validation"})
            return
        if self.path == "/v1/chat/completions" and isinstance(request, dict) and request.get("messages"):
            self._chat(request)
            return
        if (
            self.path not in ("/generate", "/", "/generate_stream")
            or not isinstance(request, dict)
            or not isinstance(request.get("inputs"), str)
        ):
            self.send_json(422, {"error": "expected {inputs: str}", "error_type": "validation"})
            return
        if self.behaviour.generate_status != 200:
            self.send_json(
                self.behaviour.generate_status,
                {"error": "Request failed during generation", "error_type": "generation"},
            )
            return
        time.sleep(self.behaviour.generate_delay_s)
        text = self.behaviour.answers.get(request["inputs"], self.behaviour.default_answer)
        headers = {"x-compute-type": "gpu+optimized", "x-generated-tokens": str(len(text.split()))}
        if self.path == "/generate_stream":
            self._stream(text)
            return
        payload: Any = {"generated_text": text}
        if self.path == "/":
            payload = [payload]  # the compat route answers a list when stream is false
        self.send_json(200, payload, headers)


    def _stream(self, text: str) -> None:
        """One ``data:{token}`` event per word, the last carrying ``generated_text`` (TGI's SSE, no space)."""
        words = text.split(" ")
        events = []
        for i, word in enumerate(words):
            last = i == len(words) - 1
            token = {"id": i, "text": word if i == 0 else f" {word}", "logprob": -0.1, "special": False}
            event = {"index": i + 1, "token": token, "generated_text": text if last else None, "details": None}
            events.append("data:" + json.dumps(event) + "\n\n")
        self.send_body(200, "".join(events).encode(), "text/event-stream")

    def _chat(self, request: dict[str, Any]) -> None:
        prompt = request["messages"][-1].get("content", "")
        text = self.behaviour.answers.get(prompt, self.behaviour.default_answer)
        self.send_json(200, {"object": "chat.completion", "id": "", "created": 0, "model": self.behaviour.model_id,
                             "system_fingerprint": "3.3.4-native", "choices": [{
                                 "index": 0, "message": {"role": "assistant", "content": text}, "logprobs": None,
                                 "finish_reason": "eos_token"}],
                             "usage": {"prompt_tokens": 9, "completion_tokens": len(text.split()),
                                       "total_tokens": 9 + len(text.split())}})


def _info(model_id: str, model_sha: str | None = None) -> dict[str, Any]:
    return {
        "model_id": model_id,
        "model_sha": model_sha,
        "model_pipeline_tag": None,
        "max_concurrent_requests": 128,
        "max_best_of": 2,
        "max_stop_sequences": 4,
        "max_input_tokens": 512,
        "max_total_tokens": 1024,
        "validation_workers": 2,
        "max_client_batch_size": 4,
        "router": "text-generation-router",
        "version": "3.3.4",
        "sha": None,
        "docker_label": None,
    }


@dataclass
class RunningServer:
    """A server started by a fixture: its URL, address and behaviour."""

    url: str
    address: tuple[str, int]
    behaviour: Any = None


def start_tgi(model_id: str, stops: list[Callable[[], None]], **behaviour: Any) -> RunningServer:
    """Start a fake TGI server; its stop function is appended to ``stops``."""
    state = TgiBehaviour(model_id=model_id, **behaviour)
    handler = type("Handler", (_TgiHandler,), {"behaviour": state, "lock": threading.Lock()})
    server = start_http(handler, stops)
    host, port = server.server_address[:2]
    return RunningServer(f"http://{host}:{port}", (str(host), int(port)), state)


# -- ModelMesh REST proxy (V2 infer only) ---------------------------------------------------------


@dataclass
class V2Behaviour:
    """Models the fake proxy serves: name -> the outputs every infer answers; others answer 404."""

    outputs: dict[str, list[dict[str, Any]]]
    log: list[str] = field(default_factory=list)


class _V2Handler(LoopbackHandler):
    """``POST /v2/models/<name>/infer`` like ModelMesh's REST proxy (model_name ``<name>__isvc-<hash>``)."""

    behaviour: V2Behaviour

    def do_POST(self) -> None:  # noqa: N802 - http.server API
        self.rfile.read(int(self.headers.get("Content-Length", "0")))
        parts = self.path.strip("/").split("/")
        name = parts[2] if len(parts) == 4 and parts[0] == "v2" and parts[3] == "infer" else ""
        self.behaviour.log.append(name)
        if name in self.behaviour.outputs:
            status, payload = 200, {"model_name": f"{name}__isvc-6b2eb0b8bf", "outputs": self.behaviour.outputs[name]}
        else:
            status, payload = 404, {"code": 5, "message": f"Model {name} not found"}
        self.send_json(status, payload)


def start_v2(outputs: dict[str, list[dict[str, Any]]], stops: list[Callable[[], None]]) -> RunningServer:
    """Start a fake ModelMesh REST proxy serving ``outputs`` (model name -> output tensors)."""
    state = V2Behaviour(outputs=outputs)
    server = start_http(type("Handler", (_V2Handler,), {"behaviour": state}), stops)
    host, port = server.server_address[:2]
    return RunningServer(f"http://{host}:{port}", (str(host), int(port)), state)


# -- per-connection split proxy -----------------------------------------------------------------


class SplitProxy:
    """TCP proxy that sends each new connection to the canary with probability ``share`` (seeded)."""

    def __init__(self, stable: tuple[str, int], canary: tuple[str, int], share: float, seed: int) -> None:
        self.backends = {"stable": stable, "canary": canary}
        self.share = share
        self.rng = random.Random(seed)
        self.choices: list[str] = []
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.listener.settimeout(0.1)
        self.stopping = threading.Event()
        self.threads: list[threading.Thread] = []
        self.url = f"http://127.0.0.1:{self.listener.getsockname()[1]}"
        self._accepting = threading.Thread(target=self._accept_loop, daemon=True)
        self._accepting.start()

    def _accept_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                client, _ = self.listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            side = "canary" if self.rng.random() < self.share else "stable"
            self.choices.append(side)
            thread = threading.Thread(target=self._pump, args=(client, self.backends[side]), daemon=True)
            self.threads.append(thread)
            thread.start()

    def _pump(self, client: socket.socket, backend: tuple[str, int]) -> None:
        try:
            upstream = socket.create_connection(backend, timeout=5)
        except OSError:
            client.close()
            return
        selector = selectors.DefaultSelector()
        selector.register(client, selectors.EVENT_READ, upstream)
        selector.register(upstream, selectors.EVENT_READ, client)
        idle_deadline = time.monotonic() + 30
        try:
            while not self.stopping.is_set() and time.monotonic() < idle_deadline:
                for key, _ in selector.select(timeout=0.1):
                    data = key.fileobj.recv(65536)  # type: ignore[union-attr]
                    if not data:
                        return
                    key.data.sendall(data)
        except OSError:
            return
        finally:
            selector.close()
            client.close()
            upstream.close()

    def close(self) -> None:
        """Stop accepting, end the pumps and wait for the threads (bounded)."""
        self.stopping.set()
        self.listener.close()
        self._accepting.join(timeout=5)
        for thread in self.threads:
            thread.join(timeout=5)


def free_port() -> int:
    """A port that was free a moment ago (for servers that cannot bind port 0 themselves)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- MLServer (V2 protocol) ---------------------------------------------------------------------


def write_mnist_model_repository(root: Path, http_port: int) -> None:
    """Train an SVC on scikit-learn's digits set (the ModelMesh quickstart's mnist-svm) and write
    an MLServer model repository serving it as ``mnist-svm`` on ``http_port``."""
    import joblib
    from sklearn.datasets import load_digits
    from sklearn.svm import SVC

    model_dir = root / MNIST_MODEL
    model_dir.mkdir()
    features, labels = load_digits(return_X_y=True)
    joblib.dump(SVC(gamma=0.001).fit(features, labels), model_dir / "model.joblib")
    model_settings = {
        "name": MNIST_MODEL,
        "implementation": "mlserver_sklearn.SKLearnModel",
        "parameters": {"uri": "./model.joblib"},
    }
    (model_dir / "model-settings.json").write_text(json.dumps(model_settings))
    settings = {
        "host": "127.0.0.1",
        "http_port": http_port,
        "grpc_port": free_port(),
        "metrics_port": free_port(),
        "parallel_workers": 0,
        "debug": False,
    }
    (root / "settings.json").write_text(json.dumps(settings))


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Terminate, then kill if it does not exit in time."""
    process.terminate()
    try:
        process.wait(timeout=15)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=5)


def wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path, limit_s: float) -> None:
    """Poll ``url`` until it answers 200; raise with the server log if it exits or times out."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"mlserver exited with {process.returncode}:\n{log_path.read_text()[-3000:]}")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"mlserver not ready within {limit_s} s:\n{log_path.read_text()[-3000:]}")
