"""App Store chart ranks (`kind: appstore`): one source per chart feed URL.

Reads Apple's RSS feed generator v2 (JSON) and the legacy iTunes RSS (JSON or
Atom XML). Each country x chart is one feed, fetched once per interval however
many services read it; the snapshot carries every app's rank, and the
pipeline picks out the tracked ones. Apps are matched on their numeric id,
never their name.

The parsers are pure functions of the body, so the quirks of each format are
tested on their own: a legacy feed without ``entry`` is throttled (never an
empty chart), one entry may come as an object instead of a list, an HTML page
may come with status 200.
"""

from __future__ import annotations

import asyncio
import json
import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any
from xml.etree.ElementTree import ParseError

import aiohttp
import defusedxml.ElementTree as SafeET
from defusedxml import DefusedXmlException

from outagewatch.config_types import Config
from outagewatch.keys import CHART_FEED_KIND, chart_feed_key
from outagewatch.lenses.appstore import (
    APPSTORE_MAX_LIMIT,
    LEGACY_CHART_FEEDS,
    AppStoreChart,
    AppStoreConfig,
    ChartSnapshot,
    appstore_config,
    service_app,
)
from outagewatch.sources import bounded_json
from outagewatch.sources.base import RunContext
from outagewatch.sources.client import classify_client_error
from outagewatch.sources.errors import FeedError, FeedReason, SourceError
from outagewatch.sources.polling import RunBackoff, read_capped
from outagewatch.sources.redirects import get_following_redirects

_ATOM = "{http://www.w3.org/2005/Atom}"
_ITUNES = "{http://itunes.apple.com/rss}"
_ACCEPT = {
    "v2": "application/json",
    "legacy-json": "application/json",
    "legacy-xml": "application/atom+xml, application/xml;q=0.9",
}
# Bounds on what one body may cost (see docs/appstore.md).
MAX_XML_DEPTH = 32  # an Atom chart is 4 deep; deeper nesting is not a chart
_NAME_LIMIT = 200  # app names kept per entry
# A throttled legacy feed is its header alone (a few kB); a big body without
# entries is something else.
_THROTTLED_MAX_BYTES = 64 * 1024
_MAX_REDIRECTS = 5
_APP_ID = re.compile(r"[0-9]{1,15}")
_HTML_START = re.compile(rb"^\s*(<!--.*?-->\s*)*<(!doctype\s+html|html[\s>])", re.I | re.S)


@dataclass(frozen=True, slots=True)
class ChartEntry:
    """One place in a chart: the app's numeric id and the name it had then."""

    app_id: str
    name: str


def looks_like_html(body: bytes) -> bool:
    """Whether a body is an HTML page (a store front page, an error page)."""
    return bool(_HTML_START.match(body[:4096]))


def _unclosed_json(text: str) -> bool:
    """Whether JSON text stops inside a string or an open object/array."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
    return in_string or depth > 0


def _load_json(body: bytes) -> Any:
    if looks_like_html(body):
        raise FeedError("html", "an HTML page, not a feed")
    if not body.strip():
        raise FeedError("invalid", "empty body")
    try:
        return bounded_json.loads(body, bounded_json.FAST_VALUES)
    except bounded_json.JsonTooLarge as exc:
        raise FeedError("too_large", str(exc)) from None
    except UnicodeDecodeError as exc:
        raise FeedError("invalid", f"not UTF-8: {exc.reason}") from None
    except json.JSONDecodeError as exc:
        text = body.decode("utf-8", errors="replace")
        reason: FeedReason = "truncated" if _unclosed_json(text) else "invalid"
        raise FeedError(reason, f"JSON: {exc.msg} at offset {exc.pos}") from None
    except ValueError as exc:  # nested too deep, or a number past 4300 digits
        raise FeedError("invalid", f"JSON: {str(exc)[:120]}") from None


def _no_entries(body: bytes) -> FeedError:
    """A feed without entries: throttled when it is small, as Apple's throttle answer is."""
    if len(body) > _THROTTLED_MAX_BYTES:
        return FeedError("invalid", f"no entry in a feed of {len(body)} bytes")
    return FeedError("throttled", "the feed has no entry (throttled)")


