"""The two streaming protocols: TGI ``POST /generate_stream`` and OpenAI-style ``POST /v1/completions``.

Pure code: request bodies and stream decoding, no I/O. The load generator feeds each SSE
``data`` payload to a decoder and reads back token events, counts and errors.

Facts relied on:

* TGI (router ``generate_stream``): one SSE event per generated token, ``data:{"index": i,
  "token": {"id", "text", "logprob", "special"}, "generated_text": null, "details": null}``;
  the last event carries ``generated_text`` and, when ``parameters.details`` is true,
  ``details: {"finish_reason", "generated_tokens", "seed", "input_length"}`` (``input_length``
  in TGI 2.x and later). Errors after the stream started arrive as an event
  ``{"error": "...", "error_type": "..."}``; before it as HTTP 4xx/5xx with the same body.
  Keep-alive comments (lines starting with ``:``) may appear between events.
* OpenAI completions (vLLM, and TGI's compat API): chunks ``{"choices": [{"index": 0, "text":
  "...", "finish_reason": null}], ...}``, then ``data: [DONE]``; with ``stream_options:
  {"include_usage": true}`` a last chunk with empty ``choices`` carries ``usage:
  {"prompt_tokens", "completion_tokens"}``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from smoke.sse import SseParser

from .prompts import Prompt

__all__ = ["ENGINES", "OpenAiEngine", "SseParser", "StreamState", "TgiEngine", "engine"]

ENGINES = ("tgi", "openai")

TGI_STREAM_PATH = "/generate_stream"
OPENAI_STREAM_PATH = "/v1/completions"


class StreamProtocolError(Exception):
    """The stream does not follow the engine's protocol."""


class StreamErrorEvent(Exception):
    """The server sent an error event inside the stream."""


@dataclass
class Decoded:
    """What one SSE payload meant."""

    tokens: int = 0
    """Token events in this payload (0 or 1 for TGI; chunks with text for OpenAI)."""
    text: str = ""
    final: bool = False


@dataclass
class StreamState:
    """The decoded state of one response stream."""

    text: str = ""
    token_events: int = 0
    final: bool = False
    generated_tokens: int | None = None
    input_tokens: int | None = None
    finish_reason: str | None = None

    @property
    def output_tokens(self) -> int:
        """The server's generated-token count when it gave one, else the token events seen."""
        return self.generated_tokens if self.generated_tokens is not None else self.token_events


def _json(data: str) -> Any:
    try:
        return json.loads(data)
    except ValueError as err:
        raise StreamProtocolError(f"event data is not JSON: {data[:120]!r}") from err


class TgiEngine:
    """TGI's native streaming API."""

    name = "tgi"
    path = TGI_STREAM_PATH

    def body(self, prompt: Prompt, model: str | None) -> dict[str, Any]:  # noqa: ARG002 - same signature as OpenAI
        """Request body: the prompt's TGI parameters plus ``details: true`` for token counts."""
        return {"inputs": prompt.text, "parameters": {**prompt.parameters, "details": True}}

    def decode(self, data: str, state: StreamState) -> Decoded:
        """Interpret one event's data; raise on an error event or a malformed one."""
        event = _json(data)
        if not isinstance(event, dict):
            raise StreamProtocolError(f"event is not an object: {data[:120]!r}")
        if "error" in event:
            raise StreamErrorEvent(f"{event.get('error_type') or 'error'}: {event['error']}")
        token = event.get("token")
        if not isinstance(token, dict) or not isinstance(token.get("text"), str):
            raise StreamProtocolError(f"event has no token.text: {data[:120]!r}")
        state.token_events += 1
        decoded = Decoded(tokens=1, text=token["text"])
        if event.get("generated_text") is not None:
            state.final = decoded.final = True
            state.text = str(event["generated_text"])
            details = event.get("details")
            if isinstance(details, dict):
                state.generated_tokens = _int_or_none(details.get("generated_tokens"))
                state.input_tokens = _int_or_none(details.get("input_length"))
                state.finish_reason = details.get("finish_reason")
        else:
            state.text += token["text"]
        return decoded


class OpenAiEngine:
    """OpenAI-compatible streaming completions (vLLM; TGI serves it too)."""

    name = "openai"
    path = OPENAI_STREAM_PATH

    def body(self, prompt: Prompt, model: str | None) -> dict[str, Any]:
        """Request body translated from the prompt's TGI parameters."""
        p = prompt.parameters
        body: dict[str, Any] = {
            "model": model or "tgi",
            "prompt": prompt.text,
            "max_tokens": p.get("max_new_tokens", 32),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        if not p.get("do_sample", False):
            body["temperature"] = 0.0
        elif "temperature" in p:
            body["temperature"] = p["temperature"]
        for ours, theirs in (
            ("top_p", "top_p"),
            ("seed", "seed"),
            ("stop", "stop"),
            ("truncate", "truncate_prompt_tokens"),
        ):
            if ours in p:
                body[theirs] = p[ours]
        return body

    def decode(self, data: str, state: StreamState) -> Decoded:
        """Interpret one chunk (or ``[DONE]``); raise on an error chunk or a malformed one."""
        if data.strip() == "[DONE]":
            state.final = True
            return Decoded(final=True)
        chunk = _json(data)
        if not isinstance(chunk, dict):
            raise StreamProtocolError(f"chunk is not an object: {data[:120]!r}")
        if "error" in chunk or chunk.get("object") == "error":
            error = chunk.get("error", chunk)
            message = error.get("message", error) if isinstance(error, Mapping) else error
            raise StreamErrorEvent(f"error: {message}")
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            state.generated_tokens = _int_or_none(usage.get("completion_tokens"))
            state.input_tokens = _int_or_none(usage.get("prompt_tokens"))
        choices = chunk.get("choices")
        if not isinstance(choices, list):
            raise StreamProtocolError(f"chunk has no choices list: {data[:120]!r}")
        decoded = Decoded()
        for choice in choices:
            text = choice.get("text", "") if isinstance(choice, dict) else None
            if not isinstance(text, str):
                raise StreamProtocolError(f"choice has no text: {data[:120]!r}")
            if text:
                decoded.tokens += 1
                decoded.text += text
            if choice.get("finish_reason"):
                state.finish_reason = choice["finish_reason"]
        state.token_events += decoded.tokens
        state.text += decoded.text
        return decoded


def _int_or_none(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def engine(name: str) -> TgiEngine | OpenAiEngine:
    """The engine called ``name`` (one of :data:`ENGINES`)."""
    if name == "tgi":
        return TgiEngine()
    if name == "openai":
        return OpenAiEngine()
    raise ValueError(f"unknown engine {name!r} (known: {', '.join(ENGINES)})")
