"""The HTTP probe's client against answers no sane server sends (issues 15 and 16).

- A differential test: on a corpus of odd answers, our client (sources/wire.py)
  and h11 agree on accept or reject, and on status and body, but for the
  documented exceptions in DIFFERENCES.
- A fuzz test: any bytes from a loopback server end the run in a result with a
  reason, never an exception the scheduler would record as `internal`.
- File descriptors running out make a `local` failure, which does not count
  against the service.
"""

from __future__ import annotations

import asyncio
import os
import resource
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import h11
import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from outagewatch.clock import FakeClock, SystemClock
from outagewatch.config import DisruptionConfig
from outagewatch.detect.disruption import ServiceEvidence, judge
from outagewatch.detect.tracker import ProbeStreaks, probe_evidence
from outagewatch.observations import HTTP_FAILURE_REASONS, SUB_REASONS, ProbeResult
from outagewatch.pipeline import Pipeline
from outagewatch.sources.base import RunContext
from outagewatch.sources.client import HttpClients, PhaseTimer
from outagewatch.sources.errors import WireError
from outagewatch.sources.wire import Fetcher, Request, Response, Url, ssl_context
from tests.scrape import scrape

from ..chat.conftest import anthropic_probe, run_probe, source_for
from ..daemon_process import free_port
from ..test_http_probe import probe, run

OK = b"HTTP/1.1 200 OK\r\n"

