"""OpenAI-compatible calls used by the checks (vLLM's server; TGI serves the same routes since 2.3).

Facts relied on (vLLM's ``vllm serve``): ``GET /health`` answers 200 with an empty body once the
engine runs; ``GET /v1/models`` answers ``{"object": "list", "data": [{"id": <served-model-name>,
"object": "model", "root": <the model path it loaded>, "owned_by": "vllm", ...}]}`` (TGI: ``id``
and ``owned_by`` are its ``--model-id``, no ``root``); ``POST /v1/completions`` answers
``{"choices": [{"text": ...}]}``, ``POST /v1/chat/completions`` ``{"choices": [{"message":
{"content": ...}}]}``; with ``"stream": true`` both send Server-Sent Events ``data: {chunk}`` and
end with ``data: [DONE]``; errors are HTTP 4xx/5xx with ``{"object": "error", "message", "type",
"code"}`` (vLLM 0.x; newer releases nest it as ``{"error": {...}}``), and an error after the stream
started arrives as such an object in a ``data:`` chunk.

Case files stay engine-neutral: their ``parameters`` are TGI's names, translated here
(:func:`openai_sampling`), and each ``route`` means the same on both APIs (:data:`ROUTES`).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .cases import TgiCase
from .identity import Served
from .net import Endpoint, EndpointError, RetryPolicy, excerpt, json_body, request_ok
from .sse import sse_data
from .tgi import Generation

ROUTES = {
    "generate": "/v1/completions",
    "compat": "/v1/completions",
    "chat": "/v1/chat/completions",
    "stream": "/v1/completions",
}
"""Case route -> OpenAI-compatible path (TGI: ``/generate``, ``POST /``, ``/v1/chat/completions``,
``/generate_stream``). ``compat`` is TGI's second completion route; here it is the completion route."""

SAMPLING = {
    "max_new_tokens": "max_tokens",
    "temperature": "temperature",
    "top_p": "top_p",
    "top_k": "top_k",
    "seed": "seed",
    "stop": "stop",
    "repetition_penalty": "repetition_penalty",
    "frequency_penalty": "frequency_penalty",
    "truncate": "truncate_prompt_tokens",
}
"""TGI parameter -> OpenAI-compatible field (``top_k``, ``repetition_penalty`` and
``truncate_prompt_tokens`` are vLLM's extra sampling fields)."""
IGNORED = frozenset({"details", "decoder_input_details", "return_full_text"})
"""TGI parameters about the response's shape, not the text: nothing to translate."""


def openai_sampling(parameters: Mapping[str, Any]) -> dict[str, Any]:
    """A case's TGI parameters as OpenAI-compatible request fields; greedy (``do_sample`` false)
    becomes ``temperature: 0``. A parameter with no equivalent is an error naming it."""
    body: dict[str, Any] = {}
    for key, value in parameters.items():
        if key == "do_sample" or key in IGNORED:
            continue
        if key not in SAMPLING:
            raise EndpointError(f"parameter {key!r} has no OpenAI-compatible equivalent "
                                f"(translated: {', '.join(['do_sample', *SAMPLING])})")
        body[SAMPLING[key]] = value
    if not parameters.get("do_sample", False):
        body["temperature"] = 0.0
    return body


def error_message(payload: Any) -> str | None:
    """The message of an OpenAI-style error object (flat or nested under ``error``), else None."""
    if not isinstance(payload, Mapping):
        return None
    nested = payload.get("error")
    error = nested if isinstance(nested, Mapping) else payload
    if payload.get("object") == "error" or error is not payload:
        kind = error.get("type") or "error"
        return f"{kind} ({error.get('code')}): {error.get('message')}"
    return None


@dataclass(frozen=True)
class ServedModel:
    """What ``GET /v1/models`` says the endpoint serves."""

    id: str
    root: str | None
    owned_by: str | None

    @property
    def identity(self) -> str:
        """The weights it loaded when it says (``root``: a path ending in the revision), else its id."""
        return self.root or self.id

    def served(self) -> Served:
        """As the identity checks and the split compare it: the weights, and how they are served."""
        rest = [f"served as {self.id}"] if self.id != self.identity else []
        if self.owned_by and self.owned_by != self.id:
            rest.append(f"owned by {self.owned_by}")
        return Served(self.identity, served_as=", ".join(rest) or None)


