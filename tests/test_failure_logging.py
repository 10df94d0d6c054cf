"""A failing probe says why in the log: at its first failure, then when the cause changes."""

from __future__ import annotations

import errno
import socket
import ssl

import aiohttp
import pytest
from aiohttp.client_reqrep import ConnectionKey
from structlog.testing import capture_logs

from outagewatch.clock import FakeClock
from outagewatch.lenses.probe import DETAIL_LOG_INTERVAL
from outagewatch.observations import DETAIL_LIMIT, SUB_REASONS, ProbeResult
from outagewatch.pipeline import Pipeline
from outagewatch.sources.client import Failure, describe_failure


def failed(clock: FakeClock, detail: str, reason: str = "tls") -> ProbeResult:
    return ProbeResult(
        service="claude",
        probe="api",
        kind="http",
        time=clock.time(),
        success=False,
        duration_seconds=0.1,
        reason=reason,
        sub_reason="expired" if reason == "tls" else None,
        detail=detail,
    )


def ok(clock: FakeClock) -> ProbeResult:
    return ProbeResult("claude", "api", "http", clock.time(), True, 0.1)


def failure_logs(logs: list[dict[str, object]]) -> list[tuple[object, object]]:
    return [(e["event"], e.get("detail")) for e in logs if e["event"] != "probe_up"]


def test_failing_from_start_logs_once_then_each_change_at_most_once_a_minute() -> None:
    clock = FakeClock()
    pipeline = Pipeline(clock)
    with capture_logs() as logs:
        for _ in range(40):
            pipeline.ingest([failed(clock, "certificate has expired")])
            clock.advance(1)
        assert failure_logs(logs) == [("probe_failing", "certificate has expired")]
        # A new cause within the minute waits; after it, it is logged.
        pipeline.ingest([failed(clock, "connection refused", "connect")])
        clock.advance(DETAIL_LOG_INTERVAL)
        pipeline.ingest([failed(clock, "connection refused", "connect")])
        pipeline.ingest([failed(clock, "connection refused", "connect")])
    assert failure_logs(logs) == [
        ("probe_failing", "certificate has expired"),
        ("probe_failing", "connection refused"),
    ]
    assert logs[-1]["reason"] == "connect" and logs[-1]["sub_reason"] is None


def test_an_up_probe_going_down_logs_the_change_with_its_detail_only() -> None:
    clock = FakeClock()
    pipeline = Pipeline(clock)
    with capture_logs() as logs:
        pipeline.ingest([ok(clock)])
        for _ in range(3):
            clock.advance(1)
            pipeline.ingest([failed(clock, "certificate has expired")])
    assert failure_logs(logs) == [("probe_down", "certificate has expired")]
    assert logs[0]["sub_reason"] == "expired"


def test_a_detail_is_one_bounded_line() -> None:
    clock = FakeClock()
    result = failed(clock, "x\n" * 500)
    assert result.detail is not None and len(result.detail) == DETAIL_LIMIT
    assert "\n" not in result.detail


def _wrapped(os_error: OSError) -> aiohttp.ClientConnectorError:
    key = ConnectionKey("h.test", 443, True, True, None, None, None)
    return aiohttp.ClientConnectorError(key, os_error)


@pytest.mark.parametrize(
    ("exc", "expected"),
    [
        (ConnectionRefusedError(errno.ECONNREFUSED, "Connection refused"), ("connect", "refused")),
        (ConnectionResetError(errno.ECONNRESET, "reset"), ("connect", "reset")),
        (OSError(errno.ENETUNREACH, "Network is unreachable"), ("connect", "unreachable")),
        (OSError(errno.EHOSTUNREACH, "No route to host"), ("connect", "unreachable")),
        (OSError(errno.EMFILE, "Too many open files"), ("local", "fd_exhausted")),
        (OSError(errno.ENFILE, "Too many open files in system"), ("local", "fd_exhausted")),
        (OSError(errno.ENOBUFS, "No buffer space available"), ("local", "no_buffers")),
        (OSError(errno.ENOMEM, "Cannot allocate memory"), ("local", "no_memory")),
        (socket.gaierror(socket.EAI_NONAME, "Name or service not known"), ("dns", "nxdomain")),
        (socket.gaierror(socket.EAI_AGAIN, "Temporary failure"), ("dns", "servfail")),
        (socket.gaierror(socket.EAI_FAIL, "Non-recoverable failure"), ("dns", "servfail")),
        (ssl.SSLError(1, "[SSL: WRONG_VERSION_NUMBER] wrong version number"), ("tls", "handshake")),
        (TimeoutError(), ("timeout", None)),
    ],
)
def test_client_errors_have_their_reason_and_sub_reason(
    exc: OSError, expected: tuple[str, str | None]
) -> None:
    for error in (exc, _wrapped(exc)):  # as the OS raises it, and as aiohttp wraps it
        failure = describe_failure(error)
        assert (failure.reason, failure.sub_reason) == expected, error
        assert failure.sub_reason is None or failure.sub_reason in SUB_REASONS[failure.reason]
        assert failure.detail and len(failure.detail) <= DETAIL_LIMIT


def test_certificate_verify_codes_name_the_cause() -> None:
    for code, sub_reason in [
        (10, "expired"),
        (62, "hostname_mismatch"),
        (18, "self_signed"),
        (19, "self_signed"),
        (20, "unknown_ca"),
        (26, "handshake"),
    ]:
        error = ssl.SSLCertVerificationError(1, "certificate verify failed")
        error.verify_code, error.verify_message = code, "why"
        assert describe_failure(error) == Failure(
            "tls", sub_reason, "certificate verify failed: why"
        )
