"""Official status pages (`kind: statuspage | incidentio | google`).

One source per page: it fetches the page's JSON with conditional requests,
backs off after 429/5xx answers, and yields a ``StatusSnapshot``. A run that
reads nothing usable raises ``SourceError`` with one reason (see
``FAILURE_REASONS``); the pipeline then keeps the last good snapshot.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import aiohttp

from outagewatch.config_types import ComponentPage, GooglePage, IncidentIoPage, StatusPageConfig
from outagewatch.keys import status_source_key
from outagewatch.lenses.statuspage.formats import (
    PageReading,
    parse_google,
    parse_incidentio_native,
    parse_statuspage,
)
from outagewatch.observations import StatusSnapshot
from outagewatch.sources import bounded_json
from outagewatch.sources.base import RunContext
from outagewatch.sources.client import classify_client_error
from outagewatch.sources.errors import STATUS_FAILURE_REASONS, SourceError, StatusReason
from outagewatch.sources.polling import RunBackoff, read_capped
from outagewatch.sources.redirects import get_following_redirects

FAILURE_REASONS = STATUS_FAILURE_REASONS
_SUMMARY_PATH = "/api/v2/summary.json"
# Bodies of bot-protection interstitials (Cloudflare's, the common one here).
_CHALLENGE_MARKERS = re.compile(
    rb"/cdn-cgi/challenge-platform/|_cf_chl_opt|<title>Just a moment\.\.\.</title>", re.IGNORECASE
)
# Failures the native incident.io summary may get around; an overloaded or
# protected host would answer the second URL the same way.
_FALLBACK_REASONS = {"http_status", "html", "invalid_json", "bad_format"}

# JSON values decoded per body (see bounded_json): a Statuspage or incident.io
# summary has a few thousand, Google's whole incident history some hundred thousand.
# Past 200,000 the decoding yields to the loop; past these it is refused.
_MAX_JSON_VALUES = {"statuspage": 1_000_000, "incidentio": 1_000_000, "google": 2_000_000}

Parser = Callable[[Any], PageReading]


@dataclass(frozen=True)
class _Cached:
    """The validators and reading of a URL's last 200, for conditional requests."""

    etag: str | None
    last_modified: str | None
    reading: PageReading


def _looks_like_html(content_type: str, body: bytes) -> bool:
    return "html" in content_type.lower() or body.lstrip()[:1] == b"<"


