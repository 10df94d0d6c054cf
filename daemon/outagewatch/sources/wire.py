"""A small HTTP/1.1 client for HTTP probes: one request per fresh connection.

A probe makes one request on a new connection and reads one answer, so
aiohttp's pooling, cookies, multidicts and tracing were most of its CPU cost.
Here a Protocol buffers and parses only what a probe needs, and marks the
phases on the run's PhaseTimer as the bytes arrive.

Supported: http and https URLs; HTTP/1.1 requests with `Connection: close`;
answers framed by Content-Length, chunked, or the end of the connection; gzip and
deflate bodies; redirects; what RFC 9112 lets a user agent accept (bare LF line
ends, obsolete folding, a list of one repeated Content-Length). Not supported, by
design: keep-alive, proxies, HTTP/2, Expect: 100-continue, brotli.

A failure is a WireError with a reason, a sub-reason where the set is closed, a
short detail built from the answer or the OS error (never from the request, which
may carry a key), and the status code when the head had arrived.
"""

from __future__ import annotations

import asyncio
import base64
import functools
import ipaddress
import re
import socket
import ssl
import zlib
from collections.abc import Awaitable, Callable, Mapping
from typing import cast
from urllib.parse import quote, unquote, urljoin, urlsplit

from outagewatch.observations import ProbeReason
from outagewatch.sources.client import (
    USER_AGENT,
    Failure,
    IpProtocol,
    PhaseTimer,
    describe_failure,
)
from outagewatch.sources.errors import WireError
from outagewatch.sources.tls import earliest_expiry

HEAD_LIMIT = 64 * 1024  # status line and headers together
INTERIM_LIMIT = 10  # 1xx answers before the real one: more is a server gone wrong
_CHUNK_LINE_LIMIT = 4096  # a chunk-size line with its extensions
REDIRECTS = frozenset({301, 302, 303, 307, 308})
# A response head is checked in one pass of the regex engine rather than line by line
# in Python: a status line, then field lines of a token name, a colon and a value.
# As RFC 9112 lets a user agent: lines may end in a bare LF (2.2), and an obsolete
# folded line is joined to the one before with a space (5.2). Still rejected: a space
# before the colon, a NUL or bare CR in a value (RFC 9110 5.5), a fold right after
# the status line.
_STATUS = rb"HTTP/1\.[0-9] ([1-9][0-9][0-9])(?: [^\r\n\x00]*)?"
_FIELD = rb"[!#$%&'*+.^_`|~0-9A-Za-z-]+:[^\r\n\x00]*"
_HEAD_RE = re.compile(_STATUS + rb"((?:\r?\n" + _FIELD + rb")*)")
_HEAD_END = re.compile(rb"\r?\n\r?\n")
_FOLD = re.compile(rb"\r?\n[ \t]+")
_LINE_END = re.compile(rb"\r?\n")
_STATUS_RE = re.compile(_STATUS)
_FIELD_RE = re.compile(_FIELD)
# The only fields a probe reads; the others are not even decoded.
_KEPT_RE = re.compile(
    rb"\n(cf-mitigated|location|content-encoding|transfer-encoding|content-length|set-cookie)"
    rb":([^\r\n]*)",
    re.IGNORECASE,
)
_CHUNK_SIZE = re.compile(rb"[0-9A-Fa-f]{1,15}")
_LENGTH = re.compile(r"[0-9]{1,18}")
# Header values as text; bytes that are not UTF-8 (a Location in Latin-1) survive the round trip.
_TEXT = ("utf-8", "surrogateescape")
# Characters left as they are in a request target (RFC 3986 pchar, "/", "?", and "%").
_TARGET_SAFE = "/?:@!$&'()*+,;=-._~%"
_FAMILIES: dict[IpProtocol, tuple[int, ...]] = {
    "any": (socket.AF_INET, socket.AF_INET6),
    "ip4": (socket.AF_INET,),
    "ip6": (socket.AF_INET6,),
}

