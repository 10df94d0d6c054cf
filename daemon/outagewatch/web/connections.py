"""Connection hygiene: a cap on inbound connections, timeouts, fds, accept errors.

Slow or idle clients must not take the file descriptors the probes need: if they
did, every probe would fail with "Too many open files" and an attacker could fake
an outage. See docs/security.md for the fd arithmetic.
"""

from __future__ import annotations

import asyncio
import resource
import ssl
import time
from asyncio import sslproto
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, cast

import structlog
from aiohttp import web
from prometheus_client.core import Metric
from prometheus_client.registry import Collector

from outagewatch.catalogue import Families

# fds the process needs besides inbound connections and probes: stdio, the event
# loop's selector and self-pipe, SQLite's database, WAL and shm files, the systemd
# notify socket, the resolver, imported modules being read.
FD_RESERVE = 64
# A probe holds one socket, two while a redirect or a DNS lookup overlaps it.
FDS_PER_PROBE = 2


@dataclass(frozen=True)
class ServerTimeouts:
    """Go's http.Server names: ReadHeaderTimeout, ReadTimeout (the body), IdleTimeout."""

    header: float = 10.0
    body: float = 30.0
    idle: float = 30.0


def raise_fd_limit() -> tuple[int, int]:
    """Raise the soft RLIMIT_NOFILE to the hard limit; return (soft, hard) after."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):  # e.g. a seccomp filter without @resources
            return soft, hard
        soft = hard
    return soft, hard


def connection_cap(wanted: int, fd_limit: int, probe_concurrency: int) -> int:
    """The cap on inbound connections that still leaves the probes their fds."""
    room = fd_limit - FD_RESERVE - FDS_PER_PROBE * probe_concurrency
    return max(1, min(wanted, room))


class ConnectionGate:
    """Wraps the server's protocol factory: counts connections and closes the excess.

    At the cap a new connection first displaces the oldest one still waiting for its
    first request head (a slow or idle client; a real client sends its head at once),
    so a flood of slow connections cannot lock Prometheus out. Only when every
    connection has sent a request is the new one closed.

    With TLS the gate puts asyncio's SSLProtocol in place itself after counting the
    connection, so connections in their handshake are capped too.
    """

    def __init__(
        self,
        factory: Callable[[], asyncio.Protocol],
        limit: int,
        header_timeout: float,
        tls: ssl.SSLContext | None = None,
    ) -> None:
        self._factory = factory
        self.limit = limit
        self.header_timeout = header_timeout
        self.tls = tls
        self.open = 0
        self.refused = 0
        self.header_timeouts = 0
        # Connections without a first request head yet, oldest first.
        self.waiting: dict[_Counted, None] = {}

    def __call__(self) -> asyncio.Protocol:
        return _Counted(self)

    def close_waiting(self) -> None:
        """Drop the connections that never sent a request (at shutdown)."""
        for connection in list(self.waiting):
            connection._close()


class _Counted(asyncio.Protocol):
    """One inbound connection: forwards to aiohttp's handler unless over the cap.

    It also times the first request head: aiohttp's keep-alive timer bounds the wait
    for later heads, but a first head sent a byte at a time would hold its fd for the
    whole idle timeout.
    """

    def __init__(self, gate: ConnectionGate) -> None:
        self._gate = gate
        self._counted = False  # in gate.open
        self._inner: asyncio.Protocol | None = None
        self._transport: asyncio.Transport | None = None
        self._head_timer: asyncio.TimerHandle | None = None
        self._tail = b""  # the last bytes seen, for a head end split across reads

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        gate = self._gate
        # uvloop's transports are not asyncio.Transport subclasses, only alike.
        transport = cast(asyncio.Transport, transport)
        if gate.open >= gate.limit:
            gate.refused += 1
            if not gate.waiting:
                transport.abort()  # at once: no response, no lingering fd
                return
            next(iter(gate.waiting))._close()  # the oldest without a request
        gate.open += 1
        self._counted = True
        self._transport = transport
        loop = asyncio.get_running_loop()
        # One deadline for the TLS handshake and the first request head together.
        self._head_timer = loop.call_later(gate.header_timeout, self._head_too_slow)
        gate.waiting[self] = None
        if gate.tls is None:
            self._serve(transport)
        else:
            self._start_tls(loop, transport, gate.tls)

    def _start_tls(
        self, loop: asyncio.AbstractEventLoop, transport: asyncio.Transport, tls: ssl.SSLContext
    ) -> None:
        """Put TLS between the socket and us, now: what loop.start_tls does, but not
        from a task, which under uvloop lets the ClientHello reach us first."""
        handshake = loop.create_future()
        handshake.add_done_callback(self._handshake_done)
        secured = sslproto.SSLProtocol(
            loop,
            _Secured(self),
            tls,
            handshake,
            server_side=True,  # the handshake's deadline is the head timer's
        )
        transport.set_protocol(secured)
        secured.connection_made(transport)

    def _handshake_done(self, handshake: asyncio.Future[None]) -> None:
        failed = handshake.cancelled() or handshake.exception() is not None
        if failed or self._inner is None:  # failed, timed out, or the client left
            self._close()

    def _serve(self, transport: asyncio.Transport) -> None:
        if not self._counted:  # closed while its handshake ended
            transport.abort()
            return
        self._transport = transport
        self._inner = self._gate._factory()
        self._inner.connection_made(transport)

    def _head_too_slow(self) -> None:
        self._gate.header_timeouts += 1
        self._close()

    def _head_arrived(self) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        self._gate.waiting.pop(self, None)

    def _close(self) -> None:
        """Abort now and count it gone now: the transport reports the loss later."""
        transport = self._transport
        self.connection_lost(None)
        if transport is not None:
            transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self._head_arrived()
        self._transport = None
        if self._counted:
            self._counted = False
            self._gate.open -= 1
        if self._inner is not None:
            inner, self._inner = self._inner, None
            inner.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._head_timer is not None:
            seen = self._tail + data
            if b"\r\n\r\n" in seen or b"\n\n" in seen:  # bare LF: the parser allows it
                self._head_arrived()
                self._tail = b""
            else:
                self._tail = seen[-3:]
        if self._inner is not None:
            self._inner.data_received(data)

    def eof_received(self) -> bool | None:
        return self._inner.eof_received() if self._inner is not None else None

    def pause_writing(self) -> None:
        if self._inner is not None:
            self._inner.pause_writing()

    def resume_writing(self) -> None:
        if self._inner is not None:
            self._inner.resume_writing()


class _Secured(asyncio.Protocol):
    """The TLS side of a connection: what asyncio's SSLProtocol says goes to _Counted."""

    def __init__(self, connection: _Counted) -> None:
        self._connection = connection

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._connection._serve(cast(asyncio.Transport, transport))

    def connection_lost(self, exc: Exception | None) -> None:
        self._connection.connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        self._connection.data_received(data)

    def eof_received(self) -> bool | None:
        return self._connection.eof_received()

    def pause_writing(self) -> None:
        self._connection.pause_writing()

    def resume_writing(self) -> None:
        self._connection.resume_writing()


