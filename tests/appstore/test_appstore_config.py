"""The `appstore:` config section, per-service app ids, and the shipped config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from outagewatch.config import ConfigError, load_config, parse_config
from outagewatch.lenses.appstore.source import ChartFeedSource, tracked_apps
from outagewatch.lenses.registry import build_sources
from tests.appstore.payloads import CHATBOTS

SHIPPED = Path(__file__).parents[2] / "deploy" / "config" / "outagewatch.yml"


def errors_of(data: dict[str, Any]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_config(data)
    return caught.value.errors


def test_limit_above_100_is_rejected_naming_the_key() -> None:
    assert errors_of({"appstore": {"limit": 200}}) == [
        "appstore -> limit: at most 100, got 200: Apple's chart feeds return no more "
        "than 100 entries (v2 answers HTTP 500 above it)"
    ]


def test_v2_limit_must_be_one_it_offers() -> None:
    assert errors_of({"appstore": {"limit": 30}}) == [
        "appstore -> limit: the v2 feed offers only 10, 25, 50, 100, got 30"
    ]
    legacy_only = {"limit": 30, "charts": [{"chart": "top-grossing", "feed": "legacy-xml"}]}
    assert parse_config({"appstore": legacy_only}).appstore.limit == 30


def test_top_grossing_is_not_in_the_v2_feed() -> None:
    assert errors_of({"appstore": {"charts": [{"chart": "top-grossing"}]}}) == [
        "appstore -> charts -> 1: the v2 feed has only top-free, top-paid: "
        "read top-grossing with feed: legacy-json or legacy-xml"
    ]


def test_genre_needs_a_legacy_feed() -> None:
    assert errors_of({"appstore": {"charts": [{"chart": "top-free", "genre": 6007}]}}) == [
        "appstore -> charts -> 1: the v2 feed has no genre filter: "
        "use feed: legacy-json or legacy-xml"
    ]


def test_the_same_feed_twice_is_rejected() -> None:
    charts = [{"chart": "top-free"}, {"chart": "top-free", "name": "again"}]
    assert errors_of({"appstore": {"charts": charts}}) == [
        "appstore -> charts: number 2 reads the same feed as an earlier chart; "
        "one request per feed URL is enough"
    ]


def test_app_id_is_numeric_text_and_an_unquoted_number_is_accepted() -> None:
    config = parse_config({"services": {"claude": {"appstore": {"app_id": 6473753684}}}})
    assert config.services["claude"].appstore is not None
    assert config.services["claude"].appstore.app_id == "6473753684"
    assert errors_of({"services": {"claude": {"appstore": {"app_id": "Claude"}}}}) == [
        "services -> claude -> appstore -> app_id: a numeric App Store id like "
        "\"6473753684\" is required, got 'Claude'"
    ]


def test_countries_are_storefront_codes_listed_once() -> None:
    assert parse_config({"appstore": {"countries": ["US", "gb"]}}).appstore.countries == [
        "us",
        "gb",
    ]
    assert errors_of({"appstore": {"countries": ["usa"]}}) == [
        "appstore -> countries -> 1: a storefront is a two-letter country code like us or gb, "
        "got 'usa'"
    ]
    assert errors_of({"appstore": {"countries": ["us", "us"]}}) == [
        "appstore -> countries: listed more than once: us"
    ]


def test_extra_app_cannot_take_a_service_name() -> None:
    data = {
        "services": {"claude": {}},
        "appstore": {"apps": {"claude": {"app_id": "6473753684"}}},
    }
    assert errors_of(data) == [
        "appstore -> apps -> claude: 'claude' is a service; "
        "set services -> claude -> appstore -> app_id instead"
    ]


def test_extra_apps_are_tracked_under_their_own_name() -> None:
    config = parse_config(
        {
            "services": {"claude": {"appstore": {"app_id": "6473753684"}}},
            "appstore": {"apps": {"character-ai": {"app_id": "1671705818"}}},
        }
    )
    assert tracked_apps(config) == {"claude": "6473753684", "character-ai": "1671705818"}


def test_one_source_per_feed_url_however_many_services_read_it() -> None:
    services = {key: {"appstore": {"app_id": app_id}} for key, (app_id, _) in CHATBOTS.items()}
    config = parse_config(
        {
            "services": services,
            "appstore": {
                "countries": ["us", "gb"],
                "charts": [{"chart": "top-free"}, {"chart": "top-grossing", "feed": "legacy-json"}],
            },
        }
    )
    sources = [s for s in build_sources(config) if isinstance(s, ChartFeedSource)]
    assert sorted(s.key for s in sources) == [
        "appstore/gb/top-free",
        "appstore/gb/top-grossing",
        "appstore/us/top-free",
        "appstore/us/top-grossing",
    ]
    assert len({s.config.url for s in sources}) == 4
    assert all(len(s.config.apps) == len(CHATBOTS) for s in sources)


def test_no_chart_is_fetched_when_no_app_is_tracked() -> None:
    assert build_sources(parse_config({"services": {"claude": {}}})) == []


def test_shipped_config_tracks_the_chatbots_in_the_main_storefronts() -> None:
    config = load_config(SHIPPED)
    assert tracked_apps(config) == {key: app_id for key, (app_id, _) in CHATBOTS.items()}
    store = config.appstore
    assert {"us", "gb", "de", "fr", "jp", "in", "br"} <= set(store.countries)
    charts = {(c.chart, c.feed) for c in store.charts}
    assert ("top-free", "v2") in charts
    assert ("top-grossing", "legacy-json") in charts
    assert store.interval == 900.0
    sources = [s for s in build_sources(config) if isinstance(s, ChartFeedSource)]
    assert len(sources) == len(store.countries) * len(store.charts)
