"""The chart parsers on the real captures and on crafted variants of each quirk."""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from outagewatch.lenses.appstore import AppStoreChart, AppStoreConfig
from outagewatch.lenses.appstore.source import (
    PARSERS,
    ChartEntry,
    feed_url,
    looks_like_html,
    parse_legacy_json,
    parse_legacy_xml,
    parse_v2_json,
    ranks_of,
)
from outagewatch.sources.errors import FeedError
from tests.appstore.payloads import (
    CHATBOTS,
    DECOYS,
    EXPECTED_RANKS,
    HTML_PAGE,
    LEGACY_XML_FIXTURE,
    V2_FIXTURE,
    Entry,
    chart_with_chatbots,
    fixture_bytes,
    http_body,
    legacy_json,
    legacy_xml,
    v2_json,
)

BUILDERS: dict[str, Callable[[list[Entry]], bytes]] = {
    "v2": v2_json,
    "legacy-json": legacy_json,
    "legacy-xml": legacy_xml,
}


def test_v2_fixture_ranks_its_one_app_first() -> None:
    entries = parse_v2_json(fixture_bytes(V2_FIXTURE))
    assert entries == [ChartEntry("1577705074", "EPIK - AI Photo Editor")]
    assert ranks_of(entries) == {"1577705074": 1}


def test_legacy_xml_fixture_ranks_all_100_entries_in_feed_order() -> None:
    headers, body = http_body(fixture_bytes(LEGACY_XML_FIXTURE))
    assert headers["Content-Type"] == "application/xml"
    entries = parse_legacy_xml(body)
    ranks = ranks_of(entries)
    assert len(entries) == len(ranks) == 100
    assert ranks["854533196"] == 1
    assert ranks["854524727"] == 2
    assert ranks["862358175"] == 3
    assert ranks["861237431"] == 100
    assert entries[0].name == "4.0.9.6"
    # Entities in names are decoded; the name is kept only for humans.
    assert entries[7].name.startswith("Aces High Western Slots Casino")
    assert "& Blackjack" in entries[7].name


@pytest.mark.parametrize("flavour", ["v2", "legacy-json", "legacy-xml"])
def test_each_flavour_ranks_chatbots_by_id_despite_decoy_names(flavour: str) -> None:
    entries = PARSERS[flavour](BUILDERS[flavour](chart_with_chatbots()))
    ranks = ranks_of(entries)
    assert len(entries) == 100
    for service, rank in EXPECTED_RANKS.items():
        assert ranks[CHATBOTS[service][0]] == rank
    # The decoys named like Claude or ChatGPT hold places 1-3 under their own ids.
    assert [ranks[app_id] for app_id, _ in DECOYS] == [1, 2, 3]
    assert CHATBOTS["copilot"][0] not in ranks


def test_crafted_legacy_xml_keeps_the_im_namespace_and_reads_im_id() -> None:
    body = legacy_xml([CHATBOTS["claude"], CHATBOTS["chatgpt"]])
    assert b'xmlns:im="http://itunes.apple.com/rss"' in body
    assert b'im:id="6473753684"' in body
    assert parse_legacy_xml(body) == [
        ChartEntry("6473753684", "Claude by Anthropic"),
        ChartEntry("6448311069", "ChatGPT"),
    ]


def test_legacy_json_single_entry_object_is_one_entry() -> None:
    body = legacy_json([CHATBOTS["claude"]], single_as_object=True)
    assert isinstance(json.loads(body)["feed"]["entry"], dict)
    assert parse_legacy_json(body) == [ChartEntry("6473753684", "Claude by Anthropic")]


def test_v2_single_result_object_is_one_entry() -> None:
    doc = json.loads(v2_json([CHATBOTS["grok"]]))
    doc["feed"]["results"] = doc["feed"]["results"][0]
    assert parse_v2_json(json.dumps(doc).encode()) == [ChartEntry("6670324846", "Grok")]


def test_throttled_legacy_json_without_entry_is_an_error_not_an_empty_chart() -> None:
    with pytest.raises(FeedError) as caught:
        parse_legacy_json(legacy_json(None))
    assert caught.value.reason == "throttled"


