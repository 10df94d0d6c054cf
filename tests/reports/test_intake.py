"""The report intake against a real daemon on a loopback port."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.reports.conftest import SECRET, TOKEN, Starter

GOOD = {"service": "chatgpt", "problem": "app", "reporter": "user-1"}


def keyed(reporter: str) -> str:
    return hmac.new(SECRET, reporter.encode(), hashlib.sha256).hexdigest()[:32]


async def test_report_is_acknowledged_after_it_is_in_the_store(start_daemon: Starter) -> None:
    run = await start_daemon()
    response = await run.post({**GOOD, "country": "de", "comment": "blank page"})
    assert response.status == 202
    assert await response.json() == {"accepted": 1, "duplicates": 0, "results": ["accepted"]}
    rows = run.rows("SELECT service, problem, reporter, country, comment, channel FROM reports")
    assert rows == [("chatgpt", "app", keyed("user-1"), "DE", "blank page", "api")]
    assert run.sample("outagewatch_reports_total", service="chatgpt", problem="app") == 1
    assert run.sample("outagewatch_reports_last_5m", service="chatgpt") == 1


async def test_batch_is_stored_and_answered_per_report(start_daemon: Starter) -> None:
    run = await start_daemon()
    batch = [{**GOOD, "reporter": f"u{i}"} for i in range(3)] + [{**GOOD, "reporter": "u0"}]
    response = await run.post(batch)
    assert response.status == 202
    body = await response.json()
    assert body == {
        "accepted": 3,
        "duplicates": 1,
        "results": ["accepted", "accepted", "accepted", "duplicate"],
    }
    assert len(run.rows()) == 3


async def test_duplicate_within_window_is_200_and_counted_only_as_duplicate(
    start_daemon: Starter,
) -> None:
    run = await start_daemon()
    assert (await run.post(GOOD)).status == 202
    run.clock.advance(3599)
    again = await run.post({**GOOD, "problem": "login"})
    assert again.status == 200
    assert (await again.json())["results"] == ["duplicate"]
    assert run.sample("outagewatch_reports_duplicates_total", service="chatgpt") == 1
    assert run.sample("outagewatch_reports_total", service="chatgpt", problem="login") == 0
    assert len(run.rows()) == 1
    # Another service is another report; after the window the same one counts again.
    assert (await run.post({**GOOD, "service": "claude"})).status == 202
    run.clock.advance(2)
    assert (await run.post(GOOD)).status == 202
    assert run.sample("outagewatch_reports_total", service="chatgpt", problem="app") == 2


async def _chunks(size: int) -> AsyncIterator[bytes]:
    for _ in range(size // 256):
        yield b" " * 256


# (request kwargs, token, status, reason, field, index)
REJECTIONS: list[tuple[str, dict[str, Any], str | None, int, str, str | None, int | None]] = [
    (
        "malformed_json",
        {"data": b'{"service": "chatgpt",', "headers": {"Content-Type": "application/json"}},
        TOKEN,
        400,
        "malformed_json",
        "body",
        None,
    ),
    (
        "content_type",
        {"data": b"service=chatgpt"},
        TOKEN,
        415,
        "content_type",
        "content-type",
        None,
    ),
    (
        "too_large",
        {"data": b" " * 2048, "headers": {"Content-Type": "application/json"}},
        TOKEN,
        413,
        "too_large",
        "body",
        None,
    ),
    (
        "too_large_chunked",
        {"data": _chunks(4096), "headers": {"Content-Type": "application/json"}},
        TOKEN,
        413,
        "too_large",
        "body",
        None,
    ),
    (
        "batch_too_large",
        {"json": [{**GOOD, "reporter": str(i)} for i in range(6)]},
        TOKEN,
        413,
        "batch_too_large",
        "body",
        None,
    ),
    ("not_an_object", {"json": 42}, TOKEN, 422, "invalid_body", "body", None),
    ("empty_batch", {"json": []}, TOKEN, 422, "invalid_body", "body", None),
    (
        "unknown_service",
        {"json": {**GOOD, "service": "nosuchbot"}},
        TOKEN,
        422,
        "unknown_service",
        "service",
        None,
    ),
    (
        "unknown_problem",
        {"json": {**GOOD, "problem": "nosuchproblem"}},
        TOKEN,
        422,
        "unknown_problem",
        "problem",
        None,
    ),
    (
        "missing_reporter",
        {"json": {"service": "chatgpt", "problem": "app"}},
        TOKEN,
        422,
        "missing_field",
        "reporter",
        None,
    ),
    ("unknown_field", {"json": {**GOOD, "mood": "sad"}}, TOKEN, 422, "invalid_field", "mood", None),
    (
        "bad_country",
        {"json": {**GOOD, "country": "Germany"}},
        TOKEN,
        422,
        "invalid_field",
        "country",
        None,
    ),
    (
        "long_comment",
        {"json": {**GOOD, "comment": "x" * 501}},
        TOKEN,
        422,
        "invalid_field",
        "comment",
        None,
    ),
    (
        "bad_item_in_batch",
        {"json": [GOOD, {**GOOD, "reporter": "u2", "problem": "nosuchproblem"}]},
        TOKEN,
        422,
        "unknown_problem",
        "problem",
        1,
    ),
    ("wrong_token", {"json": GOOD}, "not-a-token", 401, "unauthorized", "authorization", None),
    ("no_token_private_service", {"json": GOOD}, None, 401, "unauthorized", "authorization", None),
]


@pytest.mark.parametrize(
    ("kwargs", "token", "status", "reason", "field", "index"),
    [case[1:] for case in REJECTIONS],
    ids=[case[0] for case in REJECTIONS],
)
async def test_rejection_has_exact_status_and_names_the_field(
    start_daemon: Starter,
    kwargs: dict[str, Any],
    token: str | None,
    status: int,
    reason: str,
    field: str,
    index: int | None,
) -> None:
    run = await start_daemon()
    headers = dict(kwargs.pop("headers", {}))
    if token:
        headers["Authorization"] = f"Bearer {token}"
    response = await run.http.post(f"{run.base}/api/v1/reports", headers=headers, **kwargs)
    assert response.status == status
    body = await response.json()
    assert body["field"] == field
    assert body["reason"] == reason
    assert body.get("index") == index
    if status == 401:
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    # Nothing stored (a batch is all or nothing), only the bounded reason counted.
    assert run.rows() == []
    assert run.sample("outagewatch_reports_rejected_total", reason=reason) == 1
    async with run.http.get(f"{run.base}/metrics") as scrape:
        text = await scrape.text()
    assert "nosuch" not in text
    assert "mood" not in text
    rejected = r'^outagewatch_reports_rejected_total\{reason="([^"]+)"'
    assert set(re.findall(rejected, text, re.M)) == {reason}


async def test_public_service_is_rate_limited_per_address_with_retry_after(
    start_daemon: Starter,
) -> None:
    run = await start_daemon()
    public = {"service": "claude", "problem": "app"}
    for i in range(3):
        assert (await run.post({**public, "reporter": f"u{i}"}, token=None)).status in (200, 202)
    limited = await run.post({**public, "reporter": "u9"}, token=None)
    assert limited.status == 429
    assert 1 <= int(limited.headers["Retry-After"]) <= 20
    assert (await limited.json())["field"] == "client_address"
    assert run.sample("outagewatch_reports_rejected_total", reason="rate_limited") == 1
    # Tokens refill with time; machine clients with a token are not limited.
    run.clock.advance(20)
    assert (await run.post({**public, "reporter": "u9"}, token=None)).status == 200
    assert (await run.post({**public, "reporter": "bot-1"})).status == 202


async def test_without_token_the_client_address_is_the_reporter(start_daemon: Starter) -> None:
    run = await start_daemon()
    first = await run.post({"service": "claude", "problem": "app", "reporter": "a"}, token=None)
    second = await run.post({"service": "claude", "problem": "app", "reporter": "b"}, token=None)
    assert (first.status, second.status) == (202, 200)
    assert run.rows() == [("claude", "app", keyed("address:127.0.0.1"))]


async def test_reporter_is_stored_only_as_keyed_hash(start_daemon: Starter) -> None:
    run = await start_daemon()
    assert (await run.post({**GOOD, "reporter": "alice@example.org"})).status == 202
    await run.stop()
    data = b"".join(p.read_bytes() for p in run.db.parent.glob("reports.db*"))
    assert b"alice" not in data
    assert keyed("alice@example.org").encode() in data


async def test_generated_hash_key_is_kept_so_dedup_survives_restart(
    start_daemon: Starter,
) -> None:
    run = await start_daemon(extra="")
    assert (await run.post(GOOD)).status == 202
    await run.stop()
    again = await start_daemon(extra="", clock=run.clock)
    assert (await again.post(GOOD)).status == 200
    (reporter,) = again.rows("SELECT reporter FROM reports")[0]
    assert reporter != keyed("user-1")  # not the test secret: a generated one


async def test_tokens_from_systemd_credential(
    start_daemon: Starter, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "report-tokens").write_text("from-credential\n")
    monkeypatch.setenv("CREDENTIALS_DIRECTORY", str(creds))
    run = await start_daemon(extra="  tokens_credential: report-tokens", tokens_file=False)
    assert (await run.post(GOOD, token="from-credential")).status == 202


async def test_page_has_one_button_per_problem_and_works_without_javascript(
    start_daemon: Starter,
) -> None:
    run = await start_daemon()
    async with run.http.get(f"{run.base}/report/claude") as page:
        assert page.status == 200
        html = await page.text()
    assert "<script" not in html
    assert "<form method=post>" in html  # posts to its own URL, under any route prefix
    (token,) = re.findall(r'name=token value="([^"]+)"', html)
    assert re.findall(r'name=problem value="([a-z]+)"', html) == [
        "app",
        "website",
        "login",
        "api",
        "slow",
        "other",
    ]
    url = f"{run.base}/report/claude"
    async with run.http.post(url, data={"problem": "login", "token": token}) as first:
        assert first.status == 202
        assert "your report counts" in await first.text()
    async with run.http.post(url, data={"problem": "app", "token": token}) as again:
        assert again.status == 200
    async with run.http.post(url, data={"problem": "nosuchproblem", "token": token}) as bad:
        assert bad.status == 422
    async with run.http.post(url, data={"problem": "slow", "token": token}) as third:
        assert third.status == 200
    async with run.http.post(url, data={"problem": "app", "token": token}) as limited:
        assert limited.status == 429
        assert int(limited.headers["Retry-After"]) >= 1
    assert run.rows() == [("claude", "login", keyed("address:127.0.0.1"))]
    assert run.rows("SELECT channel FROM reports") == [("page",)]


async def test_page_of_a_private_or_unknown_service_is_not_found(start_daemon: Starter) -> None:
    run = await start_daemon()
    for service in ("chatgpt", "nosuchbot"):
        async with run.http.get(f"{run.base}/report/{service}") as page:
            assert page.status == 404
        async with run.http.post(f"{run.base}/report/{service}", data={"problem": "app"}) as post:
            assert post.status == 404
    assert run.rows() == []


async def test_scrape_passes_promtool(start_daemon: Starter, tmp_path: Path) -> None:
    run = await start_daemon()
    await run.post(GOOD)
    await run.post({"service": "nosuchbot"})
    async with run.http.get(f"{run.base}/metrics") as scrape:
        text = await scrape.text()
    for name in (
        "outagewatch_reports_baseline_per_5m",
        "outagewatch_reports_ratio_to_baseline",
        "outagewatch_store_commit_duration_seconds_bucket",
        "outagewatch_store_size_bytes",
    ):
        assert name in text
    check = await asyncio.create_subprocess_exec(
        "promtool",
        "check",
        "metrics",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    output, _ = await check.communicate(text.encode())
    assert check.returncode == 0, output.decode()
