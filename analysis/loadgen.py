"""The load generator: streamed requests in open loop (Poisson arrivals) or closed loop (N clients).

Every run is bounded twice: at most ``requests`` requests per target, and no request starts
after ``duration_s``; a started request ends within ``request_timeout_s``. So a phase lasts at
most ``duration_s + request_timeout_s``.

Targets of one phase are loaded at the same time with the same prompt sequence (and, in open
loop, the same arrival times), so time-varying conditions hit both variants alike. The traffic
Service runs in its own phase afterwards, so its load does not perturb the per-variant figures.

While a phase runs, each target's ``/metrics`` is scraped every ``scrape_interval_s`` for the
gauges (queue size, batch size); the counters and histograms are read before and after.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import httpx

from . import metrics
from .engines import (
    OpenAiEngine,
    SseParser,
    StreamErrorEvent,
    StreamProtocolError,
    StreamState,
    TgiEngine,
    engine,
)
from .plan import SCRAPE_TIMEOUT_S
from .prompts import Prompt
from .records import ErrorKind, RequestRecord

MODES = ("open", "closed")
BODY_EXCERPT = 200


@dataclass(frozen=True)
class Target:
    """One endpoint to load: a variant's own Service or the traffic Service."""

    name: str
    url: str
    engine: str = "tgi"
    model: str | None = None
    """Model the target serves: scores the case expectations meant for it; OpenAI ``model`` field."""

    def stream_url(self) -> str:
        """Absolute URL of the streaming endpoint."""
        return self.url.rstrip("/") + engine(self.engine).path

    def metrics_url(self) -> str:
        """Absolute URL of the Prometheus endpoint."""
        return self.url.rstrip("/") + "/metrics"


@dataclass(frozen=True)
class LoadPlan:
    """How much load, in which mode, with which bounds."""

    mode: str = "closed"
    rate: float | None = None
    """Open loop: mean arrivals per second per target."""
    concurrency: int | None = None
    """Closed loop: clients per target, each sending its next request when the last one ends."""
    requests: int = 100
    """At most this many requests per target."""
    duration_s: float = 60.0
    """No request starts later than this after the phase began."""
    request_timeout_s: float = 60.0
    connect_timeout_s: float = 5.0
    max_inflight: int = 256
    """Open loop: arrivals beyond this many requests in flight are not sent (recorded as client_overload)."""
    seed: int = 0
    scrape_interval_s: float = 1.0
    """In-run ``/metrics`` scrape period for the gauges; 0 turns in-run scraping off."""

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ValueError(f"mode must be one of {', '.join(MODES)}, got {self.mode!r}")
        if self.mode == "open" and (self.rate is None or not self.rate > 0):
            raise ValueError(f"open loop needs a rate > 0 requests/s, got {self.rate}")
        if self.mode == "closed" and (self.concurrency is None or self.concurrency < 1):
            raise ValueError(f"closed loop needs a concurrency >= 1, got {self.concurrency}")
        if self.requests < 1:
            raise ValueError(f"requests must be >= 1, got {self.requests}")
        if not self.duration_s > 0 or not self.request_timeout_s > 0:
            raise ValueError("duration and request timeout must be > 0 seconds")

    def describe(self) -> str:
        """One line for the run plan."""
        load = (
            f"open loop, Poisson arrivals at {self.rate:g}/s"
            if self.mode == "open"
            else (f"closed loop, {self.concurrency} concurrent clients")
        )
        return (
            f"{load}; at most {self.requests} requests or {self.duration_s:g} s per target, "
            f"request timeout {self.request_timeout_s:g} s"
        )


@dataclass
class ServerMetrics:
    """A target's scrapes around one phase."""

    before: metrics.Snapshot | None = None
    after: metrics.Snapshot | None = None
    during: metrics.GaugeSamples = field(default_factory=metrics.GaugeSamples)
    error: str | None = None
    """Why the metrics are missing (first scrape problem), when they are."""

    def deltas(self) -> list[metrics.MetricDelta]:
        """The family deltas over the phase (empty when a scrape failed)."""
        if self.before is None or self.after is None:
            return []
        return metrics.interesting(metrics.deltas(self.before, self.after, self.during))


