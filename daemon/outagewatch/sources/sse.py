"""Incremental server-sent events parser (the WHATWG event-stream format).

Bytes go in as they arrive, in chunks cut anywhere; whole events come out.
Lines end in CRLF, LF or CR; ``:`` starts a comment (a keep-alive); ``data``
lines of one event are joined with newlines; a blank line dispatches the event;
one leading UTF-8 BOM is dropped.
An event still open when the stream ends is never dispatched: a cut stream
loses it, as the format says.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from outagewatch.sources.errors import SSEError

_LINE_END = re.compile(rb"\r\n|\r|\n")
_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class SSEEvent:
    event: str
    data: str


class SSEParser:
    """Feed it chunks; it returns the events each chunk completed."""

    def __init__(self, max_line_bytes: int = 1 << 20) -> None:
        self._buffer = bytearray()
        self._max_line = max_line_bytes
        self._event = ""
        self._data: list[str] = []
        self._skip_lf = False
        self._started = False  # past the stream's first bytes, where a BOM may be

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        if not self._started:
            # The format lets a stream begin with one UTF-8 BOM: not part of the first line.
            head = bytes(self._buffer) + chunk
            if len(head) < len(_BOM) and _BOM.startswith(head):
                self._buffer += chunk  # the BOM itself may be cut between chunks
                return []
            self._started = True
            self._buffer.clear()
            chunk = head.removeprefix(_BOM)
        if self._skip_lf and chunk.startswith(b"\n"):
            chunk = chunk[1:]  # the second half of a CRLF cut between two chunks
        self._skip_lf = False
        self._buffer += chunk
        events: list[SSEEvent] = []
        start = 0
        while match := _LINE_END.search(self._buffer, start):
            event = self._line(bytes(self._buffer[start : match.start()]))
            if event is not None:
                events.append(event)
            start = match.end()
        self._skip_lf = start > 0 and start == len(self._buffer) and self._buffer.endswith(b"\r")
        del self._buffer[:start]
        if len(self._buffer) > self._max_line:
            raise SSEError(f"a line longer than {self._max_line} bytes")
        return events

    def _line(self, raw: bytes) -> SSEEvent | None:
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise SSEError(f"invalid UTF-8 at byte {exc.start} of a line") from None
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "event":
            self._event = value
        elif name == "data":
            self._data.append(value)
        # `id` and `retry` steer reconnection, which a probe never does.
        return None

    def _dispatch(self) -> SSEEvent | None:
        event, data = self._event, self._data
        self._event, self._data = "", []
        if not data:
            return None
        return SSEEvent(event or "message", "\n".join(data))
