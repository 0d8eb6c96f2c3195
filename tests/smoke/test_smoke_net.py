"""Retry behaviour of smoke.net against real local servers: what is retried, and the hard deadline."""

from __future__ import annotations

import re
import time
from collections.abc import Callable

import httpx
import pytest

from smoke.net import EndpointError, RetryPolicy, request
from tests.smoke.servers import SMALL_ID, RunningServer


def test_readiness_retries_503_until_the_server_is_healthy(tgi_server: Callable[..., RunningServer]) -> None:
    server = tgi_server(SMALL_ID, unhealthy_first=2)

    with httpx.Client() as client:
        response = request(
            client, "GET", f"{server.url}/health", timeout=5, policy=RetryPolicy.readiness(time.monotonic() + 10)
        )

    assert response.status_code == 200
    assert server.behaviour.log == [("GET", "/health")] * 3


def test_http_500_is_returned_at_once_not_retried(tgi_server: Callable[..., RunningServer]) -> None:
    server = tgi_server(SMALL_ID, generate_status=500)

    with httpx.Client() as client:
        response = request(
            client,
            "POST",
            f"{server.url}/generate",
            timeout=5,
            policy=RetryPolicy.readiness(time.monotonic() + 10),
            body={"inputs": "x"},
        )

    assert response.status_code == 500
    assert server.behaviour.log == [("POST", "/generate")]


def test_retries_stop_before_the_deadline_and_say_what_came_back(free_port_factory: Callable[[], int]) -> None:
    url = f"http://127.0.0.1:{free_port_factory()}/health"
    started = time.monotonic()

    with httpx.Client() as client, pytest.raises(EndpointError) as caught:
        request(client, "GET", url, timeout=5, policy=RetryPolicy.readiness(started + 1.0))

    assert time.monotonic() - started < 1.5  # the last attempt's timeout is capped at the deadline
    assert re.match(r"still unavailable after [2-9] attempt\(s\) over 0\.\d s", str(caught.value))
    assert f"last: GET {url}: ConnectError" in str(caught.value)


def test_an_endpoint_first_reached_after_the_deadline_still_gets_one_attempt(
    tgi_server: Callable[..., RunningServer],
) -> None:
    healthy = tgi_server(SMALL_ID)
    starting = tgi_server(SMALL_ID, unhealthy_first=5)
    past = RetryPolicy.readiness(time.monotonic() - 1.0)

    with httpx.Client() as client:
        response = request(client, "GET", f"{healthy.url}/health", timeout=5, policy=past)
        with pytest.raises(EndpointError, match="after 1 attempt"):
            request(client, "GET", f"{starting.url}/health", timeout=5, policy=past)

    assert response.status_code == 200
    assert starting.behaviour.log == [("GET", "/health")]


def test_brief_policy_gives_up_after_three_attempts(tgi_server: Callable[..., RunningServer]) -> None:
    server = tgi_server(SMALL_ID, unhealthy_first=10)

    with httpx.Client() as client, pytest.raises(EndpointError, match="HTTP 503"):
        request(client, "GET", f"{server.url}/health", timeout=5, policy=RetryPolicy.brief())

    assert len(server.behaviour.log) == 3