class OpenAiClient(Endpoint):
    """Calls one OpenAI-compatible endpoint (a variant's Service or the traffic Service)."""

    def __init__(self, base_url: str, client: httpx.Client, request_timeout: float, model: str | None = None) -> None:
        super().__init__(base_url, client, request_timeout)
        self.model = model
        """The ``model`` field of requests: the served name (default: the first of ``/v1/models``)."""

    def served_model(self, policy: RetryPolicy) -> ServedModel:
        """``GET /v1/models``: the one model it serves (its first entry)."""
        url, response = self.get_ok("/v1/models", policy)
        body = json_body(response, "GET", url)
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list) or not data or not isinstance(data[0], dict) \
                or not isinstance(data[0].get("id"), str):
            raise EndpointError(f"GET {url}: no model list with a string id in {excerpt(response)}")
        first = data[0]
        root, owner = first.get("root"), first.get("owned_by")
        served = ServedModel(first["id"], root if isinstance(root, str) and root else None,
                             owner if isinstance(owner, str) else None)
        if self.model is None:
            self.model = served.id
        return served

    def generate(self, case: TgiCase, policy: RetryPolicy) -> Generation:
        """Run one case on its route and return the generated text with the request latency."""
        path = ROUTES[case.route]
        url = self.url(path)
        body: dict[str, Any] = {"model": self.model or "", **openai_sampling(case.parameters)}
        if case.route == "chat":
            body["messages"] = [{"role": "user", "content": case.prompt}]
        else:
            body["prompt"] = case.prompt
        if case.route == "stream":
            body["stream"] = True
        response = request_ok(self.client, "POST", url, timeout=case.max_latency_s, policy=policy, body=body,
                              refusal=_refusal)
        latency = response.elapsed.total_seconds()
        if case.route == "stream":
            text = _streamed_text(response, url)
        else:
            text = completion_text(json_body(response, "POST", url), case.route, url, response)
        return Generation(text=text, latency_s=latency, route=case.route)


def _refusal(response: httpx.Response) -> str:
    """What a refused request came back with: the server's OpenAI-style error message when it sent one."""
    message = error_message(_json_or_none(response))
    return f"HTTP {response.status_code} {message}" if message else excerpt(response)


def _json_or_none(response: httpx.Response) -> Any:
    try:
        return response.json()
    except ValueError:
        return None


def completion_text(payload: Any, route: str, url: str, response: httpx.Response) -> str:
    choices = payload.get("choices") if isinstance(payload, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices and isinstance(choices[0], dict) else None
    text = (choice.get("message") or {}).get("content") if route == "chat" and choice else (
        choice.get("text") if choice else None)
    if not isinstance(text, str):
        field = "choices[0].message.content" if route == "chat" else "choices[0].text"
        raise EndpointError(f"POST {url}: no string {field} in {excerpt(response)}")
    return text


def _streamed_text(response: httpx.Response, url: str) -> str:
    """The text of a completion stream: every chunk's ``choices[].text``, up to ``[DONE]``."""
    text, done = "", False
    for data in sse_data(response.text.splitlines()):
        if data.strip() == "[DONE]":
            done = True
            break
        try:
            chunk = json.loads(data)
        except ValueError as err:
            raise EndpointError(f"POST {url}: stream chunk is not JSON: {data[:120]!r}") from err
        message = error_message(chunk)
        if message is not None:
            raise EndpointError(f"POST {url}: the stream ended in an error: {message}")
        choices = chunk.get("choices") if isinstance(chunk, dict) else None
        if not isinstance(choices, list):
            raise EndpointError(f"POST {url}: stream chunk has no choices list: {data[:120]!r}")
        for choice in choices:
            piece = choice.get("text") if isinstance(choice, dict) else None
            if not isinstance(piece, str):
                raise EndpointError(f"POST {url}: stream choice has no text: {data[:120]!r}")
            text += piece
    if not done:
        raise EndpointError(f"POST {url}: the stream ended without data: [DONE]")
    return text