@dataclass
class PhaseResult:
    """Records and server metrics of every target of one phase."""

    records: dict[str, list[RequestRecord]]
    server: dict[str, ServerMetrics]
    started_at: float
    """Wall-clock start (``time.time()``)."""
    elapsed_s: float


OnRecord = Callable[[RequestRecord], None]


class Connections:
    """One single-connection ``httpx.AsyncClient`` per concurrent request.

    A shared pool costs O(pooled connections) per request in httpcore (each pooled connection
    is checked for expiry through anyio's socket attributes), which held a 32-client closed loop
    to a third of 8 clients' rate here. A client per worker keeps each pool at one connection;
    it also opens as many connections as there are concurrent requests, as real users would,
    so a per-connection split (a Kubernetes Service) sees them all.
    """

    def __init__(self, plan: LoadPlan) -> None:
        self.timeout = httpx.Timeout(plan.request_timeout_s, connect=plan.connect_timeout_s)
        # One TLS context for all clients: building one loads the CA bundle (~30 ms each here).
        self.tls = httpx.create_ssl_context(trust_env=False)
        self.idle: list[httpx.AsyncClient] = []
        self.opened: list[httpx.AsyncClient] = []

    def take(self) -> httpx.AsyncClient:
        """An idle client, or a new one."""
        if self.idle:
            return self.idle.pop()
        client = httpx.AsyncClient(
            limits=httpx.Limits(max_connections=1, max_keepalive_connections=1),
            timeout=self.timeout,
            verify=self.tls,
            trust_env=False,
        )
        self.opened.append(client)
        return client

    def give(self, client: httpx.AsyncClient) -> None:
        """Return a client after its request ended."""
        self.idle.append(client)

    async def aclose(self) -> None:
        """Close every client opened."""
        await asyncio.gather(*(c.aclose() for c in self.opened), return_exceptions=True)


def _classify_transport(err: httpx.TransportError, got_response: bool) -> ErrorKind:
    if isinstance(err, httpx.ConnectError | httpx.ConnectTimeout):
        return ErrorKind.CONNECT
    if isinstance(err, httpx.TimeoutException):
        return ErrorKind.TIMEOUT
    if isinstance(err, httpx.RemoteProtocolError | httpx.DecodingError):
        return ErrorKind.PROTOCOL
    return ErrorKind.PROTOCOL if got_response else ErrorKind.CONNECT


async def stream_one(
    client: httpx.AsyncClient,
    target: Target,
    prompt: Prompt,
    index: int,
    t0: float,
    timeout_s: float,
    scheduled_s: float | None = None,
) -> RequestRecord:
    """Send one streamed request and record its timings, tokens and outcome (never raises)."""
    eng: TgiEngine | OpenAiEngine = engine(target.engine)
    start = time.perf_counter()
    record = RequestRecord(
        target=target.name, index=index, prompt=prompt.name, started_s=start - t0, scheduled_s=scheduled_s
    )
    state = StreamState()
    parser_feed = _Feeder(eng, state, start, record)
    try:
        async with asyncio.timeout(timeout_s):
            async with client.stream("POST", target.stream_url(), json=eng.body(prompt, target.model)) as response:
                record.status = response.status_code
                if response.status_code != 200:
                    body = (await response.aread()).decode("utf-8", "replace").strip().replace("\n", " ")
                    record.error = ErrorKind.HTTP_4XX if response.status_code < 500 else ErrorKind.HTTP_5XX
                    record.error_detail = f"HTTP {response.status_code}: {body[:BODY_EXCERPT] or '(empty body)'}"
                    return record
                async for line in response.aiter_lines():
                    parser_feed.line(line)
                parser_feed.end()
        if not state.final:
            record.error = ErrorKind.PROTOCOL
            record.error_detail = f"stream ended after {state.token_events} token event(s) without the final event"
    except TimeoutError:
        record.error = ErrorKind.TIMEOUT
        record.error_detail = f"no complete answer within {timeout_s:g} s ({state.token_events} token events seen)"
    except httpx.TransportError as err:
        record.error = _classify_transport(err, record.status is not None)
        record.error_detail = f"{type(err).__name__}: {err or 'transport error'}"
    except StreamErrorEvent as err:
        record.error = ErrorKind.STREAM_ERROR
        record.error_detail = str(err)
    except StreamProtocolError as err:
        record.error = ErrorKind.PROTOCOL
        record.error_detail = str(err)
    record.text = state.text
    record.output_tokens = state.output_tokens
    record.input_tokens = state.input_tokens
    record.finish_reason = state.finish_reason
    if record.ok:
        expectation = prompt.expectation_for(target.model)
        if expectation is not None:
            record.case_pass = expectation.mismatch(state.text) is None
    else:
        record.e2e_s = None
    return record


