"""The smoke gate in gateway mode, end to end on loopback: ``smoke.cli.main`` with the arguments the program
writes (``stacks.gates.smoke_plan``) against a small L7 gateway that applies the program's own HTTPRoute
rules (``components.route.route_rules``) per request, over two TGI-protocol servers."""

from __future__ import annotations

import json
import random
import threading
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from http.server import BaseHTTPRequestHandler
from typing import Any

import httpx
import pytest

from components.route import route_rules
from components.split import route_weights
from stacks.gates import smoke_plan
from stacks.settings import parse_settings
from tests.loopback import start_http
from tests.samples import gateway_split, minimal
from tests.smoke.servers import RunningServer

HEADER = ("x-llm-ab-variant", "canary")
STABLE_HEADER = ("x-llm-ab-variant", "stable")


class RouteGateway:
    """Gateway API semantics for our rules: the rule whose header matches all hold wins (more header matches
    first), else the weighted rule picks a backend per request with probability weight / sum."""

    def __init__(self, rules: Sequence[Mapping[str, Any]], services: Mapping[str, str], seed: int,
                 stops: list[Callable[[], None]]) -> None:
        self.rules = sorted(rules, key=lambda r: -max(len(m.get("headers", [])) for m in r["matches"]))
        self.services = services
        self.rng = random.Random(seed)
        self.lock = threading.Lock()
        self.routed: Counter[str] = Counter()
        self.client = httpx.Client(timeout=10)  # keep-alive to the backends, like a real data plane
        stops.append(self.client.close)
        gateway = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *_: Any) -> None:
                """Quiet."""

            def _forward(self) -> None:
                backend = gateway.choose({k.lower(): v for k, v in self.headers.items()})
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                upstream = gateway.client.request(
                    self.command, f"{gateway.services[backend]}{self.path}", content=body,
                    headers={"Content-Type": self.headers.get("Content-Type", "")})
                self.send_response(upstream.status_code)
                self.send_header("Content-Type", upstream.headers.get("content-type", "application/json"))
                self.send_header("Content-Length", str(len(upstream.content)))
                self.end_headers()
                self.wfile.write(upstream.content)

            do_GET = do_POST = _forward  # noqa: N815

        server = start_http(Handler, stops)
        host, port = server.server_address[:2]
        self.url = f"http://{host}:{port}"

    def choose(self, headers: Mapping[str, str]) -> str:
        for rule in self.rules:
            for match in rule["matches"]:
                wanted = match.get("headers", [])
                if all(headers.get(h["name"].lower()) == h["value"] for h in wanted):
                    refs = rule["backendRefs"]
                    with self.lock:
                        pick = self.rng.choices(refs, weights=[r.get("weight", 1) for r in refs])[0]["name"]
                        self.routed[f"{pick} {'header' if wanted else 'weighted'}"] += 1
                    return str(pick)
        raise AssertionError(f"no rule matches {headers}")


@pytest.fixture
def gateway(stable_and_canary: tuple[RunningServer, RunningServer]) -> Iterator[Callable[..., RouteGateway]]:
    stable, canary = stable_and_canary
    services = {"text-generation-inference-stable": stable.url, "text-generation-inference-canary": canary.url}
    stops: list[Callable[[], None]] = []

    def start(percent: float, headers: Mapping[str, tuple[str, str]], seed: int = 5) -> RouteGateway:
        return RouteGateway(route_rules(route_weights(percent), headers), services, seed, stops)

    yield start
    for stop in reversed(stops):
        stop()


def program_argv(percent: float, url: str, *, headers: bool = True, samples: int = 400) -> list[str]:
    """What the program passes the smoke Job in gateway mode, pointed at ``url`` and the shipped cases."""
    split = gateway_split(canaryPercent=percent, gateway={"name": "gw", "namespace": "gateway-system", "url": url})
    if not headers:
        split = {k: v for k, v in split.items() if not k.endswith("Header")}
    raw = {**minimal(), "split": split, "smoke": {"samples": samples}}
    plan = smoke_plan(parse_settings(raw))
    return [a.replace("/opt/smoke-cases/", "smoke/cases/") for a in plan.to_argv()] + ["--timeout", "10"]


def test_each_variant_passes_its_checks_through_the_gateway_with_its_header(run_cli, gateway) -> None:
    gw = gateway(10, {"canary": HEADER, "stable": STABLE_HEADER})
    code, out, err = run_cli(*program_argv(10, gw.url), "--json")
    assert code == 0, err
    report = json.loads(out)
    checks = {(c["target"], c["name"]): c for c in report["checks"]}
    assert checks[("canary", "model")]["data"]["model_id"].split("/")[-2] == "flan-t5-base"
    assert checks[("stable", "model")]["data"]["model_id"].split("/")[-2] == "flan-t5-small"
    assert all(c["status"] == "pass" for c in report["checks"]), [c for c in report["checks"] if c["status"] != "pass"]
    # Every variant check went by header; the split samples went by weight.
    assert gw.routed["text-generation-inference-canary header"] >= 3
    assert gw.routed["text-generation-inference-stable header"] >= 3
    split = report["split"]
    assert split["expected"] == pytest.approx(0.10) and split["passed"]
    assert gw.routed["text-generation-inference-canary weighted"] + gw.routed[
        "text-generation-inference-stable weighted"] == split["samples"] + 1  # + the traffic /health


def test_the_split_check_tests_the_declared_share_through_the_route(run_cli, gateway) -> None:
    # The route really gives 50 %; the stack declares 10 %: the same sequential test fails it.
    gw = gateway(50, {"canary": HEADER})
    code, out, _ = run_cli(*program_argv(10, gw.url), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["split"]["expected"] == pytest.approx(0.10) and not report["split"]["passed"]
    assert report["split"]["observed"] > 0.3


def test_a_one_percent_canary_is_checked_at_one_percent(run_cli, gateway) -> None:
    gw = gateway(1, {"canary": HEADER, "stable": STABLE_HEADER}, seed=3)
    code, out, err = run_cli(*program_argv(1, gw.url, samples=1000), "--json")
    assert code == 0, err
    assert json.loads(out)["split"]["expected"] == pytest.approx(0.01)


def test_a_bad_header_flag_is_a_usage_error(run_cli) -> None:
    code, _, err = run_cli("--canary-url", "http://x", "--canary-header", "no colon here")
    assert code == 2 and "--canary-header: must be an HTTP header match written 'name: value'" in err
    code, _, err = run_cli("--tgi-url", "http://x", "--stable-header", "a: b")
    assert code == 2 and "--stable-header needs --stable-url" in err


def test_after_a_rollback_to_0_percent_the_canary_is_still_checked_by_its_header(run_cli, gateway) -> None:
    gw = gateway(0, {"canary": HEADER, "stable": STABLE_HEADER})
    code, out, err = run_cli(*program_argv(0, gw.url), "--json")
    assert code == 0, err
    report = json.loads(out)
    checks = {(c["target"], c["name"]): c["status"] for c in report["checks"]}
    assert checks[("canary", "model")] == "pass" and checks[("traffic", "split")] == "pass"
    assert report["split"]["canary"] == 0 and gw.routed["text-generation-inference-canary weighted"] == 0
