"""Chart payloads for tests: the real captures, and crafted variants built from
their shapes (the v2 excerpt's result object, the legacy XML fixture's first
entry, the legacy JSON shape documented from real captures)."""

from __future__ import annotations

import copy
import json
import re
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).parent / "fixtures"
V2_FIXTURE = "apple-rss-v2-top-free-us-2023-excerpt.json"
LEGACY_XML_FIXTURE = "itunes-legacy-xml-newapplications-genre6014-us-2014.http.txt"

# The chatbot apps (ids from Apple's store pages) and their current store names.
CHATBOTS = {
    "chatgpt": ("6448311069", "ChatGPT"),
    "claude": ("6473753684", "Claude by Anthropic"),
    "gemini": ("6477489729", "Google Gemini"),
    "copilot": ("6472538445", "Microsoft Copilot"),
    "perplexity": ("1668000334", "Perplexity - Ask Anything"),
    "grok": ("6670324846", "Grok"),
    "meta-ai": ("1558240027", "Meta AI"),
    "deepseek": ("6737597349", "DeepSeek - AI Assistant"),
    "le-chat": ("6740410176", "Vibe by Mistral (ex-Le Chat)"),
}
# Apps whose names would fool a name match.
DECOYS = [
    ("1111111111", "Claude AI Chat - Ask Assistant"),
    ("2222222222", "Chat GPT - AI Chatbot Open"),
    ("3333333333", "AI Chat GPT Assistant Claude"),
]

Entry = tuple[str, str]  # (app id, name)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def http_body(raw: bytes) -> tuple[dict[str, str], bytes]:
    """Split a recorded HTTP response into its headers and body."""
    head, _, body = raw.partition(b"\r\n\r\n")
    if not body:
        head, _, body = raw.partition(b"\n\n")
    headers = {}
    for line in head.decode("latin-1").splitlines()[1:]:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    return headers, body


def filler(count: int, start: int = 900_000_000) -> list[Entry]:
    """Other apps to pad a chart with."""
    return [(str(start + i), f"Some App {i}") for i in range(count)]


def v2_json(entries: list[Entry], country: str = "us", limit: int = 100) -> bytes:
    """A v2 feed generator chart shaped like the real excerpt."""
    doc = json.loads(fixture_bytes(V2_FIXTURE))
    template = doc["feed"]["results"][0]
    url = f"https://rss.marketingtools.apple.com/api/v2/{country}/apps/top-free/{limit}/apps.json"
    doc["feed"]["id"] = url
    doc["feed"]["links"] = [{"self": url}]
    doc["feed"]["country"] = country
    results = []
    for app_id, name in entries:
        result = copy.deepcopy(template)
        result.update(
            id=app_id, name=name, url=f"https://apps.apple.com/{country}/app/x/id{app_id}"
        )
        results.append(result)
    doc["feed"]["results"] = results
    return json.dumps(doc).encode()


def _legacy_json_entry(app_id: str, name: str) -> dict[str, Any]:
    url = f"https://apps.apple.com/us/app/x/id{app_id}?uo=2"
    return {
        "im:name": {"label": name},
        "im:image": [
            {"label": "https://is1-ssl.mzstatic.com/x.png", "attributes": {"height": "53"}}
        ],
        "summary": {"label": "An app."},
        "im:price": {"label": "Get", "attributes": {"amount": "0.00000", "currency": "USD"}},
        "im:contentType": {"attributes": {"term": "Application", "label": "Application"}},
        "rights": {"label": "© Someone"},
        "title": {"label": f"{name} - Someone"},
        "link": {"attributes": {"rel": "alternate", "type": "text/html", "href": url}},
        "id": {"label": url, "attributes": {"im:id": app_id, "im:bundleId": f"com.x.{app_id}"}},
        "im:artist": {"label": "Someone", "attributes": {"href": "https://apps.apple.com/a"}},
        "category": {
            "attributes": {
                "im:id": "6007",
                "term": "Productivity",
                "scheme": "https://apps.apple.com/us/genre/id6007",
                "label": "Productivity",
            }
        },
        "im:releaseDate": {
            "label": "2024-04-21T18:38:48-07:00",
            "attributes": {"label": "April 21, 2024"},
        },
    }


def legacy_json(entries: list[Entry] | None, single_as_object: bool = True) -> bytes:
    """A legacy iTunes RSS JSON chart; ``None`` entries drops ``entry`` (throttled)."""
    feed: dict[str, Any] = {
        "author": {"name": {"label": "iTunes Store"}, "uri": {"label": "http://www.apple.com/"}},
        "updated": {"label": "2026-11-27T14:00:00-07:00"},
        "rights": {"label": "Copyright 2008 Apple Inc."},
        "title": {"label": "iTunes Store: Top Grossing Applications"},
        "icon": {"label": "http://itunes.apple.com/favicon.ico"},
        "link": [{"attributes": {"rel": "alternate", "type": "text/html", "href": "x"}}],
        "id": {"label": "https://itunes.apple.com/us/rss/topgrossingapplications/limit=100/json"},
    }
    if entries is not None:
        items = [_legacy_json_entry(app_id, name) for app_id, name in entries]
        feed["entry"] = items[0] if single_as_object and len(items) == 1 else items
    return json.dumps({"feed": feed}).encode()


def _xml_parts() -> tuple[str, str]:
    """The real XML fixture's feed header and its first entry (as a template)."""
    _, body = http_body(fixture_bytes(LEGACY_XML_FIXTURE))
    text = body.decode("utf-8")
    first = text.index("<entry>")
    end = text.index("</entry>") + len("</entry>")
    return text[:first], text[first:end]


def legacy_xml(entries: list[Entry]) -> bytes:
    """A legacy Atom chart in the im: namespace, built from the real fixture's entry."""
    head, template = _xml_parts()
    parts = [head]
    for app_id, name in entries:
        entry = template.replace("854533196", app_id)
        entry = re.sub(r"<im:name>[^<]*</im:name>", f"<im:name>{name}</im:name>", entry)
        parts.append(entry)
    parts.append("\n</feed>\n")
    return "".join(parts).encode()


HTML_PAGE = (
    b"<!DOCTYPE html>\n<html lang=en><head><title>Apple</title></head>"
    b"<body><p>We are unable to complete your request.</p></body></html>\n"
)


def chart_with_chatbots(depth: int = 100) -> list[Entry]:
    """A full chart: decoys first, then the chatbots at known places, then filler.

    Ranks: chatgpt 4, gemini 7, claude 12, deepseek 30, grok 55; the others
    are out of the chart.
    """
    chart = filler(depth)
    for rank, key in (
        (4, "chatgpt"),
        (7, "gemini"),
        (12, "claude"),
        (30, "deepseek"),
        (55, "grok"),
    ):
        chart[rank - 1] = CHATBOTS[key]
    for index, decoy in enumerate(DECOYS):
        chart[index] = decoy
    return chart


EXPECTED_RANKS = {"chatgpt": 4, "gemini": 7, "claude": 12, "deepseek": 30, "grok": 55}
