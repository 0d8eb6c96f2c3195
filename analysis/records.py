"""What the load generator records per request, and the error kinds it tells apart."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from enum import StrEnum
from typing import Any


class ErrorKind(StrEnum):
    """Why a request failed; one kind per failed request."""

    TIMEOUT = "timeout"
    """No complete answer within the request timeout (connect, first byte or the whole stream)."""
    CONNECT = "connect"
    """The connection could not be made (refused, reset before the response, DNS)."""
    HTTP_4XX = "http_4xx"
    """The server answered 4xx (422 validation, 429 overloaded, ...) instead of a stream."""
    HTTP_5XX = "http_5xx"
    """The server answered 5xx (424 is TGI's generation error; 503 unhealthy, ...)."""
    STREAM_ERROR = "stream_error"
    """The stream started and then carried an error event (TGI ``{"error": ...}``)."""
    PROTOCOL = "protocol"
    """The answer was not the streaming protocol: bad SSE/JSON, cut off, no final event."""
    CLIENT_OVERLOAD = "client_overload"
    """Open loop only: the arrival was not sent because the in-flight cap was reached."""


@dataclass
class RequestRecord:
    """One request: timings in seconds from the request's start, tokens, and outcome."""

    target: str
    """``stable``, ``canary`` or ``traffic``."""
    index: int
    """Order of the request within its target (0-based)."""
    prompt: str
    """Name of the prompt (case name, or ``<file>:<line>`` for a JSONL prompt)."""
    started_s: float
    """Start time relative to the start of the run."""
    scheduled_s: float | None = None
    """Open loop: when the arrival was due (from the run start); ``started_s - scheduled_s`` is the client's lag."""
    ttft_s: float | None = None
    """Time to first token (first non-empty token event)."""
    e2e_s: float | None = None
    """End-to-end latency: until the final event (or the end of the stream)."""
    itl_s: list[float] = field(default_factory=list)
    """Gaps between consecutive token events."""
    input_tokens: int | None = None
    """Prompt tokens as reported by the server (TGI ``details.input_length``; OpenAI ``usage``)."""
    output_tokens: int = 0
    """Generated tokens: the server's count when reported, else the number of token events."""
    status: int | None = None
    """HTTP status of the response, when one came."""
    error: ErrorKind | None = None
    error_detail: str = ""
    text: str = ""
    """The generated text (kept for the case check; trimmed in JSON output)."""
    case_pass: bool | None = None
    """Whether the text met the prompt's expectation for this variant; None when not scored."""
    finish_reason: str | None = None

    @property
    def ok(self) -> bool:
        """The request completed with a final event and no error."""
        return self.error is None

    @property
    def tokens_per_s(self) -> float | None:
        """Output tokens per second of end-to-end time (what a reader of the stream experiences)."""
        if self.error is not None or not self.e2e_s or self.output_tokens <= 0:
            return None
        return self.output_tokens / self.e2e_s

    @property
    def mean_itl_s(self) -> float | None:
        """Mean inter-token gap of this request; None with fewer than two tokens."""
        if self.error is not None or not self.itl_s:
            return None
        return sum(self.itl_s) / len(self.itl_s)

    def to_dict(self, text_limit: int = 200) -> dict[str, Any]:
        """JSON-ready form; the text is clipped to ``text_limit`` characters."""
        out = asdict(self)
        out["error"] = self.error.value if self.error else None
        out["text"] = self.text[:text_limit]
        out["tokens_per_s"] = self.tokens_per_s
        out["mean_itl_s"] = self.mean_itl_s
        return out