def _feed_object(document: Any) -> dict[str, Any]:
    feed = document.get("feed") if isinstance(document, dict) else None
    if not isinstance(feed, dict):
        raise FeedError("invalid", "no feed object")
    return feed


def _app_id(value: Any, where: str) -> str:
    text = str(value) if isinstance(value, int | str) and not isinstance(value, bool) else ""
    if not _APP_ID.fullmatch(text):
        raise FeedError("invalid", f"{where}: no numeric app id")
    return text


def _text(value: Any) -> str:
    return value[:_NAME_LIMIT] if isinstance(value, str) else ""


def parse_v2_json(body: bytes, max_entries: int = APPSTORE_MAX_LIMIT) -> list[ChartEntry]:
    """Entries of an RSS feed generator v2 chart, in rank order, at most ``max_entries``."""
    results = _feed_object(_load_json(body)).get("results")
    if isinstance(results, dict):
        results = [results]
    if not isinstance(results, list):
        raise FeedError("invalid", "no results list")
    entries = []
    for position, result in enumerate(results[:max_entries], start=1):
        if not isinstance(result, dict):
            raise FeedError("invalid", f"result {position} is not an object")
        app_id = _app_id(result.get("id"), f"result {position}")
        entries.append(ChartEntry(app_id, _text(result.get("name"))))
    return entries


def _label(node: Any) -> str:
    return _text(node.get("label")) if isinstance(node, dict) else ""


def parse_legacy_json(body: bytes, max_entries: int = APPSTORE_MAX_LIMIT) -> list[ChartEntry]:
    """Entries of a legacy iTunes RSS JSON chart, in rank order, at most ``max_entries``.

    Without ``entry`` the feed is throttled: an error, never an empty chart.
    """
    feed = _feed_object(_load_json(body))
    if "entry" not in feed:
        raise _no_entries(body)
    raw = feed["entry"]
    if isinstance(raw, dict):
        raw = [raw]  # one result comes as an object, not a list
    if not isinstance(raw, list):
        raise FeedError("invalid", "entry is neither a list nor an object")
    entries = []
    for position, entry in enumerate(raw[:max_entries], start=1):
        where = f"entry {position}"
        if not isinstance(entry, dict):
            raise FeedError("invalid", f"{where} is not an object")
        id_node = entry.get("id")
        attributes = id_node.get("attributes") if isinstance(id_node, dict) else None
        if not isinstance(attributes, dict):
            raise FeedError("invalid", f"{where}: no id attributes")
        app_id = _app_id(attributes.get("im:id"), where)
        entries.append(ChartEntry(app_id, _label(entry.get("im:name"))))
    return entries


def _local(tag: str) -> str:
    return tag.rpartition("}")[2]


class _AtomChart:
    """An XML parser target that keeps only each entry's app id and name.

    Streaming, so an 8 MB body never becomes a tree; nesting past
    MAX_XML_DEPTH stops the parse, as no chart is that deep.
    """

    def __init__(self, max_entries: int) -> None:
        self.max_entries = max_entries
        self.root: str | None = None
        self.entries: list[ChartEntry] = []
        self.entry_count = 0
        self._depth = 0
        self._ids: dict[str, str | None] = {}  # "atom" / "plain" -> im:id of this entry
        self._name: list[str] | None = None  # text of this entry's first im:name
        self._in_name = False
        self._in_entry = False

    def start(self, tag: str, attrib: dict[str, str]) -> None:
        self._depth += 1
        self._in_name = False  # findtext semantics: only the text before a child
        if self._depth > MAX_XML_DEPTH:
            raise FeedError("invalid", f"XML nested deeper than {MAX_XML_DEPTH} elements")
        if self._depth == 1:
            self.root = _local(tag)
            if self.root == "html":
                raise FeedError("html", "an HTML page, not a feed")
            if self.root != "feed":
                raise FeedError("invalid", f"root element is <{self.root[:40]}>, not <feed>")
        elif self._depth == 2:
            self._in_entry = _local(tag) == "entry"
            if self._in_entry:
                self.entry_count += 1
                self._ids, self._name = {}, None
        elif self._depth == 3 and self._in_entry:
            if tag in (f"{_ATOM}id", "id"):
                self._ids.setdefault("plain" if tag == "id" else "atom", attrib.get(f"{_ITUNES}id"))
            elif tag == f"{_ITUNES}name" and self._name is None:
                self._name, self._in_name = [], True

    def data(self, text: str) -> None:
        if self._in_name and self._name is not None and sum(map(len, self._name)) < _NAME_LIMIT:
            self._name.append(text)

    def end(self, tag: str) -> None:
        self._in_name = False
        if self._depth == 2 and self._in_entry and len(self.entries) < self.max_entries:
            ids = self._ids
            found = ids.get("atom") if "atom" in ids else ids.get("plain")
            app_id = _app_id(found, f"entry {self.entry_count}")
            name = "".join(self._name or [])[:_NAME_LIMIT].strip()
            self.entries.append(ChartEntry(app_id, name))
        self._depth -= 1

    def close(self) -> None:
        return None