class _Feeder:
    """Feeds SSE lines to the decoder and timestamps token events."""

    def __init__(self, eng: TgiEngine | OpenAiEngine, state: StreamState, start: float, record: RequestRecord) -> None:
        self.eng = eng
        self.state = state
        self.start = start
        self.record = record
        self.parser = SseParser()
        self.last_token_at: float | None = None

    def line(self, line: str) -> None:
        data = self.parser.feed(line)
        if data is not None:
            self._event(data)

    def end(self) -> None:
        data = self.parser.flush()
        if data is not None:
            self._event(data)

    def _event(self, data: str) -> None:
        if self.state.final:
            return  # anything after the final event (TGI sends nothing; OpenAI may send usage before [DONE])
        decoded = self.eng.decode(data, self.state)
        now = time.perf_counter()
        if decoded.tokens:
            if self.record.ttft_s is None:
                self.record.ttft_s = now - self.start
            elif self.last_token_at is not None:
                self.record.itl_s.append(now - self.last_token_at)
            self.last_token_at = now
        if self.state.final:
            self.record.e2e_s = now - self.start


async def _closed_loop(
    pool: Connections, target: Target, prompts: Sequence[Prompt], plan: LoadPlan, t0: float, sink: OnRecord
) -> None:
    counter = itertools.count()
    deadline = t0 + plan.duration_s

    async def client_loop() -> None:
        client = pool.take()
        while time.perf_counter() < deadline:
            index = next(counter)
            if index >= plan.requests:
                return
            prompt = prompts[index % len(prompts)]
            sink(await stream_one(client, target, prompt, index, t0, plan.request_timeout_s))

    assert plan.concurrency is not None
    await asyncio.gather(*(client_loop() for _ in range(plan.concurrency)))


def arrival_times(rate: float, requests: int, duration_s: float, seed: int) -> list[float]:
    """Poisson arrival offsets (seconds): exponential gaps of mean ``1/rate``, within both bounds."""
    rng = random.Random(seed)
    times: list[float] = []
    at = 0.0
    while len(times) < requests:
        at += rng.expovariate(rate)
        if at >= duration_s:
            break
        times.append(at)
    return times


async def _open_loop(
    pool: Connections, target: Target, prompts: Sequence[Prompt], plan: LoadPlan, t0: float, sink: OnRecord
) -> None:
    assert plan.rate is not None
    tasks: set[asyncio.Task[None]] = set()

    async def send(index: int, scheduled: float) -> None:
        prompt = prompts[index % len(prompts)]
        client = pool.take()
        try:
            sink(await stream_one(client, target, prompt, index, t0, plan.request_timeout_s, scheduled_s=scheduled))
        finally:
            pool.give(client)

    for index, offset in enumerate(arrival_times(plan.rate, plan.requests, plan.duration_s, plan.seed)):
        delay = t0 + offset - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        if len(tasks) >= plan.max_inflight:
            sink(
                RequestRecord(
                    target=target.name,
                    index=index,
                    prompt=prompts[index % len(prompts)].name,
                    started_s=time.perf_counter() - t0,
                    scheduled_s=offset,
                    error=ErrorKind.CLIENT_OVERLOAD,
                    error_detail=f"{plan.max_inflight} requests already in flight",
                )
            )
            continue
        task = asyncio.create_task(send(index, offset))
        tasks.add(task)
        task.add_done_callback(tasks.discard)
    if tasks:
        await asyncio.gather(*tasks)


