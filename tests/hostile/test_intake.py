"""Hostile input against the report intake (issue 16, rows 8, 14, 15, 18, 20).

Every test drives a real daemon over loopback HTTP (or the real CLI on a real
SQLite file); each reproduces one row of the issue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import io
import json
import logging
import os
import re
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest
import structlog
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from outagewatch.cli import _parser, main
from outagewatch.reports_cli import run as run_reports
from tests.reports.conftest import TOKEN, Running, Starter
from tests.reports.conftest import start_daemon as start_daemon  # the fixture

GOOD = {"service": "chatgpt", "problem": "app", "reporter": "user-1"}
PUBLIC = {"service": "claude", "problem": "app", "reporter": "someone"}


async def form_token(run: Running) -> str:
    async with run.http.get(f"{run.base}/report/claude") as page:
        (token,) = re.findall(r'name=token value="([^"]+)"', await page.text())
    return str(token)


async def post_form(
    run: Running, data: dict[str, str], headers: dict[str, str] | None = None
) -> tuple[int, str]:
    async with run.http.post(f"{run.base}/report/claude", data=data, headers=headers) as answer:
        return answer.status, await answer.text()


def error_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.levelno >= logging.ERROR]


# -- row 8: cross-site form posts -------------------------------------------


async def test_cross_site_form_posts_from_many_addresses_count_for_nothing(
    start_daemon: Starter,
) -> None:
    """Row 8: a page on another site made 200 visitors post the form (202 each before).

    Each post comes from its own loopback address (127.0.1.x) with the form's
    valid token (an attacker can fetch the page too): the browser's ``Origin``
    and ``Sec-Fetch-Site`` give it away.
    """
    run = await start_daemon()
    token = await form_token(run)
    statuses = []
    for i in range(200):
        address = f"127.0.1.{i + 1}" if i < 254 else "127.0.2.1"
        connector = aiohttp.TCPConnector(local_addr=(address, 0))
        async with (
            aiohttp.ClientSession(connector=connector) as browser,
            browser.post(
                f"{run.base}/report/claude",
                data={"problem": "app", "token": token},
                headers={"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"},
            ) as answer,
        ):
            statuses.append(answer.status)
    assert statuses == [403] * 200
    assert run.rows() == []
    assert run.sample("outagewatch_reports_ratio_to_baseline", service="claude") == 0
    assert run.sample("outagewatch_reports_rejected_total", reason="cross_site") == 200


@pytest.mark.parametrize(
    "headers",
    [
        {"Origin": "https://evil.example"},
        {"Origin": "null"},
        {"Sec-Fetch-Site": "cross-site"},
        {"Sec-Fetch-Site": "same-site"},
        {"Origin": "http://127.0.0.1:1", "Sec-Fetch-Site": "same-origin"},  # another port
    ],
    ids=["origin", "null_origin", "fetch_cross_site", "fetch_same_site", "other_port"],
)
async def test_browser_cross_site_requests_are_refused_on_form_and_api(
    start_daemon: Starter, headers: dict[str, str]
) -> None:
    run = await start_daemon()
    status, text = await post_form(run, {"problem": "app", "token": await form_token(run)}, headers)
    assert status == 403
    assert "another" in text
    # The JSON API too, with or without a bearer token: a browser on another site never.
    for token in (None, TOKEN):
        api = await run.post(PUBLIC, token=token, headers=headers)
        assert api.status == 403
        assert (await api.json())["reason"] == "cross_site"
        assert (await api.json())["field"] == "origin"
    assert run.rows() == []


async def test_same_origin_form_post_with_a_valid_token_counts(start_daemon: Starter) -> None:
    run = await start_daemon()
    origin = run.base  # http://127.0.0.1:<port>, as a browser on the page sends it
    status, text = await post_form(
        run,
        {"problem": "login", "token": await form_token(run)},
        {"Origin": origin, "Sec-Fetch-Site": "same-origin"},
    )
    assert (status, "your report counts" in text) == (202, True)
    # A program (no Origin, no Sec-Fetch-Site) on the JSON API is still welcome.
    assert (await run.post(GOOD)).status == 202
    assert len(run.rows()) == 2


async def test_missing_expired_and_forged_form_tokens_are_refused(start_daemon: Starter) -> None:
    run = await start_daemon()
    token = await form_token(run)
    stamp, _, mac = token.partition(".")
    # The daemon's format (bucket.hmac of service and bucket) under another key.
    other_mac = hmac.new(b"not the daemon's secret", f"claude\n{stamp}".encode(), "sha256")
    other_secret = f"{stamp}.{other_mac.hexdigest()[:32]}"
    forged = {
        "missing": None,
        "empty": "",
        "flipped_mac": f"{stamp}.{mac[::-1]}",
        "other_secret": other_secret,
        "future": f"{int(stamp) + 1}.{mac}",
        "not_digits": f"²{stamp[1:]}.{mac}",
        "huge": f"{'9' * 100}.{mac}",
    }
    for name, bad in forged.items():
        data = {"problem": "app"} if bad is None else {"problem": "app", "token": bad}
        status, text = await post_form(run, data)
        assert status == 403, name
        assert "load the report page again" in text, name
    run.clock.advance(3600 + 600)  # past the token's hour
    status, text = await post_form(run, {"problem": "app", "token": token})
    assert (status, "expired" in text) == (403, True)
    assert run.rows() == []
    assert run.sample("outagewatch_reports_rejected_total", reason="form_token") == 8
    # A fresh page gives a token that works.
    assert (await post_form(run, {"problem": "app", "token": await form_token(run)}))[0] == 202


# -- row 14 and 15: fields -------------------------------------------------

BAD_TEXT = {
    "lone_surrogate": "ab\ud800",
    "control": "a\x07b",
    "trailing_newline": "DE\n",
    "line_separator": "a\u2028b",
}
LONG = {"service": 129, "problem": 65, "reporter": 257, "country": 3, "comment": 501}


@pytest.mark.parametrize("field", ["service", "problem", "reporter", "country", "comment"])
async def test_every_field_refuses_unstorable_text_with_422_naming_it(
    start_daemon: Starter, field: str
) -> None:
    """Row 14/15: lone surrogates (500 before), control characters, ``"DE\\n"``
    (stored as is before), over-long values: 422 naming the field, nothing stored."""
    run = await start_daemon()
    cases = {**BAD_TEXT, "too_long": "x" * LONG[field], "not_text": 42}
    for name, value in cases.items():
        # Raw JSON text: "\ud800" travels as a JSON escape, as an attacker sends it.
        body = json.dumps({**GOOD, "country": "DE", "comment": "ok", field: value}).encode()
        for token in (TOKEN, None):
            headers = {"Content-Type": "application/json"}
            if token:
                headers["Authorization"] = f"Bearer {token}"
            item = {**PUBLIC, field: value} if not token else None
            data = body if token else json.dumps(item).encode()
            async with run.http.post(
                f"{run.base}/api/v1/reports", data=data, headers=headers
            ) as answer:
                assert answer.status == 422, (name, token)
                refusal = await answer.json()
            assert refusal["field"] == field, (name, refusal)
            assert refusal["reason"] == "invalid_field", (name, refusal)
    assert run.rows() == []


async def test_odd_status_page_queries_never_500(start_daemon: Starter) -> None:
    """Row 14: ``GET /?refresh=²`` was a 500 with a traceback, unauthenticated."""
    run = await start_daemon()
    for refresh in ("²", "٣", "9" * 5000, "-5", "1e3", " 7", "%ED%A0%80", "%00", "10"):
        async with run.http.get(f"{run.base}/?refresh={refresh}") as page:
            assert page.status == 200, refresh
            html = await page.text()
        expected = "10" if refresh == "10" else ("3600" if refresh.startswith("999") else "30")
        assert f'<meta http-equiv=refresh content="{expected}">' in html, refresh


# -- row 15: import and export ---------------------------------------------


@pytest.fixture
def cli_config(tmp_path: Path) -> Path:
    path = tmp_path / "config.yml"
    path.write_text(f"services:\n  claude: {{}}\nstorage:\n  path: {tmp_path}/o.db\n")
    return path


def test_import_refuses_every_bad_row_with_its_line_and_imports_nothing(
    cli_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Row 15: any country text and ``inf``/``1e300`` timestamps were stored as is."""
    history = tmp_path / "history.csv"
    history.write_bytes(
        b"timestamp,service,problem,country\n"
        b"2026-11-01T10:00:00Z,claude,app,DE\n"  # 2: good
        b'2026-11-01T10:00:00Z,claude,app,"DE\n"\n'  # 3-4: newline in a quoted cell
        b"2026-11-01T10:00:00Z,claude,app,Germany\n"  # 5
        b"inf,claude,app\n"  # 6
        b"1e300,claude,app\n"  # 7
        b"nan,claude,app\n"  # 8
        b"-1,claude,app\n"  # 9
        b"4102444800,claude,app\n"  # 10: 2100-01-01
        b"2026-11-01T10:00:00Z,claude\x07,app\n"  # 11
        b"2026-11-01T10:00:00Z,claude,app,\xff\xfe\n"  # 12: not UTF-8
        b"2026-11-01T10:00:00Z,claude,app\n"  # 13: good
    )
    assert main(["reports", "import", "--config.file", str(cli_config), str(history)]) == 1
    err = capsys.readouterr().err
    expected = {
        4: "country",
        5: "country",
        6: "timestamp",
        7: "timestamp",
        8: "timestamp",
        9: "timestamp",
        10: "timestamp",
        11: "service",
        12: "country",
    }
    for line, field in expected.items():
        assert re.search(rf"{re.escape(str(history))}:{line}: .*\({field} ", err), (line, err)
    assert f"{history}:2:" not in err
    assert f"{history}:13:" not in err
    assert "nothing imported" in err
    assert not (tmp_path / "o.db").exists()