def parse_legacy_xml(body: bytes, max_entries: int = APPSTORE_MAX_LIMIT) -> list[ChartEntry]:
    """Entries of a legacy iTunes RSS Atom chart (``im:`` namespace), in rank order.

    A feed without any entry is throttled, as in the JSON flavour.
    """
    if looks_like_html(body):
        raise FeedError("html", "an HTML page, not a feed")
    if not body.strip():
        raise FeedError("invalid", "empty body")
    chart = _AtomChart(max_entries)
    parser = SafeET.DefusedXMLParser(target=chart)
    try:
        parser.feed(body)
        parser.close()
    except ParseError as exc:
        # expat 3 "no element found", 5 "unclosed token": the text stopped early.
        reason: FeedReason = "truncated" if getattr(exc, "code", None) in (3, 5) else "invalid"
        raise FeedError(reason, f"XML: {exc}") from None
    except DefusedXmlException as exc:
        raise FeedError("invalid", f"XML: forbidden construct {type(exc).__name__}") from None
    if not chart.entry_count:
        raise _no_entries(body)
    return chart.entries


PARSERS: dict[str, Callable[[bytes, int], list[ChartEntry]]] = {
    "v2": parse_v2_json,
    "legacy-json": parse_legacy_json,
    "legacy-xml": parse_legacy_xml,
}


def ranks_of(entries: Sequence[ChartEntry]) -> dict[str, int]:
    """App id -> 1-based position; an id listed twice keeps its better place."""
    ranks: dict[str, int] = {}
    for position, entry in enumerate(entries, start=1):
        ranks.setdefault(entry.app_id, position)
    return ranks


def feed_url(config: AppStoreConfig, country: str, chart: AppStoreChart) -> str:
    """The URL of one chart in one storefront."""
    if chart.feed == "v2":
        return f"{config.v2_base_url}/{country}/apps/{chart.chart}/{config.limit}/apps.json"
    genre = f"/genre={chart.genre}" if chart.genre is not None else ""
    flavour = "json" if chart.feed == "legacy-json" else "xml"
    return (
        f"{config.legacy_base_url}/{country}/rss/{LEGACY_CHART_FEEDS[chart.chart]}"
        f"/limit={config.limit}{genre}/{flavour}"
    )


def tracked_apps(config: Config) -> dict[str, str]:
    """``service`` label -> app id: services with an app, then the extra apps."""
    apps = {
        name: app.app_id
        for name, service in config.services.items()
        if (app := service_app(service)) is not None
    }
    apps.update({name: app.app_id for name, app in appstore_config(config).apps.items()})
    return apps


@dataclass(frozen=True)
class ChartFeed:
    """Everything one chart feed source is built from (compared on reload)."""

    country: str
    chart: str
    flavour: str
    url: str
    interval: float
    timeout: float
    max_backoff: float
    max_body_bytes: int
    apps: tuple[tuple[str, str], ...]
    limit: int = APPSTORE_MAX_LIMIT  # entries kept; the URL asks for as many
    redirect_to_other_hosts: bool = False


