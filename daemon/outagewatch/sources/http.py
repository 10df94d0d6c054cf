"""HTTP endpoint probe (`kind: http`): an API edge or a web app, with phase timings."""

from __future__ import annotations

import asyncio
import json
import re
import ssl
from collections.abc import Sequence
from typing import Any

import aiohttp

from outagewatch.config import HttpProbe
from outagewatch.observations import ProbeResult
from outagewatch.sources.base import RunContext, probe_source_key
from outagewatch.sources.client import IpProtocol, PhaseTimer

_CHUNK = 64 * 1024


class ProbeFailure(Exception):
    """Ends a probe run with one reason."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(detail or reason)
        self.reason = reason
        self.detail = detail


def classify_client_error(exc: BaseException) -> str:
    """Map a client exception to one failure reason."""
    if isinstance(exc, asyncio.TimeoutError | TimeoutError):
        return "timeout"
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return "dns"
    if isinstance(
        exc,
        aiohttp.ClientConnectorCertificateError
        | aiohttp.ClientConnectorSSLError
        | aiohttp.ClientSSLError
        | ssl.SSLError,
    ):
        return "tls"
    if isinstance(exc, aiohttp.TooManyRedirects):
        return "http_status"
    return "connect"


def json_path(document: Any, path: str) -> Any:
    """Follow a dotted path (`a.b.0.c`) into parsed JSON; KeyError when absent."""
    node = document
    for part in path.split(".") if path else []:
        if isinstance(node, list) and part.lstrip("-").isdigit():
            node = node[int(part)]
        elif isinstance(node, dict) and part in node:
            node = node[part]
        else:
            raise KeyError(path)
    return node


class HttpProbeSource:
    """Probes one URL once per interval."""

    kind = "http"

    def __init__(self, service: str, name: str, config: HttpProbe) -> None:
        self.service = service
        self.name = name
        self.config = config
        self.key = probe_source_key(service, name)
        self.interval = config.interval
        self.timeout = config.timeout
        self.log_context = {"service": service, "probe": name, "target": config.url}
        self._must_not = [re.compile(p.encode()) for p in config.fail_if_body_matches]
        self._must = [re.compile(p.encode()) for p in config.fail_if_body_not_matches]
        self._challenge = [re.compile(p.encode()) for p in config.challenge_markers]
        self._ssl = self._ssl_context(config)
        self._valid = set(config.valid_status_codes)

    @staticmethod
    def _ssl_context(config: HttpProbe) -> ssl.SSLContext | bool:
        if config.tls_insecure_skip_verify:
            return False
        if config.tls_ca_file is not None:
            return ssl.create_default_context(cafile=str(config.tls_ca_file))
        return True

    def _families(self) -> list[IpProtocol]:
        preferred: IpProtocol = self.config.preferred_ip_protocol
        if preferred == "any" or not self.config.ip_protocol_fallback:
            return [preferred]
        return [preferred, "ip6" if preferred == "ip4" else "ip4"]

    async def collect(self, ctx: RunContext) -> Sequence[ProbeResult]:
        start = ctx.clock.monotonic()
        timer = PhaseTimer(ctx.clock.monotonic)
        status: int | None = None
        expiry: float | None = None
        success: bool | None = False
        reason: str | None = None
        detail: str | None = None
        try:
            async with asyncio.timeout(self.config.timeout):
                status, expiry, body, headers = await self._fetch(ctx, timer)
            success, reason, detail = self._judge(status, headers, body)
        except ProbeFailure as exc:
            reason, detail = exc.reason, exc.detail
        except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as exc:
            reason, detail = classify_client_error(exc), f"{type(exc).__name__}: {exc}"
            timer.close_open()
        return [
            ProbeResult(
                service=self.service,
                probe=self.name,
                kind=self.kind,
                time=ctx.clock.time(),
                success=success,
                duration_seconds=ctx.clock.monotonic() - start,
                reason=reason,
                status_code=status,
                phases=dict(timer.totals),
                tls_earliest_expiry=expiry,
                detail=detail,
            )
        ]

    async def _fetch(
        self, ctx: RunContext, timer: PhaseTimer
    ) -> tuple[int, float | None, bytes, Any]:
        families = self._families()
        for index, family in enumerate(families):
            try:
                return await self._fetch_once(ctx, timer, family)
            except aiohttp.ClientConnectorDNSError:
                if index == len(families) - 1:
                    raise
        raise AssertionError("unreachable")

    async def _fetch_once(
        self, ctx: RunContext, timer: PhaseTimer, family: IpProtocol
    ) -> tuple[int, float | None, bytes, Any]:
        cfg = self.config
        session = ctx.http.session(family)
        async with session.request(
            cfg.method,
            cfg.url,
            headers=cfg.headers,
            data=cfg.body.encode() if cfg.body is not None else None,
            allow_redirects=cfg.follow_redirects,
            max_redirects=cfg.max_redirects,
            ssl=self._ssl,
            trace_request_ctx=timer,
        ) as response:
            body = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > cfg.max_body_bytes:
                    timer.close("transfer", "headers_received")
                    raise ProbeFailure("too_large", f"body exceeds {cfg.max_body_bytes} bytes")
            timer.close("transfer", "headers_received")
            return response.status, timer.tls_earliest_expiry, bytes(body), response.headers

    def _judge(
        self, status: int, headers: Any, body: bytes
    ) -> tuple[bool | None, str | None, str | None]:
        """Success, or the one reason it failed; None when a bot challenge answered."""
        if headers.get("cf-mitigated", "").lower() == "challenge" or any(
            p.search(body) for p in self._challenge
        ):
            return None, "challenge", f"bot challenge (HTTP {status})"
        valid = status in self._valid if self._valid else 200 <= status < 300
        if not valid:
            return False, "http_status", f"HTTP {status}"
        for pattern in self._must_not:
            if pattern.search(body):
                return False, "body_mismatch", f"body matches {pattern.pattern.decode()!r}"
        for pattern in self._must:
            if not pattern.search(body):
                return False, "body_mismatch", f"body lacks {pattern.pattern.decode()!r}"
        if self.config.json_path_equals:
            try:
                document = json.loads(body)
            except ValueError:
                return False, "body_mismatch", "body is not JSON"
            for check in self.config.json_path_equals:
                try:
                    value = json_path(document, check.path)
                except (KeyError, IndexError):
                    return False, "body_mismatch", f"{check.path} is absent"
                if value != check.equals:
                    return False, "body_mismatch", f"{check.path} is {value!r}"
        return True, None, None