async def scrape(client: httpx.AsyncClient, url: str, timeout_s: float) -> metrics.Snapshot:
    """GET ``url`` and parse it; raise :class:`metrics.MetricsParseError` or ``httpx`` errors."""
    response = await client.get(url, timeout=timeout_s)
    if response.status_code != 200:
        raise metrics.MetricsParseError(f"HTTP {response.status_code}")
    return metrics.parse(response.text)


async def _scrape_into(client: httpx.AsyncClient, target: Target, server: ServerMetrics, slot: str) -> None:
    try:
        snapshot = await scrape(client, target.metrics_url(), timeout_s=SCRAPE_TIMEOUT_S)
    except (httpx.HTTPError, metrics.MetricsParseError) as err:
        server.error = server.error or f"GET {target.metrics_url()}: {type(err).__name__}: {err}"
        return
    if slot == "during":
        server.during.add(snapshot)
    else:
        setattr(server, slot, snapshot)


async def _sample_gauges(
    client: httpx.AsyncClient,
    targets: Sequence[Target],
    server: dict[str, ServerMetrics],
    interval: float,
    stop: asyncio.Event,
) -> None:
    while not stop.is_set():
        await asyncio.gather(
            *(_scrape_into(client, t, server[t.name], "during") for t in targets if server[t.name].error is None)
        )
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def run_phase_async(
    targets: Sequence[Target],
    prompts: Sequence[Prompt],
    plan: LoadPlan,
    on_record: OnRecord | None = None,
    scrape_metrics: bool = True,
) -> PhaseResult:
    """Load every target at once; return their records and server metrics."""
    if not prompts:
        raise ValueError("no prompts to send")
    records: dict[str, list[RequestRecord]] = {t.name: [] for t in targets}
    server = {t.name: ServerMetrics() for t in targets}
    pool = Connections(plan)

    def sink(record: RequestRecord) -> None:
        records[record.target].append(record)
        if on_record is not None:
            on_record(record)

    async with httpx.AsyncClient(timeout=10.0, trust_env=False) as client:  # for /metrics only
        if scrape_metrics:
            await asyncio.gather(*(_scrape_into(client, t, server[t.name], "before") for t in targets))
        stop = asyncio.Event()
        sampler = None
        if scrape_metrics and plan.scrape_interval_s > 0:
            sampler = asyncio.create_task(_sample_gauges(client, targets, server, plan.scrape_interval_s, stop))
        started_at = time.time()
        t0 = time.perf_counter()
        loop = _open_loop if plan.mode == "open" else _closed_loop
        try:
            await asyncio.gather(*(loop(pool, t, prompts, plan, t0, sink) for t in targets))
        finally:
            await pool.aclose()
        elapsed = time.perf_counter() - t0
        stop.set()
        if sampler is not None:
            await sampler
        if scrape_metrics:
            await asyncio.gather(
                *(_scrape_into(client, t, server[t.name], "after") for t in targets if server[t.name].error is None)
            )
    for target_records in records.values():
        target_records.sort(key=lambda r: r.index)
    return PhaseResult(records=records, server=server, started_at=started_at, elapsed_s=elapsed)


def run_phase(
    targets: Sequence[Target],
    prompts: Sequence[Prompt],
    plan: LoadPlan,
    on_record: OnRecord | None = None,
    scrape_metrics: bool = True,
) -> PhaseResult:
    """Synchronous :func:`run_phase_async`."""
    return asyncio.run(run_phase_async(targets, prompts, plan, on_record, scrape_metrics))