Resolve = Callable[[str, int, IpProtocol], Awaitable[list[tuple[int, str]]]]
# Cookies set along one run's redirect chain, by host: name -> value.
Jar = dict[str, dict[str, str]]


def ssl_context(verify: bool = True, cafile: str | None = None) -> ssl.SSLContext:
    """The probes' TLS settings: the system trust store, or only `cafile`'s CAs."""
    if verify and cafile is None:
        return _system_context()
    context = ssl.create_default_context(cafile=cafile)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    context.set_alpn_protocols(["http/1.1"])
    return context


@functools.cache
def _system_context() -> ssl.SSLContext:
    """Loaded once: reading the system store for each of a thousand probes takes seconds."""
    context = ssl.create_default_context()
    context.set_alpn_protocols(["http/1.1"])
    return context


class Url:
    """An http(s) URL taken apart for the connection and the request head."""

    __slots__ = ("auth", "authority", "family", "host", "port", "secure", "target", "text")

    def __init__(self, text: str) -> None:
        parts = urlsplit(text)
        scheme = parts.scheme.lower()
        if scheme not in ("http", "https"):
            raise ValueError(f"not an http(s) URL: {text[:200]!r}")
        host = parts.hostname  # lower case, without the brackets of an IPv6 literal
        if not host:
            raise ValueError(f"no host in {text[:200]!r}")
        if not host.isascii():
            host = host.encode("idna").decode("ascii")
        self.secure = scheme == "https"
        default = 443 if self.secure else 80
        self.port = parts.port or default
        self.host = host
        self.family: int | None
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            self.family = None  # a name: resolved on every run
        else:
            self.family = socket.AF_INET6 if address.version == 6 else socket.AF_INET
        name = f"[{host}]" if ":" in host else host
        self.authority = name if self.port == default else f"{name}:{self.port}"
        target = parts.path or "/"
        if parts.query:
            target = f"{target}?{parts.query}"
        self.target = quote(target, safe=_TARGET_SAFE, errors="surrogateescape")
        self.auth: str | None = None
        if parts.username is not None:
            pair = f"{unquote(parts.username)}:{unquote(parts.password or '')}"
            self.auth = "Basic " + base64.b64encode(pair.encode()).decode("ascii")
        self.text = text

    @property
    def origin(self) -> tuple[bool, str, int]:
        return self.secure, self.host, self.port


class Request:
    """A request as sent on one hop; its bytes are built once (per config, not per run)."""

    __slots__ = ("body", "data", "headers", "method", "url")

    def __init__(self, method: str, url: Url, headers: Mapping[str, str], body: bytes | None):
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        fields = {
            "host": ("Host", url.authority),
            "user-agent": ("User-Agent", USER_AGENT),
            "accept": ("Accept", "*/*"),
            "accept-encoding": ("Accept-Encoding", "gzip, deflate"),
        }
        if url.auth is not None:
            fields["authorization"] = ("Authorization", url.auth)
        for name, value in headers.items():
            fields[name.lower()] = (name, value)
        # Not configurable: the framing below is the one this client reads.
        fields["connection"] = ("Connection", "close")
        fields.pop("transfer-encoding", None)
        bodied = method in ("POST", "PUT")
        if bodied:
            fields.setdefault("content-type", ("Content-Type", "application/octet-stream"))
        if body is not None or bodied:
            fields["content-length"] = ("Content-Length", str(len(body or b"")))
        else:
            fields.pop("content-length", None)
        lines = [f"{method} {url.target} HTTP/1.1", *(f"{n}: {v}" for n, v in fields.values())]
        head = "\r\n".join(lines) + "\r\n\r\n"
        self.data = head.encode(*_TEXT) + (body or b"")

    def redirected(self, status: int, location: str, jar: Jar) -> Request:
        """The next hop's request, as aiohttp (and browsers) make it."""
        try:
            url = Url(urljoin(self.url.text, location.strip()))
        except ValueError as exc:
            raise WireError("bad_response", f"redirect to an unusable location: {exc}") from None
        method, body = self.method, self.body
        if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
            method, body = "GET", None
        headers = self.headers
        if url.origin != self.url.origin:
            # Configured headers may carry a key (Authorization, x-api-key, a token in a
            # custom header): none of them goes to another origin.
            headers = {}
        cookies = jar.get(url.host)
        if cookies:
            pairs = [v for k, v in headers.items() if k.lower() == "cookie"]
            pairs += [f"{name}={value}" for name, value in cookies.items()]
            headers = {k: v for k, v in headers.items() if k.lower() != "cookie"}
            headers["Cookie"] = "; ".join(pairs)
        return Request(method, url, headers, body)


