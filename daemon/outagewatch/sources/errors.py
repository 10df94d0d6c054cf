"""One failure family for every source: ``SourceError`` with a reason from a
``Literal`` set that mypy checks.

A run that observed nothing raises ``SourceError``; the scheduler records its
reason. The protocol errors below are the same family with a narrower set, so no
source translates one exception type into another by hand. The reason strings
are label values of the failure counters: they never change.
"""

from __future__ import annotations

from typing import Literal, get_args

from outagewatch.observations import ChatOutcome, ProbeReason, short_detail

# What the transport can fail with, whatever the protocol (sources/client.py).
TransportReason = Literal["timeout", "dns", "connect", "tls", "http_status", "local"]
# Why a status page run failed (lenses/statuspage/source.py).
StatusReason = Literal[
    "timeout",
    "dns",
    "connect",
    "tls",
    "truncated",  # the connection closed before the announced body ended
    "too_large",
    "challenge",  # a bot-protection answer: inconclusive, not "page down"
    "rate_limited",
    "http_status",
    "backoff",  # a run skipped while waiting out a 429/5xx
    "html",  # an HTML page where JSON was expected (often a 200 error page)
    "invalid_json",
    "bad_format",  # JSON, but not the page format
    "redirect",  # a redirect to another host (not allowed), or too many
]
# Why a traffic query run failed (lenses/traffic/source.py).
TrafficReason = Literal[
    "timeout",
    "dns",
    "connect",
    "tls",
    "http_status",  # an HTTP error without Prometheus' error JSON
    "rate_limited",
    "backoff",  # a run skipped while waiting out a 429/5xx
    "too_large",
    "bad_response",  # not the API's JSON, or its `status: error` (errorType and error kept)
    "too_many_series",  # more series than max_series
    "no_data",  # an empty vector: the query matched nothing
    "non_finite",  # a NaN or infinite sample
    "credential",  # the configured secret cannot be read
]
# Why a chart fetch failed (lenses/appstore/source.py).
FeedReason = Literal[
    "throttled",  # HTTP 403/429, or a legacy feed with no entries
    "server_error",  # HTTP 5xx
    "http_status",  # any other unexpected status
    "html",  # an HTML page where a feed was expected (often with 200)
    "invalid",  # not the feed's JSON/XML shape
    "truncated",  # the body ends before the document does
    "empty",  # an empty chart where the last read had entries
    "too_large",
    "backoff",  # no request: still backing off after a throttled or failed fetch
    "timeout",
    "dns",
    "connect",
    "tls",
    "redirect",  # a redirect to another host (not allowed), or too many
]
Reason = ProbeReason | ChatOutcome | StatusReason | TrafficReason | FeedReason

STATUS_FAILURE_REASONS: tuple[StatusReason, ...] = get_args(StatusReason)
TRAFFIC_FAILURE_REASONS: tuple[TrafficReason, ...] = get_args(TrafficReason)
FEED_FAILURE_REASONS: tuple[FeedReason, ...] = get_args(FeedReason)


class SourceError(Exception):
    """A run (or a step of it) that failed, with one reason from a fixed set."""

    def __init__(self, reason: Reason, detail: str = "") -> None:
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason: Reason = reason
        self.detail = detail


class WireError(SourceError):
    """An HTTP probe's request that failed (sources/wire.py).

    ``status`` is the answer's status code when its head arrived before the failure.
    """

    def __init__(
        self,
        reason: ProbeReason,
        detail: str,
        sub_reason: str | None = None,
        status: int | None = None,
    ) -> None:
        super().__init__(reason, short_detail(detail))
        self.reason: ProbeReason = reason
        self.sub_reason = sub_reason
        self.status = status


class FeedError(SourceError):
    """A body that is not a usable chart (lenses/appstore/source.py)."""

    def __init__(self, reason: FeedReason, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason: FeedReason = reason


class ChatFailure(SourceError):
    """Ends a chat run with one outcome class (lenses/chat/source.py)."""

    def __init__(self, reason: ChatOutcome, detail: str) -> None:
        super().__init__(reason, detail)
        self.reason: ChatOutcome = reason


class SSEError(SourceError):
    """The bytes are not an event stream (bad UTF-8, an endless line): a bad response."""

    def __init__(self, detail: str) -> None:
        super().__init__("bad_response", detail)
