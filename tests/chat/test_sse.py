"""The event-stream parser: frames cut anywhere, every line ending, comments."""

from __future__ import annotations

import pytest

from outagewatch.sources.errors import SSEError
from outagewatch.sources.sse import SSEEvent, SSEParser

from .conftest import fixture_bytes


def parse_in_pieces(body: bytes, size: int) -> list[SSEEvent]:
    parser = SSEParser()
    events: list[SSEEvent] = []
    for start in range(0, len(body), size):
        events.extend(parser.feed(body[start : start + size]))
    return events


def test_recorded_anthropic_stream_parses_to_its_events() -> None:
    events = SSEParser().feed(fixture_bytes("anthropic-sse-stream.txt"))
    assert [e.event for e in events] == [
        "message_start",
        "content_block_start",
        "ping",
        *["content_block_delta"] * 4,
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    # Real streams pad their JSON before the closing brace; the data is kept as sent.
    assert events[-1].data == '{"type":"message_stop"              }'


@pytest.mark.parametrize("name", ["anthropic-sse-stream.txt", "openai-sse-stream.txt"])
def test_chunks_cut_at_any_byte_give_the_same_events(name: str) -> None:
    body = fixture_bytes(name)
    whole = SSEParser().feed(body)
    for size in (1, 2, 3, 7, 64, 1000):
        assert parse_in_pieces(body, size) == whole


@pytest.mark.parametrize("newline", [b"\r\n", b"\r", b"\n"])
def test_every_line_ending(newline: bytes) -> None:
    body = newline.join([b"event: a", b"data: 1", b"", b"data: 2", b"", b""])
    assert parse_in_pieces(body, 1) == [SSEEvent("a", "1"), SSEEvent("message", "2")]


def test_comments_are_keepalives_and_data_lines_join() -> None:
    body = b": keep-alive\n\ndata: first\ndata:second\nid: 7\nretry: 10\n\n"
    assert SSEParser().feed(body) == [SSEEvent("message", "first\nsecond")]


def test_event_open_at_the_end_is_not_dispatched() -> None:
    parser = SSEParser()
    assert parser.feed(b'event: message_stop\ndata: {"type":"message_stop"}\n') == []


def test_invalid_utf8_is_an_error() -> None:
    with pytest.raises(SSEError, match="UTF-8"):
        SSEParser().feed(b"data: \xff\xfe\n\n")


def test_endless_line_is_an_error() -> None:
    with pytest.raises(SSEError, match="longer than 16 bytes"):
        SSEParser(max_line_bytes=16).feed(b"data: " + b"x" * 32)


@pytest.mark.parametrize("size", [1, 2, 3, 4, 1000])
def test_a_leading_bom_is_dropped_and_the_first_event_kept(size: int) -> None:
    body = fixture_bytes("anthropic-sse-stream.txt")
    with_bom = parse_in_pieces(b"\xef\xbb\xbf" + body, size)
    assert with_bom == SSEParser().feed(body)
    assert with_bom[0].event == "message_start"


def test_only_a_leading_bom_is_dropped() -> None:
    # A BOM later in the stream is text of its line, as the format says.
    events = SSEParser().feed(b"data: a\n\n\xef\xbb\xbfdata: b\n\n")
    assert [e.data for e in events] == ["a"]
