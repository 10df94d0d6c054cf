"""Source keys: each source's job id, shard key and state key, in one place.

A key names one scheduled source (``claude/probe/api``); the scheduler, the
pipeline, the detectors and the fleet's sharding all read the same strings.
"""

from __future__ import annotations

CHART_FEED_KIND = "appstore"


def probe_source_key(service: str, probe: str) -> str:
    """The source key of a probe: its job id and its shard key."""
    return f"{service}/probe/{probe}"


def status_source_key(service: str, page: str) -> str:
    """The scheduled source key of one status page of a service."""
    return f"{service}/status/{page}"


def traffic_source_key(service: str, query: str) -> str:
    """The source key of a traffic query: its job id and its shard key."""
    return f"{service}/traffic/{query}"


def control_source_key(target: str) -> str:
    """The source key of a vantage control target."""
    return f"vantage/control/{target}"


def chart_feed_key(country: str, chart: str) -> str:
    """The source key of one App Store chart feed: ``appstore/us/top-free``."""
    return f"{CHART_FEED_KIND}/{country}/{chart}"


def chart_of_feed_key(key: str) -> tuple[str, str] | None:
    """(country, chart) of a chart feed's source key; None for any other key."""
    kind, _, rest = key.partition("/")
    country, _, chart = rest.partition("/")
    if kind != CHART_FEED_KIND or not country or not chart:
        return None
    return country, chart


def is_probe_source_key(key: str) -> bool:
    """Whether a source key is a probe's (``service/probe/name``), of any probe kind."""
    return key.split("/", 2)[1:2] == ["probe"]