class ChartFeedSource:
    """Reads one chart feed URL once per interval.

    Remembers the validators (ETag, Last-Modified) and the ranks of the last
    good read, so an unchanged chart costs a 304, and remembers when to try
    again after being throttled.
    """

    kind = CHART_FEED_KIND

    def __init__(self, feed: ChartFeed, rng: random.Random | None = None) -> None:
        self.config = feed
        self.key = chart_feed_key(feed.country, feed.chart)
        self.interval = feed.interval
        self.timeout = feed.timeout
        self.log_context = {"country": feed.country, "chart": feed.chart, "target": feed.url}
        self._backoff = RunBackoff(feed.interval, feed.max_backoff, rng or random.Random())
        self._apps = dict(feed.apps)
        self._etag: str | None = None
        self._last_modified: str | None = None
        self._last: ChartSnapshot | None = None

    async def collect(self, ctx: RunContext) -> Sequence[ChartSnapshot]:
        self._backoff.check()
        try:
            status, headers, body = await self._fetch(ctx)
        except aiohttp.ClientPayloadError as exc:
            raise SourceError("truncated", f"{type(exc).__name__}: {exc}") from None
        except (aiohttp.ClientError, OSError) as exc:
            raise SourceError(classify_client_error(exc), f"{type(exc).__name__}: {exc}") from None
        now = ctx.clock.time()
        if status == 304 and self._last is not None:
            # Unchanged since the last good read: the same ranks, seen now.
            self._backoff.succeeded()
            self._last = replace(self._last, time=now)
            return [self._last]
        if status in (403, 429) or status >= 500:
            self._backoff.failed(headers.get("Retry-After"), now)
            raise SourceError("throttled" if status < 500 else "server_error", f"HTTP {status}")
        if not 200 <= status < 300:
            raise SourceError("http_status", f"HTTP {status}")
        if "html" in headers.get("Content-Type", "").lower():
            raise SourceError("html", "an HTML page, not a feed (HTTP 200)")
        try:
            # Off the event loop: a body may be megabytes of JSON or XML.
            entries = await asyncio.to_thread(PARSERS[self.config.flavour], body, self.config.limit)
        except FeedError as exc:
            if exc.reason == "throttled":
                self._backoff.failed(None, now)
            raise
        if not entries and self._last is not None and self._last.depth > 0:
            raise SourceError("empty", f"no entries where the last read had {self._last.depth}")
        self._backoff.succeeded()
        self._etag = headers.get("ETag")
        self._last_modified = headers.get("Last-Modified")
        self._last = ChartSnapshot(
            country=self.config.country,
            chart=self.config.chart,
            time=now,
            depth=len(entries),
            ranks=ranks_of(entries),
            apps=self._apps,
        )
        return [self._last]

    async def _fetch(self, ctx: RunContext) -> tuple[int, Mapping[str, str], bytes]:
        headers = {"Accept": _ACCEPT[self.config.flavour]}
        if self._last is not None:
            # Conditional only when a 304 can be answered from what we hold.
            if self._etag:
                headers["If-None-Match"] = self._etag
            if self._last_modified:
                headers["If-Modified-Since"] = self._last_modified
        async with get_following_redirects(
            ctx.http.session(),
            self.config.url,
            headers,
            _MAX_REDIRECTS,
            self.config.redirect_to_other_hosts,
        ) as response:
            body = await read_capped(response, self.config.max_body_bytes)
            return response.status, response.headers, body


def build_chart_sources(config: Config, rng: random.Random | None = None) -> list[ChartFeedSource]:
    """One source per country x chart, when at least one app is tracked."""
    apps = tuple(sorted(tracked_apps(config).items()))
    if not apps:
        return []
    store = appstore_config(config)
    return [
        ChartFeedSource(
            ChartFeed(
                country=country,
                chart=chart.label,
                flavour=chart.feed,
                url=feed_url(store, country, chart),
                interval=store.interval,
                timeout=store.timeout,
                max_backoff=store.max_backoff,
                max_body_bytes=store.max_body_bytes,
                apps=apps,
                limit=store.limit,
                redirect_to_other_hosts=store.redirect_to_other_hosts,
            ),
            rng,
        )
        for country in store.countries
        for chart in store.charts
    ]
