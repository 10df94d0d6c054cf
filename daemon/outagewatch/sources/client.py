"""The shared HTTP clients, with per-phase timing of every request.

Built once at start-up and passed in through the run context. Connections are
not reused, so every probe sees DNS, connect and TLS as a user would. Chat,
status page and App Store sources use the aiohttp sessions; HTTP probes use the
lean client in wire.py, which takes only the resolver from here.
"""

from __future__ import annotations

import asyncio
import errno
import socket
import ssl
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any, Literal, NamedTuple

import aiohttp
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from outagewatch import __version__
from outagewatch.observations import short_detail
from outagewatch.sources.errors import TransportReason
from outagewatch.sources.tls import earliest_expiry

USER_AGENT = f"outagewatch/{__version__} (+https://github.com/outagewatch/outagewatch)"
IpProtocol = Literal["any", "ip4", "ip6"]
_FAMILIES: dict[IpProtocol, socket.AddressFamily] = {
    "any": socket.AF_UNSPEC,
    "ip4": socket.AF_INET,
    "ip6": socket.AF_INET6,
}


class Failure(NamedTuple):
    """Why a request failed: a reason, its sub-reason where the set is closed, a short text."""

    reason: TransportReason
    sub_reason: str | None
    detail: str


# OpenSSL verify codes (X509_V_ERR_*) -> the tls sub-reason.
_VERIFY_CODES = {
    10: "expired",  # CERT_HAS_EXPIRED
    62: "hostname_mismatch",  # HOSTNAME_MISMATCH
    64: "hostname_mismatch",  # IP_ADDRESS_MISMATCH
    2: "unknown_ca",  # UNABLE_TO_GET_ISSUER_CERT
    20: "unknown_ca",  # UNABLE_TO_GET_ISSUER_CERT_LOCALLY
    21: "unknown_ca",  # UNABLE_TO_VERIFY_LEAF_SIGNATURE
    18: "self_signed",  # DEPTH_ZERO_SELF_SIGNED_CERT
    19: "self_signed",  # SELF_SIGNED_CERT_IN_CHAIN
}
# This host ran out of something: says nothing about the service probed.
_LOCAL_ERRNOS = {
    errno.EMFILE: "fd_exhausted",
    errno.ENFILE: "fd_exhausted",
    errno.ENOBUFS: "no_buffers",
    errno.ENOMEM: "no_memory",
}
_UNREACHABLE_ERRNOS = frozenset(
    {errno.ENETUNREACH, errno.EHOSTUNREACH, errno.EHOSTDOWN, errno.ENETDOWN}
)
_RESET_ERRNOS = frozenset({errno.ECONNRESET, errno.ECONNABORTED, errno.EPIPE})
# getaddrinfo's answers: no such name (or no address of the family asked), or the
# resolver could not get an answer (SERVFAIL, or no answer before its own timeout).
_GAI_SUB_REASONS = {
    socket.EAI_NONAME: "nxdomain",
    getattr(socket, "EAI_NODATA", socket.EAI_NONAME): "nxdomain",
    getattr(socket, "EAI_ADDRFAMILY", socket.EAI_NONAME): "nxdomain",  # none of that family
    socket.EAI_AGAIN: "servfail",
    socket.EAI_FAIL: "servfail",
}
# c-ares status codes (aiohttp's AsyncResolver): NODATA, SERVFAIL, NOTFOUND, REFUSED, TIMEOUT.
_ARES_SUB_REASONS = {1: "nxdomain", 3: "servfail", 4: "nxdomain", 5: "servfail", 12: "timeout"}