# (name, answer): a few dozen odd answers, each a whole exchange then the close.
CORPUS: list[tuple[str, bytes]] = [
    ("plain", OK + b"Content-Length: 2\r\n\r\nok"),
    ("no-reason-phrase", b"HTTP/1.1 200\r\nContent-Length: 2\r\n\r\nok"),
    ("empty-reason-phrase", b"HTTP/1.1 200 \r\nContent-Length: 2\r\n\r\nok"),
    ("http-1.0-to-close", b"HTTP/1.0 200 OK\r\n\r\nok"),
    ("http-1.1-to-close", OK + b"Server: x\r\n\r\nok"),
    ("bare-lf", b"HTTP/1.1 200 OK\nContent-Length: 2\n\nok"),
    ("bare-lf-mixed", OK + b"A: b\nContent-Length: 2\r\n\nok"),
    ("obs-fold", OK + b"X-Long: one\r\n two\r\nContent-Length: 2\r\n\r\nok"),
    ("obs-fold-tab", OK + b"Content-Length:\r\n\t2\r\n\r\nok"),
    ("fold-after-status-line", OK + b" X: y\r\nContent-Length: 2\r\n\r\nok"),
    ("length-list", OK + b"Content-Length: 2, 2\r\n\r\nok"),
    ("length-twice", OK + b"Content-Length: 2\r\nContent-Length: 2\r\n\r\nok"),
    ("length-conflict", OK + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\nok"),
    ("length-list-conflict", OK + b"Content-Length: 2, 3\r\n\r\nok"),
    ("length-negative", OK + b"Content-Length: -2\r\n\r\nok"),
    ("length-hex", OK + b"Content-Length: 0x2\r\n\r\nok"),
    ("length-short-body", OK + b"Content-Length: 5\r\n\r\nok"),
    ("length-long-body", OK + b"Content-Length: 1\r\n\r\nok"),
    (
        "length-and-chunked",
        OK + b"Content-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n",
    ),
    ("chunked", OK + b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n\r\n"),
    ("chunked-upper-hex", OK + b"Transfer-Encoding: chunked\r\n\r\nA\r\n0123456789\r\n0\r\n\r\n"),
    ("chunk-extensions", OK + b"Transfer-Encoding: chunked\r\n\r\n2;a=b;c\r\nok\r\n0;x\r\n\r\n"),
    ("chunked-trailers", OK + b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\nT: v\r\n\r\n"),
    ("chunked-no-last-chunk", OK + b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n"),
    ("chunked-no-final-crlf", OK + b"Transfer-Encoding: chunked\r\n\r\n2\r\nok\r\n0\r\n"),
    ("chunk-size-invalid", OK + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nok\r\n0\r\n\r\n"),
    ("chunk-size-negative", OK + b"Transfer-Encoding: chunked\r\n\r\n-2\r\nok\r\n0\r\n\r\n"),
    ("chunk-data-too-long", OK + b"Transfer-Encoding: chunked\r\n\r\n1\r\nok\r\n0\r\n\r\n"),
    ("transfer-coding-not-chunked", OK + b"Transfer-Encoding: identity\r\n\r\nok"),
    ("interim-100", b"HTTP/1.1 100 Continue\r\n\r\n" + OK + b"Content-Length: 2\r\n\r\nok"),
    (
        "interim-103-with-fields",
        b"HTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n" + OK + b"Content-Length: 2\r\n\r\nok",
    ),
    ("interim-11", b"HTTP/1.1 100 Continue\r\n\r\n" * 11 + OK + b"Content-Length: 0\r\n\r\n"),
    ("status-204-with-length", b"HTTP/1.1 204 No Content\r\nContent-Length: 5\r\n\r\n"),
    ("status-304", b"HTTP/1.1 304 Not Modified\r\n\r\n"),
    ("status-599", b"HTTP/1.1 599 Odd\r\nContent-Length: 0\r\n\r\n"),
    ("status-two-digits", b"HTTP/1.1 20 OK\r\nContent-Length: 0\r\n\r\n"),
    ("status-099", b"HTTP/1.1 099 Odd\r\nContent-Length: 0\r\n\r\n"),
    ("status-letters", b"HTTP/1.1 2OO OK\r\nContent-Length: 0\r\n\r\n"),
    ("version-2.0", b"HTTP/2.0 200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("not-http", b"SSH-2.0-OpenSSH_9.6\r\n\r\n"),
    ("lower-case-http", b"http/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"),
    ("space-before-colon", OK + b"Content-Length : 2\r\n\r\nok"),
    ("no-colon", OK + b"no colon here\r\nContent-Length: 2\r\n\r\nok"),
    ("empty-field-name", OK + b": v\r\nContent-Length: 2\r\n\r\nok"),
    ("nul-in-value", OK + b"X: a\x00b\r\nContent-Length: 2\r\n\r\nok"),
    ("cr-in-value", OK + b"X: a\rb\r\nContent-Length: 2\r\n\r\nok"),
    ("control-in-value", OK + b"X: a\x01b\r\nContent-Length: 2\r\n\r\nok"),
    ("obs-text-in-value", OK + b"X: caf\xe9\r\nContent-Length: 2\r\n\r\nok"),
    ("empty-value", OK + b"X:\r\nContent-Length: 2\r\n\r\nok"),
    (
        "huge-head",
        OK
        + b"".join(b"X-F%d: %s\r\n" % (i, b"f" * 1000) for i in range(40))
        + b"Content-Length: 2\r\n\r\nok",
    ),
    ("head-never-ends", OK + b"X: y\r\n"),
    ("length-plus-sign", OK + b"Content-Length: +2\r\n\r\nok"),
    ("length-with-spaces", OK + b"Content-Length:   2   \r\n\r\nok"),
    ("length-empty-list-item", OK + b"Content-Length: 2,,2\r\n\r\nok"),
    ("status-double-space", b"HTTP/1.1  200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("status-tab", b"HTTP/1.1\t200 OK\r\nContent-Length: 2\r\n\r\nok"),
    ("field-name-not-token", OK + b"X(A): b\r\nContent-Length: 2\r\n\r\nok"),
    ("chunked-bare-lf", OK + b"Transfer-Encoding: chunked\r\n\r\n2\nok\n0\n\n"),
    (
        "chunked-twice",
        OK + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"
        b"\r\n2\r\nok\r\n0\r\n\r\n",
    ),
    ("chunked-then-gzip", OK + b"Transfer-Encoding: chunked, gzip\r\n\r\nok"),
    ("blank-line-before-status", b"\r\n" + OK + b"Content-Length: 2\r\n\r\nok"),
    ("location-on-200", OK + b"Location: /x\r\nContent-Length: 2\r\n\r\nok"),
    ("nothing", b""),
]

# Where we differ from h11, and why (RFC 9112 sections).
DIFFERENCES: dict[str, str] = {
    # 6.3: a response whose Transfer-Encoding does not end in chunked is read until
    # the close; h11 supports no coding but chunked.
    "transfer-coding-not-chunked": "accepted",
    "chunked-then-gzip": "accepted",
    # 7.1.2: trailers are optional to process; the probe stops at the last chunk,
    # the connection closes anyway. h11 wants the trailer section's blank line.
    "chunked-no-final-crlf": "accepted",
    # 2.3: only HTTP/1.x is this protocol; h11 parses any digit.digit version.
    "version-2.0": "rejected",
    # 15.2 lets any number of 1xx come first; past 10 it is a server looping, and
    # reading on is how 5,000 of them once exhausted the daemon (issue 16).
    "interim-11": "rejected",
}


def _h11_reading(answer: bytes) -> tuple[int, bytes] | None:
    """Status and body as h11 reads them, None when it rejects the answer."""
    connection = h11.Connection(h11.CLIENT, max_incomplete_event_size=64 * 1024)
    connection.send(h11.Request(method="GET", target="/", headers=[("Host", "t")]))
    connection.send(h11.EndOfMessage())
    connection.receive_data(answer)
    connection.receive_data(b"")
    status, body = 0, b""
    try:
        while True:
            event = connection.next_event()
            if isinstance(event, h11.Response):
                status = event.status_code
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return status, body
            elif event is h11.NEED_DATA or isinstance(event, h11.ConnectionClosed):
                return None
    except h11.RemoteProtocolError:
        return None


async def _serve_once(answer: bytes) -> tuple[asyncio.Server, int]:
    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            await reader.readuntil(b"\r\n\r\n")
            writer.write(answer)
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


async def _our_reading(answer: bytes) -> tuple[int, bytes] | WireError:
    server, port = await _serve_once(answer)
    fetcher = Fetcher(
        Request("GET", Url(f"http://127.0.0.1:{port}/"), {}, None),
        ssl_context(),
        max_body_bytes=1 << 20,
        keep_body=True,
        follow_redirects=False,
        max_redirects=0,
    )

    async def no_lookup(host: str, port: int, family: str) -> list[tuple[int, str]]:
        raise AssertionError("an IP literal needs no lookup")

    try:
        async with asyncio.timeout(5):
            response: Response = await fetcher.fetch(no_lookup, "any", PhaseTimer(time.monotonic))
    except WireError as exc:
        return exc
    finally:
        server.close()
    return response.status, response.body


@pytest.mark.parametrize(("name", "answer"), CORPUS, ids=[name for name, _ in CORPUS])
async def test_client_and_h11_agree_on_odd_answers(name: str, answer: bytes) -> None:
    ours = await _our_reading(answer)
    theirs = _h11_reading(answer)
    if isinstance(ours, WireError):
        assert ours.reason in HTTP_FAILURE_REASONS and ours.reason != "timeout", ours.detail
        assert ours.detail
    difference = DIFFERENCES.get(name)
    if difference == "accepted":
        assert theirs is None and not isinstance(ours, WireError), (name, ours)
    elif difference == "rejected":
        assert theirs is not None and isinstance(ours, WireError), (name, theirs)
    elif theirs is None:
        assert isinstance(ours, WireError), (name, ours)
    else:
        assert ours == theirs, (name, ours.detail if isinstance(ours, WireError) else ours)


# Pieces an HTTP answer is made of, and a few that break it.
_PIECES = [
    b"HTTP/1.1 200 OK",
    b"HTTP/1.0 404 Not Found",
    b"HTTP/1.1 100 Continue",
    b"HTTP/1.1 302 Found",
    b"HTTP/1.1 204",
    b"\r\n",
    b"\n",
    b"\r",
    b" ",
    b"\t",
    b":",
    b"Content-Length: ",
    b"Transfer-Encoding: chunked",
    b"Content-Encoding: gzip",
    b"Content-Encoding: deflate",
    b"Location: ",
    b"Location: http://127.0.0.1:1/",
    b"Set-Cookie: a=b",
    b"cf-mitigated: challenge",
    b"0",
    b"2",
    b"ffffffffffffffff",
    b";ext",
    b"ok",
    b"\x00",
    b"\xff\xfe",
    b"\x1f\x8b\x08\x00",
]
_ANSWERS = st.one_of(
    st.binary(max_size=200),
    st.lists(st.one_of(st.sampled_from(_PIECES), st.binary(max_size=8)), max_size=40).map(b"".join),
)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(answer=_ANSWERS)
def test_any_answer_ends_in_a_result_with_a_reason(answer: bytes) -> None:
    async def one_run() -> ProbeResult:
        server, port = await _serve_once(answer)
        clients = HttpClients()
        ctx = RunContext(http=clients, clock=SystemClock(), log=structlog.get_logger("test"))
        try:
            return await run(probe(f"http://127.0.0.1:{port}/", timeout="1s"), ctx)
        finally:
            server.close()
            await clients.close()

    result = asyncio.run(one_run())
    if result.success is False:
        assert result.reason in HTTP_FAILURE_REASONS, result
        assert result.reason != "timeout", result  # the server closed: nothing to wait for
        assert result.detail and len(result.detail) <= 200
        assert result.sub_reason is None or result.sub_reason in SUB_REASONS[result.reason]


# File descriptors run out on this host.


@contextmanager
def no_file_descriptors_left() -> Iterator[None]:
    """Lower RLIMIT_NOFILE to the lowest free descriptor: no new one can be opened."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    lowest_free = os.open(os.devnull, os.O_RDONLY)  # the kernel hands out the lowest free
    os.close(lowest_free)
    resource.setrlimit(resource.RLIMIT_NOFILE, (lowest_free, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _verdict(results: list[ProbeResult], now: float) -> str | None:
    streaks = ProbeStreaks()
    for result in results:
        streaks.observe(result)
    evidence = ServiceEvidence("svc", (probe_evidence("p", streaks, 1.0, now - 100.0),))
    return judge(evidence, now, DisruptionConfig()).state


async def test_out_of_file_descriptors_is_local_and_no_reading_of_the_service(
    run_context: RunContext,
) -> None:
    source = probe(f"http://127.0.0.1:{free_port()}/")
    results = []
    for _ in range(5):
        with no_file_descriptors_left():
            results.append(await run(source, run_context))
    result = results[-1]
    assert (result.success, result.reason, result.sub_reason) == (False, "local", "fd_exhausted")
    assert result.detail == "Too many open files"
    now = time.time()
    # Five local failures say nothing: no fresh reading, so unknown, never disrupted.
    assert _verdict(results, now) == "unknown"
    # The same runs refused by the target are a service failing.
    refused = await run(source, run_context)
    assert (refused.reason, refused.sub_reason) == ("connect", "refused")
    assert _verdict([refused] * 5, now) == "disrupted"


async def test_local_failures_keep_the_success_gauge_and_are_logged_once(
    run_context: RunContext,
) -> None:
    source = probe(f"http://127.0.0.1:{free_port()}/", valid_status_codes=[200])
    pipeline = Pipeline(FakeClock())
    pipeline.ingest([ProbeResult("svc", "p", "http", 1.0, True, 0.01)])  # it was up
    with capture_logs() as logs:
        for _ in range(5):
            with no_file_descriptors_left():
                pipeline.ingest([await run(source, run_context)])
    registry = await scrape(pipeline.state)
    labels = {"service": "svc", "probe": "p"}
    # Not a page: the endpoint alert reads outagewatch_probe_success == 0.
    assert registry.get_sample_value("outagewatch_probe_success", labels) == 1
    assert registry.get_sample_value("outagewatch_probe_failures_total", labels) == 5
    reasons = {"service": "svc", "reason": "local", "sub_reason": "fd_exhausted"}
    assert registry.get_sample_value("outagewatch_probe_failure_reasons_total", reasons) == 5
    assert [(e["event"], e["detail"]) for e in logs] == [("probe_failing", "Too many open files")]
    # Local failures add no chart point: the success chart holds the one success only.
    assert [pct for _, pct in pipeline.state.history.success_percent("svc", 0.0)] == [100.0]
    assert not pipeline.state.history.events


async def test_chat_probe_out_of_file_descriptors_is_local(run_context: RunContext) -> None:
    # Keyless: with a key, reading its file would already fail (a credential error).
    config = anthropic_probe(f"http://127.0.0.1:{free_port()}/v1", None)
    source = source_for(config)
    with no_file_descriptors_left():
        result = await run_probe(source, run_context)
    assert result.chat is not None and result.chat.outcome == "local"
    assert (result.reason, result.sub_reason) == ("local", "fd_exhausted")


def test_corpus_names_are_unique(tmp_path: Path) -> None:
    assert len({name for name, _ in CORPUS}) == len(CORPUS)
    assert set(DIFFERENCES) <= {name for name, _ in CORPUS}
