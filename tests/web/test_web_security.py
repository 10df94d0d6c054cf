"""--web.config.file (TLS, bcrypt basic auth, headers), external URL and route prefix,
trusted proxies: against a real daemon on loopback, real certificates, real hashes."""

from __future__ import annotations

import asyncio
import base64
import ipaddress
import re
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
import bcrypt
import pytest
import yarl
from hypothesis import given, settings
from hypothesis import strategies as st

from outagewatch.app import Daemon
from outagewatch.config import EX_CONFIG, ConfigError
from outagewatch.web.security import client_address, external_url, load_web_config
from outagewatch.web.server import WebOptions

CONFIG = """
services:
  claude:
    display_name: Claude
    reports: {public: true, rate_limit: 2, rate_limit_period: 1h}
storage:
  path: {db}
"""

# Cost 4: a real bcrypt hash, cheap enough for a test.
ALICE = bcrypt.hashpw(b"alice-password", bcrypt.gensalt(rounds=4)).decode()
BOB = bcrypt.hashpw(b"bob-password", bcrypt.gensalt(rounds=4)).decode()

Start = Callable[..., Awaitable[Daemon]]


def basic(user: str, password: str) -> dict[str, str]:
    token = base64.b64encode(f"{user}:{password}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Start]:
    """Start in-process daemons with the given --web.* options; stop them at the end."""
    running: list[tuple[Daemon, asyncio.Task[int]]] = []

    async def start(options: WebOptions) -> Daemon:
        config = tmp_path / "config.yml"
        config.write_text(CONFIG.replace("{db}", str(tmp_path / f"d{len(running)}.db")))
        daemon = Daemon(config, "127.0.0.1:0", handle_signals=False, web_options=options)
        task = asyncio.create_task(daemon.run())
        for _ in range(300):
            if daemon.is_ready() or task.done():
                break
            await asyncio.sleep(0.01)
        if task.done():
            task.result()
        running.append((daemon, task))
        return daemon

    yield start
    for daemon, task in running:
        daemon.stop()
        assert await asyncio.wait_for(task, 10) == 0


def _tls_files(tmp_path: Path, ca: Any) -> tuple[Path, Path]:
    cert = ca.issue_cert("127.0.0.1", "localhost")
    cert_file, key_file = tmp_path / "server.crt", tmp_path / "server.key"
    cert.cert_chain_pems[0].write_to_path(cert_file)
    cert.private_key_pem.write_to_path(key_file)
    return cert_file, key_file


def _client_tls(ca: Any, client_cert: Any | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ca.configure_trust(ctx)
    if client_cert is not None:
        client_cert.configure_cert(ctx)
    return ctx


async def test_tls_and_basic_auth_guard_every_route_but_the_report_intake(
    start: Start, tmp_path: Path, ca: Any
) -> None:
    cert_file, key_file = _tls_files(tmp_path, ca)
    web_config = tmp_path / "web.yml"
    web_config.write_text(
        f"tls_server_config:\n  cert_file: {cert_file}\n  key_file: {key_file}\n"
        f"  min_version: TLS12\n"
        f"basic_auth_users:\n  alice: '{ALICE}'\n"
        "http_server_config:\n  headers:\n    X-Content-Type-Options: nosniff\n"
    )
    daemon = await start(WebOptions(config_file=str(web_config)))
    base = f"https://127.0.0.1:{daemon.bound_port}"
    connector = aiohttp.TCPConnector(ssl=_client_tls(ca))
    async with aiohttp.ClientSession(connector=connector) as http:
        for path in ("/", "/metrics", "/api/v1/status", "/-/healthy", "/-/ready"):
            async with http.get(base + path) as response:
                assert response.status == 401, path
                assert response.headers["WWW-Authenticate"] == 'Basic realm="outagewatch"'
                assert response.headers["X-Content-Type-Options"] == "nosniff"
            async with http.get(base + path, headers=basic("alice", "wrong")) as response:
                assert response.status == 401, path
            async with http.get(base + path, headers=basic("mallory", "x")) as response:
                assert response.status == 401, path
            async with http.get(base + path, headers=basic("alice", "a" * 100)) as response:
                assert response.status == 401, path  # past bcrypt's 72 bytes: no 500
            for garbage in ("Basic !!!", "Basic " + "A" * 7, "Bearer x", "Basic", "basic Og=="):
                async with http.get(base + path, headers={"Authorization": garbage}) as response:
                    assert response.status == 401, (path, garbage)
            async with http.get(base + path, headers=basic("alice", "alice-password")) as response:
                assert response.status == 200, path
                assert response.headers["X-Content-Type-Options"] == "nosniff"
        # No spelling of a path reaches a guarded route through the intake's exemption.
        for path in (
            "/report/../metrics",
            "/report/%2e%2e/metrics",
            "/api/v1/reports/../../metrics",
            "/report/claude/../../-/healthy",
        ):
            url = yarl.URL(base + path, encoded=True)
            async with http.get(url) as response:
                assert response.status in (401, 404), path
                assert "outagewatch_" not in await response.text()
        # The report intake has its own rules (public services, bearer tokens).
        async with http.get(base + "/report/claude") as response:
            assert response.status == 200
        report = {"service": "claude", "problem": "app", "reporter": "r1"}
        async with http.post(base + "/api/v1/reports", json=report) as response:
            assert response.status == 202
    # Plain HTTP to the TLS port gets nowhere.
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientError):
            async with http.get(f"http://127.0.0.1:{daemon.bound_port}/metrics") as response:
                await response.read()
    # An untrusting client refuses the daemon's certificate.
    async with aiohttp.ClientSession() as http:
        with pytest.raises(aiohttp.ClientConnectorCertificateError):
            await http.get(base + "/metrics")


async def test_htpasswd_2y_hashes_are_accepted(start: Start, tmp_path: Path) -> None:
    web_config = tmp_path / "web.yml"
    # htpasswd -B writes $2y$: the same algorithm as bcrypt's $2b$.
    web_config.write_text(f"basic_auth_users:\n  alice: '{ALICE.replace('$2b$', '$2y$', 1)}'\n")
    daemon = await start(WebOptions(config_file=str(web_config)))
    async with aiohttp.ClientSession() as http:
        url = f"http://127.0.0.1:{daemon.bound_port}/metrics"
        async with http.get(url, headers=basic("alice", "alice-password")) as response:
            assert response.status == 200


async def test_client_certificates_are_verified_and_their_names_checked(
    start: Start, tmp_path: Path, ca: Any
) -> None:
    cert_file, key_file = _tls_files(tmp_path, ca)
    ca_file = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(ca_file)
    web_config = tmp_path / "web.yml"
    web_config.write_text(
        f"tls_server_config:\n  cert_file: {cert_file}\n  key_file: {key_file}\n"
        f"  client_auth_type: RequireAndVerifyClientCert\n  client_ca_file: {ca_file}\n"
        "  client_allowed_sans: [prometheus.example]\n"
    )
    daemon = await start(WebOptions(config_file=str(web_config)))
    url = f"https://127.0.0.1:{daemon.bound_port}/metrics"

    async def status(ctx: ssl.SSLContext) -> int:
        async with (
            aiohttp.ClientSession(connector=aiohttp.TCPConnector(ssl=ctx)) as http,
            http.get(url) as response,
        ):
            return response.status

    with pytest.raises(aiohttp.ClientError):  # no client certificate
        await status(_client_tls(ca))
    import trustme

    stranger = trustme.CA().issue_cert("prometheus.example")
    with pytest.raises(aiohttp.ClientError):  # signed by another CA
        await status(_client_tls(ca, stranger))
    assert await status(_client_tls(ca, ca.issue_cert("grafana.example"))) == 403
    assert await status(_client_tls(ca, ca.issue_cert("prometheus.example"))) == 200


async def test_reload_rereads_the_web_config_and_keeps_it_when_invalid(
    start: Start, tmp_path: Path
) -> None:
    web_config = tmp_path / "web.yml"
    web_config.write_text(f"basic_auth_users:\n  alice: '{ALICE}'\n")
    daemon = await start(WebOptions(config_file=str(web_config)))
    url = f"http://127.0.0.1:{daemon.bound_port}/metrics"
    async with aiohttp.ClientSession() as http:

        async def status(user: str, password: str) -> int:
            async with http.get(url, headers=basic(user, password)) as response:
                return response.status

        assert await status("alice", "alice-password") == 200
        web_config.write_text(f"basic_auth_users:\n  bob: '{BOB}'\n")
        assert await daemon.reload()
        assert await status("alice", "alice-password") == 401
        assert await status("bob", "bob-password") == 200

        web_config.write_text("basic_auth_users:\n  bob: plain-text\n")
        assert not await daemon.reload()
        assert await status("bob", "bob-password") == 200
        sample = daemon.registry.get_sample_value("outagewatch_config_last_reload_successful")
        assert sample == 0


def _run(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "outagewatch.cli", *args],
        capture_output=True,
        text=True,
        timeout=30,
        cwd=cwd,
    )


