"""The real daemon against a local feed server: chart ranks on /metrics."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path

import aiohttp
import yaml

from outagewatch.app import Daemon
from tests.appstore.conftest import FeedServer, Reply
from tests.appstore.payloads import (
    CHATBOTS,
    EXPECTED_RANKS,
    chart_with_chatbots,
    legacy_json,
    v2_json,
)


def write_config(path: Path, server: FeedServer) -> None:
    services = {key: {"appstore": {"app_id": app_id}} for key, (app_id, _) in CHATBOTS.items()}
    config = {
        "scheduler": {"jitter_ratio": 0},
        "services": services,
        "appstore": {
            "countries": ["us", "jp"],
            "charts": [{"chart": "top-free"}, {"chart": "top-grossing", "feed": "legacy-json"}],
            "interval": "1s",
            "timeout": "1s",
            "v2_base_url": f"{server.base_url}/v2",
            "legacy_base_url": server.base_url,
        },
    }
    path.write_text(yaml.safe_dump(config))


async def scrape(port: int) -> str:
    async with (
        aiohttp.ClientSession() as session,
        session.get(f"http://127.0.0.1:{port}/metrics") as response,
    ):
        assert response.status == 200
        return await response.text()


async def test_daemon_exports_chart_ranks_from_a_local_feed_server(
    tmp_path: Path, feed_server: FeedServer
) -> None:
    feed_server.serve("/v2/us/apps/top-free/100/apps.json", Reply(v2_json(chart_with_chatbots())))
    feed_server.serve(
        "/us/rss/topgrossingapplications/limit=100/json",
        Reply(legacy_json(chart_with_chatbots())),
    )
    # jp top-free answers an HTML page; jp top-grossing is throttled.
    feed_server.serve("/v2/jp/apps/top-free/100/apps.json", Reply(b"<!DOCTYPE html><html></html>"))
    feed_server.serve("/jp/rss/topgrossingapplications/limit=100/json", Reply(legacy_json(None)))
    config = tmp_path / "outagewatch.yml"
    write_config(config, feed_server)
    daemon = Daemon(config, listen_address="127.0.0.1:0", handle_signals=False)
    loop = asyncio.get_running_loop()
    started = loop.time()
    task = asyncio.create_task(daemon.run())
    try:
        text = ""
        async with asyncio.timeout(15):
            while (
                daemon.bound_port is None
                or 'reason="throttled"' not in text
                or ('outagewatch_appstore_rank{chart="top-grossing"' not in text)
            ):
                await asyncio.sleep(0.1)
                if daemon.bound_port is not None:
                    text = await scrape(daemon.bound_port)
        await asyncio.sleep(2.0)
        text = await scrape(daemon.bound_port)
        elapsed = loop.time() - started
    finally:
        daemon.stop()
        await asyncio.wait_for(task, 10)

    for service, rank in EXPECTED_RANKS.items():
        for chart in ("top-free", "top-grossing"):
            assert (
                f'outagewatch_appstore_rank{{chart="{chart}",country="us",service="{service}"}} '
                f"{rank:.1f}" in text
            )
        assert f'outagewatch_appstore_best_rank{{chart="top-free",service="{service}"}}' in text
    assert (
        'outagewatch_appstore_in_chart{chart="top-free",country="us",service="copilot"} 0.0' in text
    )
    assert 'outagewatch_appstore_chart_depth{chart="top-free",country="us"} 100.0' in text
    assert (
        'outagewatch_appstore_feed_failures_total{chart="top-free",country="jp",reason="html"}'
        in (text)
    )
    # jp never had a good read: no ranks, no depth, no last-success time there.
    assert 'country="jp",service=' not in text
    assert (
        'outagewatch_appstore_feed_last_success_timestamp_seconds{chart="top-free",country="us"}'
        in (text)
    )

    # One request per feed URL per interval (1 s), all services sharing it.
    per_url = Counter(feed_server.paths())
    assert set(per_url) == {
        "/v2/us/apps/top-free/100/apps.json",
        "/v2/jp/apps/top-free/100/apps.json",
        "/us/rss/topgrossingapplications/limit=100/json",
        "/jp/rss/topgrossingapplications/limit=100/json",
    }
    for path, count in per_url.items():
        assert 1 <= count <= int(elapsed) + 1, (path, count, elapsed)
    # The throttled feed backs off (2 s and more) while the others run every second.
    assert (
        per_url["/jp/rss/topgrossingapplications/limit=100/json"]
        < per_url["/us/rss/topgrossingapplications/limit=100/json"]
    )

    promtool = await asyncio.create_subprocess_exec(
        "promtool",
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await asyncio.wait_for(promtool.communicate(text.encode()), 30)
    assert promtool.returncode == 0, output.decode()
