"""Server-Sent Events (WHATWG HTML §9.2), as TGI's ``/generate_stream`` and the OpenAI-compatible
streaming routes send them: the one parser of the smoke gate and the analysis (plain Python)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field


@dataclass
class SseParser:
    """Incremental Server-Sent Events parser: feed lines, get ``data`` payloads.

    Only the ``data`` field matters here; ``event``/``id``/``retry`` fields and ``:`` comments
    are accepted and ignored. One optional space after the colon is stripped, as the spec says
    (TGI's axum writes ``data:`` with none, vLLM ``data: `` with one).
    """

    _data: list[str] = field(default_factory=list)

    def feed(self, line: str) -> str | None:
        """Feed one line (without its line ending); return an event's data when a blank line ends it."""
        if line == "":
            if not self._data:
                return None
            data = "\n".join(self._data)
            self._data = []
            return data
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
        return None

    def flush(self) -> str | None:
        """The data of an event not closed by a blank line at the end of the stream."""
        return self.feed("")


def sse_data(lines: Iterable[str]) -> Iterator[str]:
    """Every event's ``data`` in a whole stream's lines (line endings already removed)."""
    parser = SseParser()
    for line in lines:
        data = parser.feed(line)
        if data is not None:
            yield data
    last = parser.flush()
    if last is not None:
        yield last