class GatedSite(web.TCPSite):
    """A TCPSite whose connections pass through a ConnectionGate."""

    def __init__(
        self,
        runner: web.AppRunner,
        host: str | None,
        port: int,
        gate_limit: int,
        header_timeout: float,
        **kwargs: Any,
    ) -> None:
        super().__init__(runner, host, port, **kwargs)
        self._gate_limit = gate_limit
        self._header_timeout = header_timeout
        self.gate: ConnectionGate | None = None

    async def start(self) -> None:
        # TCPSite.start without its own create_server: the same arguments, gated.
        await web.BaseSite.start(self)
        server = self._runner.server
        assert server is not None
        self.gate = ConnectionGate(
            server, self._gate_limit, self._header_timeout, self._ssl_context
        )
        # No ssl= here: the gate counts a connection before its handshake.
        self._server = await asyncio.get_running_loop().create_server(
            self.gate,
            self._host,
            self._port,
            backlog=self._backlog,
            reuse_address=self._reuse_address,
            reuse_port=self._reuse_port,
        )
        sockets = self._server.sockets
        self._bound_port = sockets[0].getsockname()[1] if sockets else self._port

    async def stop(self) -> None:
        if self.gate is not None:
            self.gate.close_waiting()
        await super().stop()


class ConnectionsCollector(Collector):
    """``outagewatch_http_connections*`` from the gate at scrape time."""

    def __init__(self, gate: Callable[[], ConnectionGate | None]) -> None:
        self._gate = gate

    def collect(self) -> Iterator[Metric]:
        gate = self._gate()
        if gate is None:
            return
        fams = Families(
            "outagewatch_http_connections",
            "outagewatch_http_connections_limit",
            "outagewatch_http_connections_refused_total",
            "outagewatch_http_header_timeouts_total",
        )
        fams.add("outagewatch_http_connections", [], gate.open)
        fams.add("outagewatch_http_connections_limit", [], gate.limit)
        fams.add("outagewatch_http_connections_refused_total", [], gate.refused)
        fams.add("outagewatch_http_header_timeouts_total", [], gate.header_timeouts)
        yield from fams


class AcceptErrorLog:
    """The loop's exception handler: accept errors once per interval with a count.

    At the fd limit asyncio retries accept() every second per listening socket and
    each failure went to the log with a traceback; one line per interval says as much.
    """

    def __init__(self, interval: float = 10.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._interval = interval
        self._clock = clock
        self._pending = 0
        self._last: float | None = None
        self.log = structlog.get_logger("outagewatch.web")

    def __call__(self, loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # asyncio says "socket.accept() out of system resource" (EMFILE, ENFILE, ...),
        # other errors come as an exception in the _accept_connection callback.
        if "accept" not in str(context.get("message", "")):
            loop.default_exception_handler(context)
            return
        self._pending += 1
        now = self._clock()
        if self._last is not None and now - self._last < self._interval:
            return
        exc = context.get("exception")
        self.log.error(
            "accept_failed",
            error=str(exc) if exc is not None else context.get("message"),
            count=self._pending,
            interval_seconds=self._interval,
        )
        self._pending = 0
        self._last = now
