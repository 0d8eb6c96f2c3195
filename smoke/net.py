"""HTTP plumbing for the checks: retries with backoff up to a hard deadline, and error texts.

Two retry policies exist. *Readiness* retries an endpoint that is still starting (connection
refused or reset, 429/502/503/504, optionally timeouts) with exponential backoff until an
absolute deadline, and never sleeps past it. *Brief* retries a transient failure of an endpoint
already known to be up a few times. Anything else (4xx, 500, a wrong body) fails at once, so
a broken variant is reported quickly instead of after the deadline.

Either policy may carry the run's *budget* (``budget_end``, a monotonic time): no attempt starts
after it, none runs past it and no retry sleeps past it, so the whole run ends within its budget.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any

import httpx
from tenacity import RetryCallState, Retrying, retry_if_exception_type, stop_after_attempt
from tenacity.stop import stop_base
from tenacity.wait import wait_exponential

TRANSIENT_STATUS: frozenset[int] = frozenset({429, 502, 503, 504})
"""Statuses of an endpoint that is starting or overloaded (TGI 503 unhealthy, 429 queue full)."""

BODY_EXCERPT = 300


class EndpointError(Exception):
    """A request failed for good; the message says what was asked and what came back."""


class TransientError(EndpointError):
    """A failure worth retrying (the endpoint may still be starting)."""


class BudgetSpent(EndpointError):
    """The run's budget ended before this request could be sent (or finish)."""


@dataclass(frozen=True)
class RetryPolicy:
    """When to retry: until ``deadline`` (time.monotonic() value) or up to ``attempts`` tries."""

    deadline: float | None = None
    attempts: int = 3
    retry_timeouts: bool = False
    retry_status: Collection[int] = TRANSIENT_STATUS
    budget_end: float | None = None
    """The run's hard end (time.monotonic() value): nothing is sent, waited for or retried after it."""

    @classmethod
    def readiness(cls, deadline: float, retry_status: Collection[int] = TRANSIENT_STATUS,
                  budget_end: float | None = None) -> RetryPolicy:
        """Retry a starting endpoint (timeouts included) until the hard deadline."""
        return cls(deadline=deadline, retry_timeouts=True, retry_status=retry_status, budget_end=budget_end)

    @classmethod
    def brief(cls, attempts: int = 3, budget_end: float | None = None) -> RetryPolicy:
        """A few tries for an endpoint that is already up; timeouts are failures."""
        return cls(deadline=None, attempts=attempts, budget_end=budget_end)


class _StopAtDeadline(stop_base):
    """Stop when the next attempt would start at or after an absolute monotonic deadline."""

    def __init__(self, deadline: float) -> None:
        self.deadline = deadline

    def __call__(self, retry_state: RetryCallState) -> bool:
        return time.monotonic() + retry_state.upcoming_sleep >= self.deadline


def _retrying(policy: RetryPolicy) -> Retrying:
    stop: stop_base = (_StopAtDeadline(policy.deadline) if policy.deadline is not None
                       else stop_after_attempt(policy.attempts))
    if policy.budget_end is not None:
        stop = stop | _StopAtDeadline(policy.budget_end)
    return Retrying(
        stop=stop,
        wait=wait_exponential(multiplier=0.25, min=0.25, max=5.0),
        retry=retry_if_exception_type(TransientError),
        reraise=True,
    )


def excerpt(response: httpx.Response) -> str:
    """``HTTP <status>: <first characters of the body>`` for error messages."""
    body = response.text.strip().replace("\n", " ")
    if len(body) > BODY_EXCERPT:
        body = body[:BODY_EXCERPT] + "…"
    return f"HTTP {response.status_code}: {body or '(empty body)'}"


def _attempt(
    client: httpx.Client, method: str, url: str, body: Any, timeout: float, policy: RetryPolicy
) -> httpx.Response:
    if policy.deadline is not None:
        remaining = policy.deadline - time.monotonic()
        if remaining > 0:
            timeout = min(timeout, remaining)
        # else: the deadline passed while earlier checks ran; this endpoint still gets one
        # attempt with the full request timeout (within the budget), and no retry.
    if policy.budget_end is not None:
        left = policy.budget_end - time.monotonic()
        if left <= 0:
            raise BudgetSpent(f"{method} {url}: not sent, the run's budget is spent")
        timeout = min(timeout, left)
    try:
        response = client.request(method, url, json=body, timeout=timeout)
    except httpx.TimeoutException as err:
        kind = TransientError if (policy.retry_timeouts or isinstance(err, httpx.ConnectTimeout)) else EndpointError
        raise kind(f"{method} {url}: no answer within {timeout:.1f} s ({type(err).__name__})") from err
    except httpx.TransportError as err:
        raise TransientError(f"{method} {url}: {type(err).__name__}: {err or 'connection failed'}") from err
    if response.status_code in policy.retry_status:
        raise TransientError(f"{method} {url}: {excerpt(response)}")
    return response


def request(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    timeout: float,
    policy: RetryPolicy,
    body: Any = None,
) -> httpx.Response:
    """Send one request with retries; return the response (any non-transient status).

    With a readiness policy, retries stop at the deadline and an attempt never runs past it,
    except that an endpoint first reached after the deadline still gets one full attempt.

    Raises :class:`EndpointError` whose message names the URL, the attempts made and the last
    thing that came back when the endpoint stayed unavailable.
    """
    attempts = 0
    started = time.monotonic()
    try:
        for attempt in _retrying(policy):
            with attempt:
                attempts += 1
                return _attempt(client, method, url, body, timeout, policy)
    except TransientError as err:
        waited = time.monotonic() - started
        raise EndpointError(f"still unavailable after {attempts} attempt(s) over {waited:.1f} s; last: {err}") from err
    raise AssertionError("unreachable: tenacity either returns or raises")  # pragma: no cover


def request_ok(
    client: httpx.Client,
    method: str,
    url: str,
    *,
    timeout: float,
    policy: RetryPolicy,
    body: Any = None,
    refusal: Callable[[httpx.Response], str] = excerpt,
) -> httpx.Response:
    """:func:`request` that must answer HTTP 200: else :class:`EndpointError` naming the method, the URL
    and what came back (``refusal`` of the response: by default its status and body excerpt)."""
    response = request(client, method, url, timeout=timeout, policy=policy, body=body)
    if response.status_code != 200:
        raise EndpointError(f"{method} {url}: expected HTTP 200, got {refusal(response)}")
    return response


class Endpoint:
    """One HTTP endpoint of a model server (a variant's Service, the traffic Service or the Gateway):
    the base of the per-API clients (:class:`smoke.tgi.TgiClient`, :class:`smoke.openai.OpenAiClient`)."""

    def __init__(self, base_url: str, client: httpx.Client, request_timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.client = client
        self.request_timeout = request_timeout

    def url(self, path: str) -> str:
        """Absolute URL of ``path`` on this endpoint."""
        return f"{self.base_url}{path}"

    def get_ok(self, path: str, policy: RetryPolicy) -> tuple[str, httpx.Response]:
        """``GET path`` that must answer 200; its URL and response."""
        url = self.url(path)
        return url, request_ok(self.client, "GET", url, timeout=self.request_timeout, policy=policy)

    def health(self, policy: RetryPolicy) -> None:
        """``GET /health`` must answer 200."""
        self.get_ok("/health", policy)


def json_body(response: httpx.Response, method: str, url: str) -> Any:
    """The decoded JSON body, or :class:`EndpointError` saying what came back instead."""
    try:
        return response.json()
    except ValueError as err:
        raise EndpointError(f"{method} {url}: expected JSON, got {excerpt(response)}") from err