def test_import_names_the_line_of_a_row_the_csv_reader_cannot_read(
    cli_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    history = tmp_path / "history.csv"
    history.write_text(
        "2026-11-01T10:00:00Z,claude,app\n" + "2026-11-01T10:00:00Z,claude," + "x" * 200_000 + "\n"
    )
    assert main(["reports", "import", "--config.file", str(cli_config), str(history)]) == 1
    err = capsys.readouterr().err
    assert f"{history}:2: field larger than field limit" in err
    assert "nothing imported" in err
    assert not (tmp_path / "o.db").exists()


def test_export_skips_rows_older_versions_stored_and_names_them(
    cli_config: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Row 15: one bad stored row made ``reports export`` crash on the whole export."""
    good = tmp_path / "good.csv"
    good.write_text("2026-11-01T10:00:00Z,claude,app,DE\n2026-11-02T10:00:00Z,claude,slow\n")
    assert main(["reports", "import", "--config.file", str(cli_config), str(good)]) == 0
    # What older versions (or other tools) could leave behind.
    with contextlib.closing(sqlite3.connect(tmp_path / "o.db")) as conn, conn:
        insert = "INSERT INTO reports (id, time, service, problem, country, channel) VALUES "
        conn.execute(insert + "(101, 1761991200, 'claude', 'app', 'DE\n', 'api')")
        conn.execute(insert + "(102, 1e999, 'claude', 'app', NULL, 'import')")  # inf
        conn.execute(insert + "(103, 1e300, 'claude', 'app', NULL, 'import')")
        conn.execute(insert + "(104, 'yesterday', 'claude', 'app', NULL, 'api')")
        conn.execute(insert + "(105, 1761991200, CAST(X'ff41' AS TEXT), 'app', NULL, 'api')")
        conn.execute(insert + "(106, 1761991200, 'claude', 'app', 'D', 'api')")
        conn.execute(insert + "(107, 4102444800, 'claude', 'app', NULL, 'api')")  # 2100
    capsys.readouterr()
    out = io.StringIO()
    args = _parser().parse_args(["reports", "export", "--config.file", str(cli_config)])
    assert run_reports(args, out) == 0
    assert out.getvalue() == (
        "timestamp,service,problem,country\n"
        "2026-11-01T10:00:00.000Z,claude,app,DE\n"
        "2026-11-02T10:00:00.000Z,claude,slow,\n"
    )
    err = capsys.readouterr().err
    for row_id in range(101, 108):
        assert f"skipped report id {row_id}: " in err
    assert "skipped 7 stored reports" in err


# -- row 18: aborted bodies --------------------------------------------------


async def abort_mid_body(port: int, path: str, content_type: str) -> None:
    _reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(
        f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: {content_type}\r\n"
        f"Authorization: Bearer {TOKEN}\r\nContent-Length: 900\r\n\r\n".encode()
        + b'{"service": "chatgpt", "problem": "app", '
    )
    await writer.drain()
    await asyncio.sleep(0.01)
    writer.transport.abort()


async def test_aborted_request_bodies_are_counted_not_logged_as_errors(
    start_daemon: Starter, caplog: pytest.LogCaptureFixture
) -> None:
    """Row 18: 3,000 clients aborting a body gave 3,000 ERROR tracebacks."""
    run = await start_daemon()
    caplog.set_level(logging.DEBUG)
    clients, concurrent = 3000, 100
    targets = [
        ("/api/v1/reports", "application/json"),
        ("/report/claude", "application/x-www-form-urlencoded"),
    ]
    assert run.daemon.bound_port is not None
    for start in range(0, clients, concurrent):
        await asyncio.gather(
            *(
                abort_mid_body(run.daemon.bound_port, *targets[i % 2])
                for i in range(start, start + concurrent)
            )
        )
    aborted = 0.0
    for _ in range(500):  # the handlers notice the lost connections a moment later
        aborted = run.sample("outagewatch_reports_rejected_total", reason="aborted") or 0.0
        if aborted == clients:
            break
        await asyncio.sleep(0.02)
    assert aborted == clients
    assert error_records(caplog) == []
    assert run.rows() == []
    # And the daemon still takes reports.
    assert (await run.post(GOOD)).status == 202


# -- row 20: disk full -------------------------------------------------------


class FullDisk:
    """Makes the store's disk full for real, and frees it again.

    ``tmpfs``: the database lives on a small tmpfs (``mount -t tmpfs``, needs
    root); a filler file takes the rest, so SQLite's writes get ENOSPC.
    ``max_page_count``: ``PRAGMA max_page_count`` on the daemon's own writer
    connection, set to the pages in use, so SQLite answers SQLITE_FULL itself.
    """

    def __init__(self, kind: str, root: Path) -> None:
        self.kind = kind
        self.mount = root / "disk"
        self.run: Running | None = None

    @contextlib.contextmanager
    def prepared(self) -> Iterator[Path]:
        self.mount.mkdir()
        if self.kind == "max_page_count":
            yield self.mount / "reports.db"
            return
        mounted = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", "size=8m", "tmpfs", str(self.mount)],
            capture_output=True,
            check=False,
        )
        if mounted.returncode != 0:
            reason = f"cannot mount a tmpfs here: {mounted.stderr.decode().strip()}"
            if os.environ.get("CI"):  # CI runs as root: a skip there would check nothing
                pytest.fail(reason)
            pytest.skip(reason)
        try:
            yield self.mount / "reports.db"
        finally:
            subprocess.run(["umount", "-l", str(self.mount)], check=False)

    async def _pragma(self, sql: str) -> None:
        assert self.run is not None and self.run.daemon.running is not None
        await self.run.daemon.running.store._submit(lambda conn: conn.execute(sql).fetchall())

    async def fill(self) -> None:
        if self.kind == "max_page_count":
            await self._pragma("PRAGMA max_page_count = 1")  # clamps to the pages in use
            return
        with (self.mount / "filler").open("wb") as filler, contextlib.suppress(OSError):
            while True:
                filler.write(b"\0" * 65536)
                filler.flush()

    async def free(self) -> None:
        if self.kind == "max_page_count":
            await self._pragma("PRAGMA max_page_count = 1073741823")
            return
        (self.mount / "filler").unlink()


@pytest.mark.parametrize("kind", ["tmpfs", "max_page_count"])
async def test_disk_full_is_logged_once_per_interval_and_makes_the_daemon_unready(
    start_daemon: Starter, tmp_path: Path, kind: str
) -> None:
    """Row 20: disk full gave a correct 503 and lost nothing, but logged nothing and
    ``/-/ready`` stayed 200. Real full disks: see FullDisk for the two kinds."""
    disk = FullDisk(kind, tmp_path)
    with disk.prepared() as db, structlog.testing.capture_logs() as logs:
        run = await start_daemon(db=db)
        disk.run = run
        accepted = 0
        for i in range(20):
            accepted += (await run.post({**GOOD, "reporter": f"before-{i}"})).status == 202
        assert accepted == 20
        await disk.fill()
        statuses = []
        for i in range(300):  # a WAL reuses its space for a while: write until it must grow
            answer = await run.post([{**GOOD, "reporter": f"full-{i}-{j}"} for j in range(5)])
            statuses.append(answer.status)
            if answer.status == 202:
                accepted += 5
            elif len(statuses) > 50 and statuses[-40:].count(503) == 40:
                break
        assert statuses[-1] == 503
        failed = [e for e in logs if e["event"] == "store_write_failed"]
        assert len(failed) == 1  # many refused requests, one line
        assert failed[0]["log_level"] == "error"
        assert "full" in failed[0]["error"]
        # The next interval logs again, with the count of failures since the last line.
        run.clock.advance(61)
        assert (await run.post({**GOOD, "reporter": "after-interval"})).status == 503
        failed = [e for e in logs if e["event"] == "store_write_failed"]
        assert len(failed) == 2
        assert failed[1]["failures"] >= 40
        async with run.http.get(f"{run.base}/-/ready") as ready:
            assert ready.status == 503
            assert "store writes fail" in await ready.text()
            assert "full" in await ready.text()
        await disk.free()
        # Readiness comes back by itself: while failing, a readiness check tries a write.
        run.clock.advance(5)
        for _ in range(100):
            async with run.http.get(f"{run.base}/-/ready") as ready:
                if ready.status == 200:
                    break
            await asyncio.sleep(0.02)
        assert ready.status == 200
        assert (await run.post({**GOOD, "reporter": "after-free"})).status == 202
        accepted += 1
        assert [e["event"] for e in logs if e["event"] == "store_writes_recovered"] == [
            "store_writes_recovered"
        ]
        # Nothing lost: every acknowledged report is in the store, no refused one is.
        assert len(run.rows()) == accepted
        await run.stop()


# -- fuzzing: never a 500 ----------------------------------------------------

JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
NASTY = st.sampled_from(["\ud800", "a\udfffb", "DE\n", "\x00", "\u2028", "x" * 600, ""])
VALID_REPORTS = [
    {"service": "claude", "problem": "app", "reporter": "someone"},
    {"service": "chatgpt", "problem": "login", "reporter": "user-1", "country": "de"},
    {"service": "claude", "problem": "slow", "reporter": "x", "comment": "down again"},
]


def _spoiled(base: dict[str, str], changes: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in {**base, **changes}.items() if v is not _DROP}


_DROP = object()
# A valid report with one or two fields replaced (by something nasty, any JSON
# scalar, or nothing): each such body reaches the check of the field it spoils.
REPORTS = st.builds(
    _spoiled,
    st.sampled_from(VALID_REPORTS),
    st.dictionaries(
        st.sampled_from(["service", "problem", "reporter", "country", "comment", "mood"]),
        st.one_of(NASTY, JSON_SCALARS, st.just(_DROP)),
        max_size=2,
    ),
)

# Mostly near-valid reports: those reach the deepest checks.
BODIES = st.one_of(
    REPORTS.map(lambda v: json.dumps(v).encode()),
    REPORTS.map(lambda v: json.dumps(v).encode()),
    st.lists(REPORTS, min_size=1, max_size=6).map(lambda v: json.dumps(v).encode()),
    JSON_VALUES.map(lambda v: json.dumps(v).encode()),
    st.binary(max_size=64),
)


def _refusal_ok(status: int, body: dict[str, Any]) -> bool:
    return status in (200, 202) or (400 <= status < 500 and bool(body.get("reason")))


@settings(
    derandomize=True,
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(body=BODIES, with_token=st.booleans())
async def test_fuzzed_json_bodies_get_an_answer_never_a_500(
    start_daemon: Starter, caplog: pytest.LogCaptureFixture, body: bytes, with_token: bool
) -> None:
    runs = getattr(start_daemon, "runs", None)
    if runs is None:  # one daemon for all examples
        runs = start_daemon.runs = [await start_daemon()]  # type: ignore[attr-defined]
    run = runs[0]
    run.clock.advance(60)  # refills the public rate limit between examples
    headers = {"Content-Type": "application/json"}
    if with_token:
        headers["Authorization"] = f"Bearer {TOKEN}"
    async with run.http.post(f"{run.base}/api/v1/reports", data=body, headers=headers) as answer:
        status = answer.status
        reply = await answer.json(content_type=None)
    assert _refusal_ok(status, reply), (status, reply, body)
    assert error_records(caplog) == []


@settings(
    derandomize=True,
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    fields=st.dictionaries(
        st.sampled_from(["problem", "token", "comment", "x"]) | st.text(max_size=5),
        st.text(st.characters(codec=None, exclude_categories=()), max_size=20)
        | st.sampled_from(["app", "login", "VALID"]),
        max_size=4,
    ),
    raw=st.none() | st.binary(max_size=64),
)
async def test_fuzzed_form_bodies_get_an_answer_never_a_500(
    start_daemon: Starter,
    caplog: pytest.LogCaptureFixture,
    fields: dict[str, str],
    raw: bytes | None,
) -> None:
    runs = getattr(start_daemon, "runs", None)
    if runs is None:
        runs = start_daemon.runs = [await start_daemon()]  # type: ignore[attr-defined]
    run = runs[0]
    run.clock.advance(60)
    assert run.daemon.running is not None
    valid = run.daemon.running.intake.form_tokens.issue("claude")
    fields = {k: valid if v == "VALID" else v for k, v in fields.items()}
    if raw is None:
        body = "&".join(f"{_quote(k)}={_quote(v)}" for k, v in fields.items()).encode()
    else:
        body = raw
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    async with run.http.post(f"{run.base}/report/claude", data=body, headers=headers) as answer:
        assert answer.status in (200, 202) or 400 <= answer.status < 500, answer.status
        assert "text/html" in answer.headers["Content-Type"]
    assert error_records(caplog) == []


def _quote(text: str) -> str:
    return quote(text.encode("utf-8", "surrogatepass"), safe="")