def test_legacy_xml_without_any_entry_is_throttled() -> None:
    with pytest.raises(FeedError) as caught:
        parse_legacy_xml(legacy_xml([]))
    assert caught.value.reason == "throttled"


def test_v2_empty_results_parse_to_an_empty_list() -> None:
    # Whether that is a failure depends on the last read: the source decides.
    assert parse_v2_json(v2_json([])) == []


@pytest.mark.parametrize("flavour", ["v2", "legacy-json", "legacy-xml"])
def test_html_page_served_with_200_is_an_html_failure(flavour: str) -> None:
    assert looks_like_html(HTML_PAGE)
    with pytest.raises(FeedError) as caught:
        PARSERS[flavour](HTML_PAGE)
    assert caught.value.reason == "html"


@pytest.mark.parametrize("flavour", ["v2", "legacy-json", "legacy-xml"])
@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.97])
def test_truncated_body_is_truncated(flavour: str, fraction: float) -> None:
    body = BUILDERS[flavour](chart_with_chatbots())
    with pytest.raises(FeedError) as caught:
        PARSERS[flavour](body[: int(len(body) * fraction)])
    assert caught.value.reason == "truncated"


def test_truncated_real_xml_fixture_is_truncated() -> None:
    _, body = http_body(fixture_bytes(LEGACY_XML_FIXTURE))
    with pytest.raises(FeedError) as caught:
        parse_legacy_xml(body[: len(body) // 3])
    assert caught.value.reason == "truncated"


@pytest.mark.parametrize(
    ("flavour", "body"),
    [
        ("v2", b'{"feed": nope}'),
        ("v2", b"[]"),
        ("v2", b'{"feed": {"title": "Top Free Apps"}}'),
        ("v2", b'{"feed": {"results": [{"name": "ChatGPT"}]}}'),
        ("v2", b""),
        ("legacy-json", b'{"feed": {"entry": [{"im:name": {"label": "Claude"}}]}}'),
        ("legacy-json", b'{"feed": {"entry": "Claude"}}'),
        ("legacy-json", b"\xff\xfe{"),
        ("legacy-xml", b"<rss><channel/></rss>"),
        (
            "legacy-xml",
            b'<feed xmlns="http://www.w3.org/2005/Atom"><entry><id>x</id></entry></feed>',
        ),
        ("legacy-xml", b"<feed><entry></feed>"),
    ],
)
def test_wrong_shapes_are_invalid(flavour: str, body: bytes) -> None:
    with pytest.raises(FeedError) as caught:
        PARSERS[flavour](body)
    assert caught.value.reason == "invalid"


def test_xml_entity_expansion_is_refused() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE feed [<!ENTITY a "aaaaaaaaaa">'
        b'<!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">]><feed>&b;</feed>'
    )
    with pytest.raises(FeedError) as caught:
        parse_legacy_xml(bomb)
    assert caught.value.reason == "invalid"


def test_an_app_listed_twice_keeps_its_better_place() -> None:
    entries = [ChartEntry("1", "a"), ChartEntry("2", "b"), ChartEntry("1", "a again")]
    assert ranks_of(entries) == {"1": 1, "2": 2}


def test_feed_urls_follow_each_flavour() -> None:
    config = AppStoreConfig(limit=50)
    assert (
        feed_url(config, "gb", AppStoreChart(chart="top-paid"))
        == "https://rss.marketingtools.apple.com/api/v2/gb/apps/top-paid/50/apps.json"
    )
    assert (
        feed_url(config, "jp", AppStoreChart(chart="top-grossing", feed="legacy-json"))
        == "https://itunes.apple.com/jp/rss/topgrossingapplications/limit=50/json"
    )
    assert (
        feed_url(config, "us", AppStoreChart(chart="top-free-ipad", feed="legacy-xml", genre=6007))
        == "https://itunes.apple.com/us/rss/topfreeipadapplications/limit=50/genre=6007/xml"
    )