class Response:
    """The final answer: status, the headers a probe reads (lower-case names), the body."""

    __slots__ = ("body", "headers", "status")

    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body


# Reading states of an exchange.
_HEAD, _BY_LENGTH, _CHUNKED, _TO_CLOSE, _DONE = range(5)


class _Exchange(asyncio.Protocol):
    """Reads one response: the head, then the body framed as the head says.

    `done` gets None when the answer is complete (or, for a redirect to follow,
    when its head is), or a WireError. Phases are marked here, where the bytes
    arrive, rather than when the waiting task wakes up.
    """

    __slots__ = (
        "_buf",
        "_cap",
        "_decoder",
        "_follow",
        "_head_only",
        "_interims",
        "_keep",
        "_left",
        "_mode",
        "_size",
        "_sniff",
        "_timer",
        "body",
        "cookies",
        "done",
        "headers",
        "status",
        "transport",
    )

    def __init__(
        self,
        done: asyncio.Future[None],
        timer: PhaseTimer,
        cap: int,
        keep: bool,
        head_only: bool,
        follow: bool,
    ) -> None:
        self.done = done
        self.transport: asyncio.Transport | None = None
        self.status = 0
        self.headers: dict[str, str] = {}
        self.body = bytearray()
        self.cookies: list[tuple[str, str]] = []
        self._timer = timer
        self._cap = cap
        self._keep = keep
        self._head_only = head_only
        self._follow = follow
        self._mode = _HEAD
        self._interims = 0
        self._buf = b""
        self._left = 0  # bytes to come (by length), or of the current chunk; -1: a CRLF
        self._size = 0  # decoded body bytes so far
        self._decoder: zlib._Decompress | None = None
        self._sniff = False

    def __call__(self) -> _Exchange:
        """Its own protocol factory: spares create_connection a closure per request."""
        return self

    # asyncio callbacks

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # create_connection makes a Transport

    def data_received(self, data: bytes) -> None:
        mode = self._mode
        if mode == _BY_LENGTH:
            self._by_length(data)
        elif mode == _HEAD:
            self._head(data)
        elif mode == _CHUNKED:
            self._chunked(data)
        elif mode == _TO_CLOSE:
            self._feed(data)
        # _DONE: bytes after the answer are ignored

    def eof_received(self) -> bool | None:
        self._closed(None)
        return None  # let the transport close

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        self._closed(exc)

    # parsing

    def _head(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        while True:  # interim (1xx) answers, each followed by another head
            found = _HEAD_END.search(buf, 0, HEAD_LIMIT + 4)
            if found is None:
                if len(buf) > HEAD_LIMIT:
                    self._fail(f"response head exceeds {HEAD_LIMIT} bytes", "bad_response")
                else:
                    self._buf = buf
                return
            head, buf = buf[: found.start()], buf[found.end() :]
            parsed = self._parse_head(head)
            if parsed is None:
                return
            status, headers = parsed
            if status >= 200 or status == 101:
                break
            # An interim answer (100 Continue, 103 Early Hints): the real one follows.
            self._interims += 1
            if self._interims > INTERIM_LIMIT:
                self._fail(f"more than {INTERIM_LIMIT} interim (1xx) answers", "bad_response")
                return
        self._buf = b""
        rest = buf
        self.status, self.headers = status, headers
        timer = self._timer
        timer.close("processing", "sent")
        if self._follow and status in REDIRECTS and "location" in headers:
            self._complete(transfer=False)  # a hop: its body is of no interest
            return
        timer.mark("headers_received")
        if self._head_only or status in (101, 204, 304):
            self._complete()
            return
        encoding = headers.get("content-encoding", "").strip().lower()
        if encoding in ("gzip", "x-gzip"):
            self._decoder = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._sniff = True  # zlib-wrapped or raw: told by the first byte
        chunking = headers.get("transfer-encoding")
        length = headers.get("content-length")
        if chunking is not None:  # wins over Content-Length (RFC 9112 6.3)
            codings = [coding.strip(" \t").lower() for coding in chunking.split(",")]
            if codings.count("chunked") > 1:  # "MUST NOT apply chunked more than once" (7)
                self._fail(f"chunked more than once: {chunking[:60]!r}", "bad_response")
                return
            # Chunked last: read the chunks; anything else: read until the close.
            self._mode = _CHUNKED if codings[-1] == "chunked" else _TO_CLOSE
        elif length is not None:
            if not _LENGTH.fullmatch(length):
                self._fail(f"malformed Content-Length {length[:40]!r}")
                return
            self._left = int(length)
            if not self._left:
                self._complete()
                return
            self._mode = _BY_LENGTH
        else:
            self._mode = _TO_CLOSE
        if rest:
            self.data_received(rest)

    def _parse_head(self, head: bytes) -> tuple[int, dict[str, str]] | None:
        """Status and kept headers of one head; None once it failed."""
        if b"\n " in head or b"\n\t" in head:
            first = head.find(b"\n")
            if head[first + 1 : first + 2] in (b" ", b"\t"):
                self._fail("malformed head: a folded line after the status line", "bad_response")
                return None
            head = _FOLD.sub(b" ", head)
        match = _HEAD_RE.fullmatch(head)
        if match is None:
            self._fail(_malformed(head), "bad_response")
            return None
        status = int(match[1])
        headers: dict[str, str] = {}
        for name, raw in _KEPT_RE.findall(head, match.start(2)):
            field, value = name.lower().decode("ascii"), raw.strip(b" \t").decode(*_TEXT)
            if field == "set-cookie":
                # Only name=value, for the next hops of this run (a login or consent
                # redirect); attributes are not interpreted, nothing outlives the run.
                key, equals, text = value.split(";", 1)[0].partition("=")
                if equals and self._follow and status >= 200:
                    self.cookies.append((key.strip(), text.strip()))
                continue
            if field == "content-length" and "," in value:
                # A list of one repeated length is that length (RFC 9110 8.6).
                lengths = {part.strip(" \t") for part in value.split(",")}
                if len(lengths) != 1:
                    self._fail(f"conflicting Content-Length {value[:40]!r}", "bad_response")
                    return None
                value = lengths.pop()
            known = headers.get(field)
            if known is None:
                headers[field] = value
            elif field == "content-length":
                if known != value:
                    self._fail(
                        f"conflicting Content-Length headers {known!r} and {value[:40]!r}",
                        "bad_response",
                    )
                    return None
            else:
                headers[field] = f"{known}, {value}"
        return status, headers

    def _by_length(self, data: bytes) -> None:
        left = self._left
        if len(data) < left:
            self._left = left - len(data)
            self._feed(data)
        elif self._feed(data[:left] if len(data) > left else data):
            self._complete()

    def _chunked(self, data: bytes) -> None:
        buf = self._buf + data if self._buf else data
        pos, end = 0, len(buf)
        while True:
            if self._left > 0:  # inside a chunk's data
                piece = buf[pos : pos + self._left]
                pos += len(piece)
                self._left -= len(piece)
                if not self._feed(piece):
                    return
                if self._left:
                    break
                self._left = -1
            if self._left < 0:  # the CRLF that ends a chunk's data
                if end - pos < 2:
                    break
                if buf[pos : pos + 2] != b"\r\n":
                    self._fail("malformed chunked body: no CRLF after a chunk", "bad_response")
                    return
                pos += 2
                self._left = 0
            eol = buf.find(b"\r\n", pos)
            if eol < 0:
                if end - pos > _CHUNK_LINE_LIMIT:
                    self._fail("malformed chunked body: chunk-size line too long", "bad_response")
                    return
                break
            line = buf[pos:eol]
            size = line.split(b";", 1)[0].strip(b" \t")
            if not _CHUNK_SIZE.fullmatch(size):
                self._fail(f"malformed chunked body: chunk size {line[:40]!r}", "bad_response")
                return
            pos = eol + 2
            self._left = int(size, 16)
            if not self._left:
                # The last chunk. Trailers, if any, are of no interest: the connection closes.
                self._complete()
                return
        self._buf = buf[pos:]

    def _feed(self, data: bytes) -> bool:
        """Decode and keep body bytes; False once the exchange has failed."""
        if not data:
            return True
        if self._sniff:
            # Servers send zlib-wrapped or raw deflate as "deflate"; aiohttp reads both.
            self._sniff = False
            wbits = zlib.MAX_WBITS if data[0] & 0x0F == 8 else -zlib.MAX_WBITS
            self._decoder = zlib.decompressobj(wbits)
        if self._decoder is not None:
            try:
                # Never inflate more than the cap allows: a small gzip can be gigabytes.
                data = self._decoder.decompress(data, self._cap - self._size + 1)
            except zlib.error as exc:
                self._fail(f"undecodable compressed body: {exc}", "bad_response")
                return False
        return self._add(data)

    def _add(self, data: bytes) -> bool:
        size = self._size + len(data)
        if size > self._cap:
            self._timer.close("transfer", "headers_received")
            self._fail(f"body exceeds {self._cap} bytes", "too_large")
            return False
        self._size = size
        if self._keep:
            self.body += data
        return True

    # endings

    def _complete(self, transfer: bool = True) -> None:
        if self._decoder is not None:
            try:
                tail = self._decoder.flush()
            except zlib.error as exc:
                self._fail(f"undecodable compressed body: {exc}", "bad_response")
                return
            if tail and not self._add(tail):
                return
        self._mode = _DONE
        if transfer:
            self._timer.close("transfer", "headers_received")
        if not self.done.done():
            self.done.set_result(None)

    def _closed(self, exc: Exception | None) -> None:
        mode = self._mode
        if mode == _DONE:
            return
        if exc is None and mode == _TO_CLOSE:
            self._complete()
        elif mode == _HEAD:
            if exc is not None:
                failure = describe_failure(exc)
                self._fail(failure.detail, failure.reason, failure.sub_reason)
            else:
                where = "inside the response head" if self._buf else "before an answer"
                self._fail(f"connection closed {where}")
        else:
            # The head and its status arrived: the body was cut (FIN or RST mid-body,
            # or a chunked body without its last chunk).
            if mode == _BY_LENGTH:
                what = f"{self._left} body bytes short of its Content-Length"
            elif mode == _CHUNKED:
                what = "before the last chunk"
            else:
                what = "mid-body"
            how = describe_failure(exc).detail if exc is not None else "connection closed"
            self._fail(f"{how} {what}", "body")

    def _fail(
        self, detail: str, reason: ProbeReason = "connect", sub_reason: str | None = None
    ) -> None:
        self._mode = _DONE
        if not self.done.done():
            status = self.status or None  # set once the head arrived
            self.done.set_exception(WireError(reason, detail, sub_reason, status))
        if self.transport is not None:
            self.transport.abort()


def _malformed(head: bytes) -> str:
    """What is wrong with a head that _HEAD_RE did not match (the failure path only)."""
    lines = _LINE_END.split(head)
    if not _STATUS_RE.fullmatch(lines[0]):
        return f"malformed status line {lines[0][:100]!r}"
    bad = next((line for line in lines[1:] if not _FIELD_RE.fullmatch(line)), b"")
    return f"malformed header line {bad[:100]!r}"


class Fetcher:
    """One probe's request and reading rules, prepared once; `fetch` on every run."""

    __slots__ = ("follow", "keep_body", "max_body_bytes", "max_redirects", "request", "ssl_context")

    def __init__(
        self,
        request: Request,
        ssl_context: ssl.SSLContext,
        max_body_bytes: int,
        keep_body: bool,
        follow_redirects: bool,
        max_redirects: int,
    ) -> None:
        self.request = request
        self.ssl_context = ssl_context
        self.max_body_bytes = max_body_bytes
        self.keep_body = keep_body  # False when nothing reads the body: it is only counted
        self.follow = follow_redirects
        self.max_redirects = max_redirects

    async def fetch(self, resolve: Resolve, family: IpProtocol, timer: PhaseTimer) -> Response:
        """The final answer after redirects; phases are summed over the hops on `timer`."""
        request = self.request
        redirects = 0
        jar: Jar = {}
        while True:
            exchange = await self._exchange(request, resolve, family, timer)
            location = exchange.headers.get("location")
            if not (self.follow and exchange.status in REDIRECTS and location is not None):
                return Response(exchange.status, exchange.headers, bytes(exchange.body))
            redirects += 1
            if redirects > self.max_redirects:
                raise WireError(
                    "http_status",
                    f"stopped after {self.max_redirects} redirects",
                    status=exchange.status,
                )
            if exchange.cookies:
                jar.setdefault(request.url.host, {}).update(exchange.cookies)
            request = request.redirected(exchange.status, location, jar)

    async def _exchange(
        self, request: Request, resolve: Resolve, family: IpProtocol, timer: PhaseTimer
    ) -> _Exchange:
        url = request.url
        if url.family is not None:  # an IP literal: no lookup, and no dns phase
            if url.family not in _FAMILIES[family]:
                raise WireError("dns", f"{url.host} is not an {family} address")
            addresses = [(url.family, url.host)]
        else:
            timer.mark("dns_start")
            try:
                addresses = await resolve(url.host, url.port, family)
            except OSError as exc:
                failure = describe_failure(exc)
                if failure.reason not in ("dns", "local"):
                    failure = Failure("dns", None, failure.detail)
                detail = f"cannot resolve {url.host}: {failure.detail}"
                raise WireError(failure.reason, detail, failure.sub_reason) from None
            timer.close("dns", "dns_start")
            if not addresses:
                raise WireError("dns", f"no address for {url.host}")
        loop = asyncio.get_running_loop()
        exchange = _Exchange(
            loop.create_future(),
            timer,
            self.max_body_bytes,
            self.keep_body,
            request.method == "HEAD",
            self.follow,
        )
        transport: asyncio.Transport | None = None
        timer.mark("connect_start")
        try:
            error: OSError | None = None
            for address_family, address in addresses:  # in the resolver's order
                try:
                    transport, _ = await loop.create_connection(
                        exchange, address, url.port, family=address_family
                    )
                    break
                except OSError as exc:
                    error = exc
            if transport is None:
                raise error or OSError(f"no address to connect to for {url.host}")
            if url.secure:
                timer.mark("tcp_connected")
                # A separate handshake, so connect and tls are separate phases.
                tls = await loop.start_tls(
                    transport,
                    exchange,
                    self.ssl_context,
                    server_hostname=url.host.rstrip("."),
                )
                if tls is None:
                    raise ssl.SSLError("TLS handshake gave no transport")
                transport = exchange.transport = tls
                timer.tls_earliest_expiry = earliest_expiry(tls.get_extra_info("ssl_object"))
                timer.close("connect", "connect_start", "tcp_connected")
                timer.close("tls", "tcp_connected")
            else:
                timer.close("connect", "connect_start")
            transport.write(request.data)
            timer.mark("sent")
            await exchange.done
            return exchange
        finally:
            done = exchange.done
            if not done.done():
                done.cancel()  # what the connection does from now on concerns no one
            elif not done.cancelled():
                done.exception()  # seen: a failure raised before it was awaited needs no log
            if transport is not None:
                if done.cancelled() or done.exception() is not None:
                    transport.abort()
                else:
                    transport.close()
