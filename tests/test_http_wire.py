"""The HTTP probe's own HTTP/1.1 client (sources/wire.py) against servers that speak raw bytes."""

from __future__ import annotations

import asyncio
import gzip
import socket
import ssl
import struct
import zlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiohttp import web
from pydantic import ValidationError

from outagewatch.sources.base import RunContext
from outagewatch.sources.client import USER_AGENT

from .conftest import Serve
from .test_http_probe import app, probe, run

Answer = Callable[[bytes, asyncio.StreamWriter], Awaitable[None]]


class RawServer:
    """Reads a request head (and a Content-Length body), then lets the test answer in bytes."""

    def __init__(
        self,
        answer: Answer | bytes | list[bytes],
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self.answer = answer
        self.host = host
        self.tls = tls
        self.requests: list[bytes] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> RawServer:
        self._server = await asyncio.start_server(self._handle, self.host, 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_exc: object) -> None:
        assert self._server is not None
        self._server.close()

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{'https' if self.tls else 'http'}://{host}:{self.port}"

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line.lower().startswith(b"content-length:"):
                length = int(line.split(b":", 1)[1])
        request = head + (await reader.readexactly(length) if length else b"")
        self.requests.append(request)
        try:
            if isinstance(self.answer, bytes):
                writer.write(self.answer)
            elif isinstance(self.answer, list):
                for piece in self.answer:  # in separate segments
                    writer.write(piece)
                    await writer.drain()
                    await asyncio.sleep(0.01)
            else:
                await self.answer(request, writer)
                return
            await writer.drain()
        except ConnectionError:
            pass
        writer.close()

    def header(self, name: str, index: int = -1) -> str | None:
        for line in self.requests[index].split(b"\r\n\r\n")[0].split(b"\r\n")[1:]:
            key, _, value = line.decode().partition(":")
            if key.lower() == name.lower():
                return value.strip()
        return None


@pytest.fixture
async def raw() -> AsyncIterator[Callable[..., Any]]:
    servers: list[RawServer] = []

    async def start(
        answer: Answer | bytes | list[bytes],
        host: str = "127.0.0.1",
        tls: ssl.SSLContext | None = None,
    ) -> RawServer:
        server = await RawServer(answer, host, tls).__aenter__()
        servers.append(server)
        return server

    yield start
    for server in servers:
        await server.__aexit__()


def response(body: bytes, *headers: str, status: str = "200 OK") -> bytes:
    head = "\r\n".join([f"HTTP/1.1 {status}", *headers])
    return head.encode() + b"\r\n\r\n" + body


async def test_request_head_is_http11_close_with_defaults(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    server = await raw(response(b"ok", "Content-Length: 2"))
    result = await run(
        probe(f"{server.url}/a%20b/ü?q=1", headers={"X-Probe": "yes", "accept": "text/plain"}),
        run_context,
    )
    assert result.success is True, result.detail
    line = server.requests[0].split(b"\r\n")[0]
    assert line == b"GET /a%20b/%C3%BC?q=1 HTTP/1.1"
    assert server.header("Host") == f"127.0.0.1:{server.port}"
    assert server.header("User-Agent") == USER_AGENT
    assert server.header("Accept-Encoding") == "gzip, deflate"
    assert server.header("Connection") == "close"
    assert server.header("X-Probe") == "yes"
    assert server.header("Accept") == "text/plain"  # a configured header replaces the default
    assert server.header("Content-Length") is None


async def test_chunked_body_split_anywhere(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    wire = response(
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nTrailer: x\r\n\r\n",
        "Transfer-Encoding: chunked",
    )
    # One byte per segment: every parser state meets a boundary.
    server = await raw([wire[i : i + 1] for i in range(len(wire))])
    result = await run(probe(server.url, fail_if_body_not_matches=["^hello world$"]), run_context)
    assert result.success is True, result.detail
    assert result.phases["transfer"] > 0


async def test_bad_chunk_size_fails_cleanly(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    server = await raw(response(b"zz\r\nhello\r\n0\r\n\r\n", "Transfer-Encoding: chunked"))
    result = await run(probe(server.url), run_context)
    assert (result.success, result.reason) == (False, "bad_response")
    assert "chunk size" in (result.detail or "")


@pytest.mark.parametrize(
    ("encoding", "compress"),
    [
        ("gzip", gzip.compress),
        ("deflate", zlib.compress),
        ("deflate", lambda data: zlib.compress(data, wbits=-zlib.MAX_WBITS)),  # raw deflate
    ],
)
async def test_compressed_bodies_are_decoded(
    raw: Callable[..., Any],
    run_context: RunContext,
    encoding: str,
    compress: Callable[[bytes], bytes],
) -> None:
    body = compress(b'{"status": "fine"}' * 100)
    server = await raw(
        response(body, f"Content-Encoding: {encoding}", f"Content-Length: {len(body)}")
    )
    result = await run(
        probe(
            server.url, json_path_equals=[], fail_if_body_not_matches=['^\\{"status": "fine"\\}']
        ),
        run_context,
    )
    assert result.success is True, result.detail


async def test_gzip_bomb_is_too_large_by_its_decoded_size(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    body = gzip.compress(b"\0" * (8 << 20))  # 8 MiB inflated, a few KiB on the wire
    assert len(body) < 64 * 1024
    server = await raw(response(body, "Content-Encoding: gzip", f"Content-Length: {len(body)}"))
    result = await run(probe(server.url), run_context)
    assert (result.success, result.reason) == (False, "too_large")


async def test_corrupt_gzip_fails_cleanly(raw: Callable[..., Any], run_context: RunContext) -> None:
    server = await raw(response(b"not gzip at all", "Content-Encoding: gzip"))
    result = await run(probe(server.url), run_context)
    assert (result.success, result.reason) == (False, "bad_response")
    assert "compressed body" in (result.detail or "")


async def test_body_without_length_ends_with_the_connection(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    server = await raw([b"HTTP/1.0 200 OK\r\nServer: old\r\n\r\n", b"part one, ", b"part two"])
    result = await run(probe(server.url, fail_if_body_not_matches=["one, part two$"]), run_context)
    assert result.success is True, result.detail
    assert result.phases["transfer"] > 0


async def test_connection_closed_before_the_body_ended(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    server = await raw(response(b"short", "Content-Length: 100"))
    result = await run(probe(server.url), run_context)
    assert (result.success, result.reason, result.status_code) == (False, "body", 200)
    assert result.detail == "connection closed 95 body bytes short of its Content-Length"


async def test_closed_without_an_answer(raw: Callable[..., Any], run_context: RunContext) -> None:
    server = await raw(b"")
    result = await run(probe(server.url), run_context)
    assert (result.success, result.reason) == (False, "connect")
    assert result.status_code is None


@pytest.mark.parametrize(
    "wire",
    [
        b"SSH-2.0-OpenSSH_9.6\r\n\r\n",
        b"HTTP/1.1 2OO OK\r\n\r\n",
        b"HTTP/2 200\r\n\r\n",
        b"\x16\x03\x01\x00\x05hello\r\n\r\n",
    ],
)
async def test_malformed_status_line_fails_cleanly(
    raw: Callable[..., Any], run_context: RunContext, wire: bytes
) -> None:
    server = await raw(wire)
    result = await run(probe(server.url), run_context)
    assert (result.success, result.reason) == (False, "bad_response")
    assert "malformed status line" in (result.detail or "")


async def test_malformed_header_line_fails_cleanly(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    server = await raw(response(b"", "Content-Length: 0", "no colon here"))
    result = await run(probe(server.url), run_context)
    assert (result.success, result.reason) == (False, "bad_response")
    assert "malformed header" in (result.detail or "")


async def test_oversize_header_block_fails_cleanly(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    filler = [f"X-Filler-{i}: {'f' * 1000}" for i in range(100)]  # ~100 KiB, never ending
    server = await raw(response(b"", *filler).removesuffix(b"\r\n\r\n"))
    result = await run(probe(server.url), run_context)
    assert (result.success, result.reason) == (False, "bad_response")
    assert "exceeds 65536 bytes" in (result.detail or "")


async def test_interim_answer_is_skipped(raw: Callable[..., Any], run_context: RunContext) -> None:
    server = await raw(
        b"HTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\n"
        + response(b"ok", "Content-Length: 2", status="204 No Content")
    )
    result = await run(probe(server.url), run_context)
    assert (result.success, result.status_code) == (True, 204)


async def test_head_request_reads_no_body(raw: Callable[..., Any], run_context: RunContext) -> None:
    # The Content-Length of a HEAD answer describes a body that is not sent.
    async def answer(_request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(response(b"", "Content-Length: 1000"))
        await asyncio.sleep(5)  # and the connection stays open

    server = await raw(answer)
    result = await run(probe(server.url, method="HEAD"), run_context)
    assert result.success is True, result.detail
    assert server.requests[0].startswith(b"HEAD / HTTP/1.1\r\n")
    assert result.duration_seconds < 1


async def test_post_with_a_body(serve: Serve, run_context: RunContext) -> None:
    async def echo(request: web.Request) -> web.Response:
        body = await request.read()
        return web.json_response(
            {
                "method": request.method,
                "body": body.decode(),
                "type": request.content_type,
                "length": request.content_length,
            }
        )

    base = await serve(app(echo=echo))
    result = await run(
        probe(
            f"{base}/echo",
            method="POST",
            body='{"q": "ping"}',
            headers={"Content-Type": "application/json"},
            json_path_equals=[
                {"path": "method", "equals": "POST"},
                {"path": "body", "equals": '{"q": "ping"}'},
                {"path": "type", "equals": "application/json"},
                {"path": "length", "equals": 13},
            ],
        ),
        run_context,
    )
    assert result.success is True, result.detail
    empty = await run(
        probe(
            f"{base}/echo",
            method="PUT",
            json_path_equals=[
                {"path": "length", "equals": 0},
                {"path": "type", "equals": "application/octet-stream"},
            ],
        ),
        run_context,
    )
    assert empty.success is True, empty.detail


async def test_303_after_post_becomes_get_and_307_keeps_the_body(
    serve: Serve, run_context: RunContext
) -> None:
    async def see_other(_r: web.Request) -> web.Response:
        raise web.HTTPSeeOther("/echo")

    async def temporary(_r: web.Request) -> web.Response:
        raise web.HTTPTemporaryRedirect("/echo")

    async def echo(request: web.Request) -> web.Response:
        return web.json_response(
            {"method": request.method, "body": (await request.read()).decode()}
        )

    base = await serve(app(see_other=see_other, temporary=temporary, echo=echo))
    options: dict[str, Any] = {"method": "POST", "body": "payload"}
    after_303 = await run(
        probe(
            f"{base}/see-other",
            **options,
            json_path_equals=[{"path": "method", "equals": "GET"}, {"path": "body", "equals": ""}],
        ),
        run_context,
    )
    assert after_303.success is True, after_303.detail
    after_307 = await run(
        probe(
            f"{base}/temporary",
            **options,
            json_path_equals=[
                {"path": "method", "equals": "POST"},
                {"path": "body", "equals": "payload"},
            ],
        ),
        run_context,
    )
    assert after_307.success is True, after_307.detail


async def test_max_redirects_is_the_number_followed(serve: Serve, run_context: RunContext) -> None:
    async def hop(request: web.Request) -> web.Response:
        left = int(request.query["left"])
        raise web.HTTPFound(f"hop?left={left - 1}") if left else web.HTTPOk(text="there")

    base = await serve(app(hop=hop))
    url = f"{base}/hop?left=2"  # relative Locations, two of them
    assert (await run(probe(url, max_redirects=2), run_context)).success is True
    over = await run(probe(url, max_redirects=1), run_context)
    assert (over.success, over.reason) == (False, "http_status")
    assert "stopped after 1 redirects" in (over.detail or "")
    none = await run(probe(url, max_redirects=0), run_context)
    assert (none.success, none.reason) == (False, "http_status")


async def test_redirect_to_another_origin_drops_configured_headers(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    target = await raw(response(b"ok", "Content-Length: 2"))
    same_host = await raw(response(b"", f"Location: {target.url}/x", status="302 Found"))
    headers = {"Authorization": "Bearer secret", "x-api-key": "sk-secret", "X-Tenant": "t1"}
    result = await run(probe(same_host.url, headers=headers), run_context)
    assert result.success is True, result.detail
    assert same_host.header("Authorization") == "Bearer secret"
    assert same_host.header("x-api-key") == "sk-secret"
    # Another port is another origin: no configured header may carry a key there.
    assert b"secret" not in target.requests[0]
    assert target.header("X-Tenant") is None
    assert target.header("Host") == f"127.0.0.1:{target.port}"


async def test_redirect_within_the_origin_keeps_configured_headers(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    async def answer(request: bytes, writer: asyncio.StreamWriter) -> None:
        if request.startswith(b"GET /x "):
            writer.write(response(b"ok", "Content-Length: 2"))
        else:
            writer.write(response(b"", "Location: /x", status="302 Found"))
        await writer.drain()
        writer.close()

    server = await raw(answer)
    result = await run(probe(server.url, headers={"x-api-key": "sk-secret"}), run_context)
    assert result.success is True, result.detail
    assert [server.header("x-api-key", i) for i in (0, 1)] == ["sk-secret", "sk-secret"]


async def test_redirect_to_a_non_http_scheme_fails(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    server = await raw(response(b"", "Location: ftp://example.test/", status="301 Moved"))
    result = await run(probe(server.url), run_context)
    assert (result.success, result.reason) == (False, "bad_response")
    assert "redirect" in (result.detail or "")


async def test_ipv6_literal_target(raw: Callable[..., Any], run_context: RunContext) -> None:
    # Machines of this kind have ::1; a missing one fails here rather than skip.
    server = await raw(response(b"ok", "Content-Length: 2"), host="::1")
    result = await run(probe(f"{server.url}/v6"), run_context)
    assert result.success is True, result.detail
    assert server.header("Host") == f"[::1]:{server.port}"
    assert "dns" not in result.phases  # a literal is not looked up
    v4_only = await run(
        probe(f"{server.url}/v6", preferred_ip_protocol="ip4", ip_protocol_fallback=False),
        run_context,
    )
    assert (v4_only.success, v4_only.reason) == (False, "dns")


async def test_name_lookup_is_a_dns_phase(
    raw: Callable[..., Any], run_context: RunContext, hosts: dict[str, str]
) -> None:
    hosts["api.test"] = "127.0.0.1"
    server = await raw(response(b"ok", "Content-Length: 2"))
    result = await run(probe(f"http://api.test:{server.port}/"), run_context)
    assert result.success is True, result.detail
    assert "dns" in result.phases
    assert server.header("Host") == f"api.test:{server.port}"


async def test_cookies_set_along_a_redirect_chain_are_sent_back(
    serve: Serve, run_context: RunContext
) -> None:
    async def login(_r: web.Request) -> web.Response:
        answer = web.HTTPFound("/check")
        answer.set_cookie("session", "abc", path="/", httponly=True)
        raise answer

    async def check(request: web.Request) -> web.Response:
        if request.cookies.get("session") != "abc":
            raise web.HTTPFound("/login")  # without the cookie: a loop
        return web.json_response({"theme": request.cookies.get("theme")})

    base = await serve(app(login=login, check=check))
    result = await run(
        probe(
            f"{base}/login",
            headers={"Cookie": "theme=dark"},
            json_path_equals=[{"path": "theme", "equals": "dark"}],
        ),
        run_context,
    )
    assert result.success is True, result.detail
    again = await run(probe(f"{base}/check", max_redirects=3), run_context)
    assert again.success is True, again.detail  # via /login, which sets it again


async def test_redirect_location_bytes_are_percent_encoded(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    async def answer(request: bytes, writer: asyncio.StreamWriter) -> None:
        if request.startswith(b"GET / "):
            # A raw UTF-8 "ü" and a Latin-1 "é" (not UTF-8): both arrive as their bytes.
            writer.write(
                b"HTTP/1.1 302 Found\r\nLocation: /\xc3\xbc/\xe9 x\r\nContent-Length: 0\r\n\r\n"
            )
        else:
            writer.write(response(b"ok", "Content-Length: 2", "Content-Length: 2"))
        await writer.drain()
        writer.close()

    server = await raw(answer)
    result = await run(probe(server.url), run_context)
    assert result.success is True, result.detail
    assert server.requests[1].startswith(b"GET /%C3%BC/%E9%20x HTTP/1.1\r\n")


async def test_conflicting_content_lengths_fail(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    server = await raw(response(b"ok", "Content-Length: 2", "Content-Length: 3"))
    result = await run(probe(server.url), run_context)
    assert (result.success, result.reason) == (False, "bad_response")
    assert "Content-Length" in (result.detail or "")


@pytest.mark.parametrize(
    "headers", [{"X-A": "one\r\nX-Injected: 1"}, {"Bad Name": "x"}, {"X-A": "nul\0"}]
)
def test_header_that_would_break_the_request_is_a_config_error(headers: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        probe("http://127.0.0.1/", headers=headers)


async def test_tls_body_ended_by_close(
    raw: Callable[..., Any], run_context: RunContext, ca: Any, hosts: dict[str, str], tmp_path: Any
) -> None:
    hosts["api.test"] = "127.0.0.1"
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("api.test").configure_cert(context)
    body = gzip.compress(b"all of it")
    server = await raw(
        [b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\n\r\n", body[:5], body[5:]], tls=context
    )
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    url = server.url.replace("127.0.0.1", "api.test")
    result = await run(
        probe(url, tls_ca_file=str(ca_file), fail_if_body_not_matches=["^all of it$"]), run_context
    )
    assert result.success is True, result.detail
    assert result.phases["tls"] > 0
    assert result.tls_earliest_expiry is not None


# What RFC 9112 lets a user agent accept, and the body cut after its head (issues 15, 21).


async def test_bare_lf_answer_left_open_is_read_at_once(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    async def answer(_request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(b"HTTP/1.1 200 OK\nContent-Length: 2\nServer: tiny\n\nok")
        await writer.drain()
        await asyncio.sleep(5)  # the connection stays open

    server = await raw(answer)
    result = await run(probe(server.url, fail_if_body_not_matches=["^ok$"]), run_context)
    assert (result.success, result.status_code) == (True, 200), result.detail
    assert result.duration_seconds < 1


@pytest.mark.parametrize(
    "head",
    [
        # obs-fold: replaced by a space (RFC 9112 5.2), in a field the probe reads too
        b"HTTP/1.1 200 OK\r\nX-Long: part one\r\n  part two\r\nContent-Length:\r\n\t2\r\n\r\n",
        # a list of one repeated length (RFC 9110 8.6), and the same length twice
        b"HTTP/1.1 200 OK\r\nContent-Length: 2, 2\r\nContent-Length: 2\r\n\r\n",
        # bare LF mixed with CRLF, no reason phrase
        b"HTTP/1.1 200\nContent-Length: 2\r\n\n",
        # HTTP/1.0 with a body ended by the close
        b"HTTP/1.0 200 OK\r\n\r\n",
    ],
)
async def test_answers_a_browser_accepts_are_up(
    raw: Callable[..., Any], run_context: RunContext, head: bytes
) -> None:
    server = await raw(head + b"ok")
    result = await run(probe(server.url, fail_if_body_not_matches=["^ok$"]), run_context)
    assert (result.success, result.status_code) == (True, 200), result.detail


@pytest.mark.parametrize(
    ("head", "detail"),
    [
        (b"HTTP/1.1 200 OK\r\nContent-Length: 2, 3\r\n\r\n", "conflicting Content-Length"),
        (b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\n", "malformed header"),
        (b"HTTP/1.1 200 OK\r\nX-A: a\rb\r\nContent-Length: 2\r\n\r\n", "malformed header"),
        (b"HTTP/1.1 200 OK\r\n folded: x\r\nContent-Length: 2\r\n\r\n", "folded line"),
        (b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n-2\r\nok\r\n0\r\n\r\n", "chunk"),
    ],
)
async def test_answers_rfc_9112_says_to_reject_are_bad_responses(
    raw: Callable[..., Any], run_context: RunContext, head: bytes, detail: str
) -> None:
    server = await raw(head + b"ok")
    result = await run(probe(server.url), run_context)
    assert (result.success, result.reason) == (False, "bad_response")
    assert detail in (result.detail or "")


async def test_chunked_body_without_its_last_chunk_is_a_cut_body(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    server = await raw(response(b"5\r\nhello\r\n", "Transfer-Encoding: chunked"))
    result = await run(probe(server.url), run_context)
    assert (result.success, result.reason, result.status_code) == (False, "body", 200)
    assert result.detail == "connection closed before the last chunk"


async def test_reset_mid_body_is_a_cut_body(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    async def answer(_request: bytes, writer: asyncio.StreamWriter) -> None:
        writer.write(response(b"hello", "Content-Length: 100"))
        await writer.drain()
        await asyncio.sleep(0.05)
        sock = writer.get_extra_info("socket")
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        writer.transport.abort()  # RST, not FIN

    server = await raw(answer)
    result = await run(probe(server.url), run_context)
    assert (result.success, result.reason, result.status_code) == (False, "body", 200)
    assert result.detail == "connection reset by peer 95 body bytes short of its Content-Length"


async def test_endless_interim_answers_are_a_bad_response(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    server = await raw(b"HTTP/1.1 100 Continue\r\n\r\n" * 5000 + response(b"", "Content-Length: 0"))
    result = await run(probe(server.url), run_context)
    assert (result.success, result.reason) == (False, "bad_response")
    assert result.detail == "more than 10 interim (1xx) answers"


async def test_ten_interim_answers_are_skipped(
    raw: Callable[..., Any], run_context: RunContext
) -> None:
    server = await raw(b"HTTP/1.1 100 Continue\r\n\r\n" * 10 + response(b"", "Content-Length: 0"))
    result = await run(probe(server.url), run_context)
    assert (result.success, result.status_code) == (True, 200), result.detail