def test_invalid_web_config_exits_78_naming_each_key(tmp_path: Path) -> None:
    config = tmp_path / "config.yml"
    config.write_text(CONFIG.replace("{db}", str(tmp_path / "d.db")))
    web_config = tmp_path / "web.yml"
    web_config.write_text(
        "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n"
        "  client_auth_type: RequireAnyClientCert\n"
        "basic_auth_users:\n  alice: hunter2\n"
        "http_server_config:\n  headers: {X-Powered-By: me}\n"
        "rate_limit: {interval: 1s}\n"
    )
    expected = [
        f"invalid configuration in {web_config}:",
        "  tls_server_config -> client_auth_type: RequireAnyClientCert (an unverified client "
        "certificate) is not supported; use VerifyClientCertIfGiven or "
        "RequireAndVerifyClientCert",
        "  http_server_config -> headers: header 'X-Powered-By' is not allowed; one of: "
        "('Strict-Transport-Security', 'X-Content-Type-Options', 'X-Frame-Options', "
        "'X-XSS-Protection', 'Content-Security-Policy')",
        "  basic_auth_users -> alice: not a bcrypt hash (want $2y$10$... as from htpasswd -nB)",
        "  rate_limit: unknown key",
    ]
    run = _run("run", "--config.file", str(config), "--web.config.file", str(web_config),
               "--web.listen-address", "127.0.0.1:0", cwd=tmp_path)  # fmt: skip
    assert run.returncode == EX_CONFIG
    assert run.stderr.splitlines() == expected
    check = _run("check-config", "--config.file", str(config),
                 "--web.config.file", str(web_config), cwd=tmp_path)  # fmt: skip
    assert check.returncode == EX_CONFIG
    assert check.stderr.splitlines() == expected