class StatusPageSource:
    """Reads one official status page once per interval."""

    def __init__(self, service: str, name: str, config: StatusPageConfig) -> None:
        self.service = service
        self.name = name
        self.config = config
        self.kind = config.kind
        self.key = status_source_key(service, name)
        self.interval = config.interval
        self.timeout = config.timeout
        self.log_context = {"service": service, "page": name, "target": config.url}
        self._cache: dict[str, _Cached] = {}
        self._backoff = RunBackoff(config.interval, config.max_backoff)
        self._warned_missing: set[str] = set()

    def _urls(self) -> list[tuple[str, Parser]]:
        """The URLs to try in order, each with its parser."""
        cfg = self.config
        if isinstance(cfg, GooglePage):
            products = cfg.products
            return [(cfg.url, lambda doc: parse_google(doc, products))]
        assert isinstance(cfg, ComponentPage)
        selectors = cfg.components
        base = cfg.url.rstrip("/")
        urls: list[tuple[str, Parser]] = [
            (base + _SUMMARY_PATH, lambda doc: parse_statuspage(doc, selectors))
        ]
        if isinstance(cfg, IncidentIoPage) and cfg.native_fallback:
            host = urlsplit(cfg.url).hostname or ""
            urls.append(
                (f"{base}/proxy/{host}", lambda doc: parse_incidentio_native(doc, selectors))
            )
        return urls

    async def collect(self, ctx: RunContext) -> Sequence[StatusSnapshot]:
        self._backoff.check()
        reading = await self._read(ctx)
        self._backoff.succeeded()
        for selector in reading.missing_components:
            if selector not in self._warned_missing:
                self._warned_missing.add(selector)
                ctx.log.warning("status_component_not_on_page", component=selector)
        if reading.open_incidents_dropped:
            # One line per fetch, never one per incident.
            ctx.log.warning(
                "status_open_incidents_capped",
                kept=sum(1 for i in reading.incidents if i.open),
                dropped=reading.open_incidents_dropped,
            )
        return [
            StatusSnapshot(
                service=self.service,
                page=self.name,
                kind=self.kind,
                time=ctx.clock.time(),
                indicator=reading.indicator,
                components=dict(reading.components),
                incidents=reading.incidents,
                maintenance_active=reading.maintenance_active,
                component_names=dict(reading.component_names),
                open_incidents_dropped=reading.open_incidents_dropped,
            )
        ]

    async def _read(self, ctx: RunContext) -> PageReading:
        urls = self._urls()
        for index, (url, parser) in enumerate(urls):
            try:
                return await self._read_url(ctx, url, parser)
            except SourceError as exc:
                if index == len(urls) - 1 or exc.reason not in _FALLBACK_REASONS:
                    raise
                ctx.log.info("status_fallback", reason=exc.reason, detail=exc.detail)
        raise AssertionError("unreachable")

    async def _read_url(self, ctx: RunContext, url: str, parser: Parser) -> PageReading:
        cfg = self.config
        headers = {"Accept": "application/json"}
        cached = self._cache.get(url)
        if cached is not None and cached.etag:
            headers["If-None-Match"] = cached.etag
        if cached is not None and cached.last_modified:
            headers["If-Modified-Since"] = cached.last_modified
        try:
            async with get_following_redirects(
                ctx.http.session(), url, headers, cfg.max_redirects, cfg.redirect_to_other_hosts
            ) as response:
                body = await read_capped(response, self.config.max_body_bytes)
                status, answer_headers = response.status, response.headers
        except aiohttp.ClientPayloadError as exc:
            raise SourceError("truncated", f"{type(exc).__name__}: {exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise SourceError(classify_client_error(exc), f"{type(exc).__name__}: {exc}") from None
        content_type = answer_headers.get("Content-Type", "")
        if answer_headers.get("cf-mitigated", "").lower() == "challenge" or (
            _looks_like_html(content_type, body) and _CHALLENGE_MARKERS.search(body)
        ):
            raise SourceError("challenge", f"bot challenge (HTTP {status})")
        if status == 304 and cached is not None:
            return cached.reading
        if status == 429 or status >= 500:
            self._backoff.failed(answer_headers.get("Retry-After"), ctx.clock.time())
            reason: StatusReason = "rate_limited" if status == 429 else "http_status"
            raise SourceError(reason, f"HTTP {status}")
        if status != 200:
            raise SourceError("http_status", f"HTTP {status}")
        if _looks_like_html(content_type, body):
            raise SourceError("html", f"an HTML page instead of JSON (HTTP {status})")
        max_values = _MAX_JSON_VALUES[self.kind]
        reading = await asyncio.to_thread(self._parse, body, parser, max_values)
        self._cache[url] = _Cached(
            answer_headers.get("ETag"), answer_headers.get("Last-Modified"), reading
        )
        return reading

    @staticmethod
    def _parse(body: bytes, parser: Parser, max_values: int) -> PageReading:
        """Decode and parse off the event loop: Google's history runs to megabytes."""
        try:
            document = bounded_json.loads(body, max_values)
        except bounded_json.JsonTooLarge as exc:
            raise SourceError("too_large", f"{exc} ({len(body)} bytes)") from None
        except ValueError as exc:  # also too deep, or a number past 4300 digits
            raise SourceError("invalid_json", f"{str(exc)[:200]} ({len(body)} bytes)") from None
        try:
            return parser(document)
        except ValueError as exc:
            raise SourceError("bad_format", str(exc)) from None
