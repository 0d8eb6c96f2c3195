"""SSE parsing and the two stream protocols, on literal payloads (no server)."""

from __future__ import annotations

import json

import pytest

from analysis.engines import (
    OpenAiEngine,
    SseParser,
    StreamErrorEvent,
    StreamProtocolError,
    StreamState,
    TgiEngine,
    engine,
)
from analysis.prompts import Prompt


def _events(lines: list[str]) -> list[str]:
    parser = SseParser()
    out = [d for line in lines if (d := parser.feed(line)) is not None]
    tail = parser.flush()
    return out + ([tail] if tail is not None else [])


def test_sse_parser_handles_both_data_spacings_comments_and_multiline_data() -> None:
    lines = ['data:{"a":1}', "", ": keep-alive", "", "event: message", 'data: {"b":', "data: 2}", "", "data: [DONE]"]
    assert _events(lines) == ['{"a":1}', '{"b":\n2}', "[DONE]"]


def test_sse_parser_ignores_blank_lines_between_events() -> None:
    assert _events(["", "", "data: x", "", ""]) == ["x"]


def test_tgi_stream_yields_tokens_then_final_details() -> None:
    eng, state = TgiEngine(), StreamState()
    first = {
        "index": 1,
        "token": {"id": 1, "text": "y", "logprob": -0.1, "special": False},
        "generated_text": None,
        "details": None,
    }
    last = {
        "index": 2,
        "token": {"id": 2, "text": " = 16", "logprob": -0.2, "special": False},
        "generated_text": "y = 16",
        "details": {"finish_reason": "length", "generated_tokens": 2, "seed": None, "input_length": 23},
    }
    assert eng.decode(json.dumps(first), state).tokens == 1
    decoded = eng.decode(json.dumps(last), state)
    assert decoded.final and state.final
    assert (state.text, state.output_tokens, state.input_tokens, state.finish_reason) == ("y = 16", 2, 23, "length")


def test_tgi_error_event_raises_with_its_type() -> None:
    with pytest.raises(StreamErrorEvent, match="generation: Request failed"):
        TgiEngine().decode('{"error": "Request failed", "error_type": "generation"}', StreamState())


@pytest.mark.parametrize("data", ["not json", "[1, 2]", '{"token": {"id": 1}}'])
def test_tgi_malformed_event_is_a_protocol_error(data: str) -> None:
    with pytest.raises(StreamProtocolError):
        TgiEngine().decode(data, StreamState())


def test_openai_stream_counts_text_chunks_and_reads_usage() -> None:
    eng, state = OpenAiEngine(), StreamState()
    for text in ("x", " = 4", ""):
        eng.decode(json.dumps({"choices": [{"index": 0, "text": text, "finish_reason": None}]}), state)
    eng.decode(json.dumps({"choices": [], "usage": {"prompt_tokens": 12, "completion_tokens": 3}}), state)
    assert not state.final
    assert eng.decode("[DONE]", state).final
    assert (state.text, state.token_events, state.output_tokens, state.input_tokens) == ("x = 4", 2, 3, 12)


def test_openai_error_chunk_raises() -> None:
    with pytest.raises(StreamErrorEvent, match="boom"):
        OpenAiEngine().decode('{"object": "error", "message": "boom"}', StreamState())


def test_openai_body_translates_greedy_tgi_parameters() -> None:
    prompt = Prompt("p", "hi", {"do_sample": False, "max_new_tokens": 7, "stop": ["\n"], "truncate": 64})
    body = OpenAiEngine().body(prompt, "google/flan-t5-base")
    assert body == {
        "model": "google/flan-t5-base",
        "prompt": "hi",
        "max_tokens": 7,
        "stream": True,
        "stream_options": {"include_usage": True},
        "temperature": 0.0,
        "stop": ["\n"],
        "truncate_prompt_tokens": 64,
    }


def test_tgi_body_asks_for_details() -> None:
    body = TgiEngine().body(Prompt("p", "hi", {"max_new_tokens": 3}), None)
    assert body == {"inputs": "hi", "parameters": {"max_new_tokens": 3, "details": True}}


def test_unknown_engine_is_named() -> None:
    with pytest.raises(ValueError, match="unknown engine 'vllm' \\(known: tgi, openai\\)"):
        engine("vllm")