def test_unreadable_tls_files_are_named(tmp_path: Path) -> None:
    web_config = tmp_path / "web.yml"
    web_config.write_text(
        "tls_server_config:\n  cert_file: /nonexistent.crt\n  key_file: /nonexistent.key\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_web_config(web_config)
    assert caught.value.errors == [
        "tls_server_config -> cert_file: cannot read /nonexistent.crt",
        "tls_server_config -> key_file: cannot read /nonexistent.key",
    ]
    web_config.write_text(
        f"tls_server_config:\n  cert_file: {web_config}\n  key_file: {web_config}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_web_config(web_config)
    assert caught.value.errors[0].startswith("tls_server_config: cannot load the TLS files:")


async def test_route_prefix_follows_the_external_url_and_links_use_it(start: Start) -> None:
    daemon = await start(WebOptions(external_url="https://status.example.com/outagewatch/"))
    base = f"http://127.0.0.1:{daemon.bound_port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/metrics") as response:
            assert response.status == 404
        async with http.get(base + "/outagewatch/metrics") as response:
            assert response.status == 200
        async with http.get(base + "/outagewatch", allow_redirects=False) as response:
            assert response.status == 302
            assert response.headers["Location"] == "/outagewatch/"
        async with http.get(base + "/outagewatch/") as response:
            page = await response.text()
        assert 'href="/outagewatch/metrics"' in page
        assert 'href="/outagewatch/report/claude"' in page
        async with http.get(base + "/outagewatch/api/v1/status") as response:
            document = await response.json()
        assert document["services"][0]["reports"]["page"] == "/outagewatch/report/claude"
        # The report form posts to its own URL, so it works under the prefix.
        async with http.get(base + "/outagewatch/report/claude") as response:
            html = await response.text()
        assert "<form method=post>" in html
        (token,) = re.findall(r'name=token value="([^"]+)"', html)
        form = {"problem": "app", "token": token}
        async with http.post(base + "/outagewatch/report/claude", data=form) as response:
            assert response.status == 202


async def test_behind_a_proxy_that_strips_the_path_links_keep_it(start: Start) -> None:
    daemon = await start(
        WebOptions(external_url="https://status.example.com/outagewatch/", route_prefix="/")
    )
    base = f"http://127.0.0.1:{daemon.bound_port}"
    async with aiohttp.ClientSession() as http:
        async with http.get(base + "/") as response:
            page = await response.text()
        async with http.get(base + "/outagewatch/metrics") as response:
            assert response.status == 404
    assert 'href="/outagewatch/metrics"' in page
    assert 'href="/outagewatch/report/claude"' in page


def test_route_prefix_flag_wins_over_the_external_url_path() -> None:
    assert external_url("https://a.example/x/", "/", 10060).prefix == ""
    assert external_url("https://a.example/x/", "y/", 10060).prefix == "/y"
    assert external_url("https://a.example/x/y/", None, 10060).prefix == "/x/y"
    assert external_url(None, None, 10060).url.endswith(":10060")
    with pytest.raises(ValueError, match="want http"):
        external_url("status.example.com", None, 10060)


PROXY = [ipaddress.ip_network("10.0.0.0/8"), ipaddress.ip_network("::1/128")]


@pytest.mark.parametrize(
    ("peer", "forwarded", "client"),
    [
        ("192.0.2.7", ["203.0.113.5"], "192.0.2.7"),  # untrusted peer: header ignored
        ("10.0.0.2", ["203.0.113.5"], "203.0.113.5"),
        ("10.0.0.2", ["1.2.3.4, 203.0.113.5"], "203.0.113.5"),  # spoofed hop on the left
        ("10.0.0.2", ["203.0.113.5, 10.0.0.9"], "203.0.113.5"),  # two proxies
        ("10.0.0.2", ["203.0.113.5", "10.0.0.9"], "203.0.113.5"),  # header given twice
        ("10.0.0.2", [], "10.0.0.2"),
        ("10.0.0.2", ["10.0.0.5, 10.0.0.9"], "10.0.0.5"),  # all trusted: the first
        ("10.0.0.2", ["not-an-address"], "10.0.0.2"),
        ("::1", ["2001:db8::1"], "2001:db8::1"),
    ],
)
def test_client_address_is_the_rightmost_untrusted_hop(
    peer: str, forwarded: list[str], client: str
) -> None:
    assert client_address(peer, forwarded, PROXY) == client


async def form_token(http: aiohttp.ClientSession, url: str) -> str:
    """The report form's token, as a browser gets it with the page."""
    async with http.get(url) as response:
        (token,) = re.findall(r'name=token value="([^"]+)"', await response.text())
    return token


async def test_behind_a_trusted_proxy_each_client_has_its_own_rate_limit(start: Start) -> None:
    daemon = await start(WebOptions(trusted_proxies=(ipaddress.ip_network("127.0.0.0/8"),)))
    url = f"http://127.0.0.1:{daemon.bound_port}/report/claude"
    async with aiohttp.ClientSession() as http:
        form = {"problem": "app", "token": await form_token(http, url)}

        async def report(client: str) -> int:
            headers = {"X-Forwarded-For": f"198.51.100.1, {client}"}
            async with http.post(url, data=form, headers=headers) as response:
                return response.status

        assert [await report("203.0.113.5") for _ in range(3)] == [202, 200, 429]
        assert await report("203.0.113.6") == 202  # another user, another bucket


async def test_without_trusted_proxies_forwarded_for_is_ignored(start: Start) -> None:
    daemon = await start(WebOptions())
    url = f"http://127.0.0.1:{daemon.bound_port}/report/claude"
    async with aiohttp.ClientSession() as http:
        form = {"problem": "app", "token": await form_token(http, url)}
        statuses = []
        for i in range(3):
            headers = {"X-Forwarded-For": f"203.0.113.{i}"}
            async with http.post(url, data=form, headers=headers) as response:
                statuses.append(response.status)
    assert statuses == [202, 200, 429]  # one bucket: the peer's


_HOPS = st.one_of(
    st.ip_addresses().map(str),
    st.sampled_from(["10.1.2.3", "::1", "unknown", "[2001:db8::1]", "1.2.3.4:80", ""]),
    st.text(max_size=20),
)


@settings(derandomize=True, max_examples=300, deadline=None)
@given(peer=st.ip_addresses().map(str), hops=st.lists(_HOPS, max_size=6))
def test_client_address_is_always_the_peer_or_an_address_never_an_error(
    peer: str, hops: list[str]
) -> None:
    header = [", ".join(hops)]
    client = client_address(peer, header, PROXY)
    trusted = any(ipaddress.ip_address(peer) in net for net in PROXY)
    if not trusted:
        assert client == peer
    else:
        ipaddress.ip_address(client.strip("[]"))  # a real address: a sane bucket key


def _containers(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=12), inner, max_size=3)