def _causes(exc: BaseException) -> list[BaseException]:
    """The exception and what it wraps (aiohttp keeps the OSError in os_error / __cause__)."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and len(chain) < 8 and current not in chain:
        chain.append(current)
        wrapped = getattr(current, "certificate_error", None) or getattr(current, "os_error", None)
        if not isinstance(wrapped, BaseException) or wrapped in chain:
            wrapped = current.__cause__
            if wrapped is None and not current.__suppress_context__:
                wrapped = current.__context__
        current = wrapped
    return chain


def _text(exc: BaseException) -> str:
    """An exception as a person reads it: the OS or OpenSSL message, not its repr."""
    # aiohttp's ClientConnectorCertificateError is one too, without OpenSSL's fields.
    message = getattr(exc, "verify_message", None)
    if isinstance(exc, ssl.SSLCertVerificationError) and message:
        return f"certificate verify failed: {message}"
    if isinstance(exc, OSError) and exc.strerror:
        return str(exc.strerror)
    return str(exc) or type(exc).__name__


def describe_failure(exc: BaseException) -> Failure:
    """Reason, sub-reason and detail of a client exception (aiohttp's, or the OSError under it)."""
    chain = _causes(exc)
    for cause in chain:
        code = cause.errno if isinstance(cause, OSError) else None
        if isinstance(code, int) and code in _LOCAL_ERRNOS:
            return Failure("local", _LOCAL_ERRNOS[code], short_detail(_text(cause)))
    if any(isinstance(c, asyncio.TimeoutError | TimeoutError) for c in chain):
        return Failure("timeout", None, "no answer in time")
    for cause in chain:
        code = getattr(cause, "verify_code", None)
        if isinstance(cause, ssl.SSLCertVerificationError) and isinstance(code, int):
            sub = _VERIFY_CODES.get(code, "handshake")
            return Failure("tls", sub, short_detail(_text(cause)))
    # OpenSSL's own error says more than aiohttp's wrapper around it.
    handshake: list[BaseException] = [c for c in chain if isinstance(c, ssl.SSLError)]
    handshake += [c for c in chain if isinstance(c, aiohttp.ClientSSLError)]
    if handshake:
        text = f"TLS handshake failed: {_text(handshake[0])}"
        return Failure("tls", "handshake", short_detail(text))
    for cause in chain:
        # getaddrinfo's codes are negative: they never clash with an errno.
        gai_code = cause.errno if isinstance(cause, OSError) else None
        if isinstance(cause, socket.gaierror) or (isinstance(gai_code, int) and gai_code < 0):
            gai = _GAI_SUB_REASONS.get(gai_code) if isinstance(gai_code, int) else None
            return Failure("dns", gai, short_detail(_text(cause)))
        if type(cause).__name__ == "DNSError" and cause.args and isinstance(cause.args[0], int):
            text = str(cause.args[1]) if len(cause.args) > 1 else "DNS lookup failed"
            return Failure("dns", _ARES_SUB_REASONS.get(cause.args[0]), short_detail(text))
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return Failure("dns", None, short_detail(_text(chain[-1])))
    if isinstance(exc, aiohttp.TooManyRedirects):
        return Failure("http_status", None, "too many redirects")
    for cause in chain:
        if isinstance(cause, ConnectionRefusedError):
            return Failure("connect", "refused", "connection refused")
        code = cause.errno if isinstance(cause, OSError) else None
        if isinstance(cause, ConnectionResetError | ConnectionAbortedError | BrokenPipeError) or (
            code in _RESET_ERRNOS
        ):
            return Failure("connect", "reset", "connection reset by peer")
        if code in _UNREACHABLE_ERRNOS:
            return Failure("connect", "unreachable", short_detail(_text(cause)))
    # Only the OS's words or the exception's name: an aiohttp message can hold a URL.
    root = chain[-1]
    if isinstance(root, OSError) and root.strerror:
        return Failure("connect", None, short_detail(str(root.strerror)))
    return Failure("connect", None, type(exc).__name__)


def classify_client_error(exc: BaseException) -> TransportReason:
    """Map a client exception (aiohttp's, or the OSError under it) to one failure reason."""
    return describe_failure(exc).reason


@dataclass(slots=True)
class PhaseTimer:
    """Monotonic marks for one logical request (all its redirect hops)."""

    now: Callable[[], float]
    totals: dict[str, float] = field(default_factory=dict)
    dns_before_connect: float = 0.0
    tls_earliest_expiry: float | None = None
    _marks: dict[str, float] = field(default_factory=dict)

    def mark(self, name: str) -> None:
        self._marks[name] = self.now()

    def close(self, phase: str, start_mark: str, end_mark: str | None = None) -> None:
        start = self._marks.pop(start_mark, None)
        if start is None:
            return
        end = self._marks[end_mark] if end_mark else self.now()
        self.totals[phase] = self.totals.get(phase, 0.0) + max(0.0, end - start)

    def get(self, name: str) -> float | None:
        return self._marks.get(name)

    def close_open(self) -> None:
        """After a failure: charge the time spent to the phase that was under way."""
        self.close("dns", "dns_start")
        if "tcp_connected" in self._marks:
            self.close("connect", "connect_start", "tcp_connected")
            self.close("tls", "tcp_connected")
        else:
            self.close("connect", "connect_start")
        self.close("processing", "sent")


# The timer of the request being made in this task: read by the connector, which
# has no other way to learn when TCP ended and TLS began.
_current_timer: ContextVar[PhaseTimer | None] = ContextVar("outagewatch_phase_timer", default=None)


class PhaseTimingConnector(aiohttp.TCPConnector):
    """A TCPConnector that marks the end of the TCP handshake.

    asyncio builds the protocol after the socket is connected and before the
    TLS handshake starts, so wrapping the protocol factory splits connect from tls.
    """

    async def _wrap_create_connection(self, *args: Any, **kwargs: Any) -> Any:
        factory = args[0]
        secure = bool(kwargs.get("ssl"))

        def marked_factory() -> Any:
            timer = _current_timer.get()
            if timer is not None and secure:
                timer.mark("tcp_connected")
            return factory()

        transport, protocol = await super()._wrap_create_connection(
            marked_factory, *args[1:], **kwargs
        )
        timer = _current_timer.get()
        if timer is not None and secure:
            # Read here: a small response releases its connection before the caller sees it.
            timer.tls_earliest_expiry = earliest_expiry(transport.get_extra_info("ssl_object"))
        return transport, protocol


def _trace_config() -> aiohttp.TraceConfig:
    trace = aiohttp.TraceConfig()

    def timer_of(ctx: SimpleNamespace) -> PhaseTimer | None:
        timer = ctx.trace_request_ctx
        return timer if isinstance(timer, PhaseTimer) else None

    async def dns_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        if timer := timer_of(ctx):
            timer.mark("dns_start")

    async def dns_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        if timer := timer_of(ctx):
            timer.close("dns", "dns_start")

    async def connect_start(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        if timer := timer_of(ctx):
            timer.mark("connect_start")
            timer.dns_before_connect = timer.totals.get("dns", 0.0)
            _current_timer.set(timer)

    async def connect_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        timer = timer_of(ctx)
        if timer is None:
            return
        if timer.get("tcp_connected") is not None:
            timer.close("connect", "connect_start", "tcp_connected")
            timer.close("tls", "tcp_connected")
        else:
            timer.close("connect", "connect_start")
        # aiohttp resolves the name inside connection creation: DNS is not connect time.
        dns_in_hop = timer.totals.get("dns", 0.0) - timer.dns_before_connect
        timer.totals["connect"] = max(0.0, timer.totals["connect"] - dns_in_hop)

    async def headers_sent(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        if timer := timer_of(ctx):
            timer.mark("sent")

    async def request_end(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        if timer := timer_of(ctx):
            timer.close("processing", "sent")
            timer.mark("headers_received")

    async def redirect(_s: Any, ctx: SimpleNamespace, _p: Any) -> None:
        if timer := timer_of(ctx):
            timer.close("processing", "sent")

    trace.on_dns_resolvehost_start.append(dns_start)
    trace.on_dns_resolvehost_end.append(dns_end)
    trace.on_connection_create_start.append(connect_start)
    trace.on_connection_create_end.append(connect_end)
    trace.on_request_headers_sent.append(headers_sent)
    trace.on_request_end.append(request_end)
    trace.on_request_redirect.append(redirect)
    return trace


class HttpClients:
    """One client session per IP family, sharing resolver, tracing and limits."""

    def __init__(
        self,
        resolver_factory: Callable[[], AbstractResolver] | None = None,
        limit: int = 0,
    ) -> None:
        self._resolver_factory = resolver_factory
        self._limit = limit
        self._sessions: dict[IpProtocol, aiohttp.ClientSession] = {}
        self._resolver: AbstractResolver | None = None

    async def resolve(self, host: str, port: int, ip_protocol: IpProtocol) -> list[tuple[int, str]]:
        """(family, address) of a name, in the resolver's order: the HTTP probes' DNS phase.

        The same resolver as the sessions' (so tests can inject one), shared by all probes.
        """
        resolver = self._resolver
        if resolver is None:
            factory = self._resolver_factory or DefaultResolver
            resolver = self._resolver = factory()
        results = await resolver.resolve(host, port, _FAMILIES[ip_protocol])
        return [(result["family"], result["host"]) for result in results]

    def session(self, ip_protocol: IpProtocol = "any") -> aiohttp.ClientSession:
        """The session for that IP family, made on first use."""
        session = self._sessions.get(ip_protocol)
        if session is None:
            connector = PhaseTimingConnector(
                family=_FAMILIES[ip_protocol],
                force_close=True,
                use_dns_cache=False,
                limit=self._limit,
                resolver=self._resolver_factory() if self._resolver_factory else None,
            )
            session = aiohttp.ClientSession(
                connector=connector,
                trace_configs=[_trace_config()],
                headers={"User-Agent": USER_AGENT},
                auto_decompress=True,
            )
            self._sessions[ip_protocol] = session
        return session

    async def close(self) -> None:
        sessions, self._sessions = list(self._sessions.values()), {}
        await asyncio.gather(*(s.close() for s in sessions), return_exceptions=True)
        resolver, self._resolver = self._resolver, None
        if resolver is not None:
            await resolver.close()
