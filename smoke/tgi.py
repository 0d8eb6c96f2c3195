"""TGI calls used by the checks (``/health``, ``/info``, ``/generate``, ``POST /``).

Facts relied on: ``GET /health`` answers 200 with an empty body
(503 while unhealthy); ``GET /info`` carries ``model_id``, the exact ``--model-id`` string, so
for a local mount it is a path such as ``/mnt/datasets/model-weights/flan-t5-small/<revision>``;
``POST /generate`` answers ``{"generated_text": ...}`` and the compat route ``POST /`` with
``stream: false`` answers a JSON *list* of such objects. What ``/info`` must report is
:mod:`smoke.identity`'s.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from .cases import TgiCase
from .net import Endpoint, EndpointError, RetryPolicy, excerpt, json_body, request_ok
from .sse import sse_data

_REVISION = re.compile(r"^(?:[0-9a-fA-F]{7,64}|main)$")


def _components(model: str) -> list[str]:
    return [part for part in model.strip().split("/") if part]


def _ends_with(parts: list[str], tail: list[str]) -> bool:
    return len(tail) <= len(parts) and parts[len(parts) - len(tail) :] == tail


def model_matches(expected: str, actual: str) -> bool:
    """Whether a served ``model_id`` (``actual``) is the ``expected`` model, leniently: for scoring
    answers by model (``analysis.prompts``), not for the gate, whose identity check is
    :mod:`smoke.identity`'s (the whole repo id and the revision).

    The rule, in order:

    1. equal strings match;
    2. otherwise both are split on ``/`` and the expected components must be the last
       components of ``actual``, or the ones just before a final *revision* component (a hex
       commit id of 7-64 characters, or ``main``);
    3. the same with the expected organisation dropped (``google/flan-t5-small`` is tried as
       ``flan-t5-small``), because staged copies are usually stored under the bare model name.

    So ``flan-t5-small`` and ``google/flan-t5-small`` both match
    ``/mnt/datasets/model-weights/flan-t5-small/0fc9ddf78a1e988dac52e2dac162b0ede4fd74ab``,
    while ``flan-t5-base`` and ``t5-small`` do not (components must match whole).
    """
    if expected == actual:
        return True
    want = _components(expected)
    have = _components(actual)
    if not want or not have:
        return False
    candidates = [want, want[1:]] if len(want) >= 2 else [want]
    stripped = have[:-1] if len(have) >= 2 and _REVISION.match(have[-1]) else None
    return any(_ends_with(have, tail) or (stripped is not None and _ends_with(stripped, tail)) for tail in candidates)


@dataclass(frozen=True)
class Generation:
    """The text a variant generated for one case, and how long the request took."""

    text: str
    latency_s: float
    route: str


class TgiClient(Endpoint):
    """Calls one TGI endpoint (a variant's Service or the traffic Service)."""

    def info(self, policy: RetryPolicy) -> Mapping[str, Any]:
        """``GET /info``; the body must be an object with a string ``model_id``."""
        url, response = self.get_ok("/info", policy)
        body = json_body(response, "GET", url)
        if not isinstance(body, dict) or not isinstance(body.get("model_id"), str):
            raise EndpointError(f"GET {url}: no string model_id in {excerpt(response)}")
        return body

    def generate(self, case: TgiCase, policy: RetryPolicy) -> Generation:
        """Run one case on its route and return the generated text with the request latency."""
        if case.route in ("chat", "stream"):
            return self._generate_other(case, policy)
        if case.route == "compat":
            url = self.url("/")
            body: dict[str, Any] = {"inputs": case.prompt, "parameters": dict(case.parameters), "stream": False}
        else:
            url = self.url("/generate")
            body = {"inputs": case.prompt, "parameters": dict(case.parameters)}
        response = request_ok(self.client, "POST", url, timeout=case.max_latency_s, policy=policy, body=body)
        latency = response.elapsed.total_seconds()  # the successful attempt only, not retries
        payload = json_body(response, "POST", url)
        return Generation(text=_generated_text(payload, case.route, url, response), latency_s=latency, route=case.route)

    def _generate_other(self, case: TgiCase, policy: RetryPolicy) -> Generation:
        """``chat``: TGI's Messages API (``/v1/chat/completions``, TGI 1.4+); ``stream``:
        ``/generate_stream`` (one ``data:{token...}`` event per token, the last with ``generated_text``)."""
        from .openai import completion_text, openai_sampling  # smoke.openai builds on this module

        if case.route == "chat":
            url = self.url("/v1/chat/completions")
            body: dict[str, Any] = {"model": "tgi", "messages": [{"role": "user", "content": case.prompt}],
                                    **openai_sampling(case.parameters)}
        else:
            url = self.url("/generate_stream")
            body = {"inputs": case.prompt, "parameters": dict(case.parameters)}
        response = request_ok(self.client, "POST", url, timeout=case.max_latency_s, policy=policy, body=body)
        latency = response.elapsed.total_seconds()
        if case.route == "chat":
            text = completion_text(json_body(response, "POST", url), "chat", url, response)
        else:
            text = _streamed_generated_text(response, url)
        return Generation(text=text, latency_s=latency, route=case.route)


def _streamed_generated_text(response: httpx.Response, url: str) -> str:
    for data in sse_data(response.text.splitlines()):
        try:
            event = json.loads(data)
        except ValueError as err:
            raise EndpointError(f"POST {url}: stream event is not JSON: {data[:120]!r}") from err
        if isinstance(event, dict) and "error" in event:
            raise EndpointError(
                f"POST {url}: the stream ended in an error: {event.get('error_type')}: {event['error']}")
        if isinstance(event, dict) and isinstance(event.get("generated_text"), str):
            return str(event["generated_text"])
    raise EndpointError(f"POST {url}: the stream ended without an event carrying generated_text")


def _generated_text(payload: Any, route: str, url: str, response: httpx.Response) -> str:
    if route == "compat":
        if not isinstance(payload, list) or not payload:
            raise EndpointError(
                f"POST {url}: the compat route should answer a non-empty JSON list, got {excerpt(response)}"
            )
        payload = payload[0]
    if not isinstance(payload, dict) or not isinstance(payload.get("generated_text"), str):
        raise EndpointError(f"POST {url}: no string generated_text in {excerpt(response)}")
    return str(payload["generated_text"])