_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=12), _containers, max_leaves=8
)
_KEYS = st.sampled_from(
    ["tls_server_config", "basic_auth_users", "http_server_config", "cert_file", "key_file",
     "client_auth_type", "headers", "min_version", "alice"]
)  # fmt: skip


@settings(derandomize=True, max_examples=200, deadline=None)
@given(data=st.dictionaries(_KEYS, _VALUES | st.dictionaries(_KEYS, _VALUES), max_size=4))
def test_any_web_config_is_accepted_or_refused_with_key_paths(
    data: dict[str, Any], tmp_path_factory: pytest.TempPathFactory
) -> None:
    import yaml

    path = tmp_path_factory.mktemp("web") / "web.yml"
    path.write_text(yaml.safe_dump(data))
    try:
        load_web_config(path)
    except ConfigError as exc:
        assert exc.errors and all(isinstance(e, str) and e for e in exc.errors)


async def test_reload_puts_a_renewed_certificate_in_service(
    start: Start, tmp_path: Path, ca: Any
) -> None:
    import trustme

    cert_file, key_file = _tls_files(tmp_path, ca)
    web_config = tmp_path / "web.yml"
    web_config.write_text(f"tls_server_config:\n  cert_file: {cert_file}\n  key_file: {key_file}\n")
    daemon = await start(WebOptions(config_file=str(web_config)))
    url = f"https://127.0.0.1:{daemon.bound_port}/-/healthy"

    async def status(trusted: Any) -> int:
        connector = aiohttp.TCPConnector(ssl=_client_tls(trusted), force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http, http.get(url) as response:
            return response.status

    assert await status(ca) == 200
    renewed_by = trustme.CA()
    _tls_files(tmp_path, renewed_by)  # same paths, new contents, as certbot renews
    assert await daemon.reload()
    assert await status(renewed_by) == 200
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await status(ca)
