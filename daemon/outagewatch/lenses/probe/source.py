"""HTTP endpoint probe (`kind: http`): an API edge or a web app, with phase timings."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from typing import Any

from outagewatch.config_types import HttpProbe
from outagewatch.keys import probe_source_key
from outagewatch.observations import ProbeResult
from outagewatch.sources.base import RunContext
from outagewatch.sources.client import IpProtocol, PhaseTimer, describe_failure
from outagewatch.sources.errors import WireError
from outagewatch.sources.wire import Fetcher, Request, Response, Url, ssl_context


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
        self._valid = set(config.valid_status_codes)
        context = ssl_context(
            verify=not config.tls_insecure_skip_verify,
            cafile=str(config.tls_ca_file) if config.tls_ca_file is not None else None,
        )
        body = config.body.encode() if config.body is not None else None
        self._fetcher = Fetcher(
            Request(config.method, Url(str(config.url)), config.headers, body),
            context,
            max_body_bytes=config.max_body_bytes,
            # Only counted, not kept, when no check reads it.
            keep_body=bool(
                self._must_not or self._must or self._challenge or config.json_path_equals
            ),
            follow_redirects=config.follow_redirects,
            max_redirects=config.max_redirects,
        )

    def _families(self) -> list[IpProtocol]:
        preferred: IpProtocol = self.config.preferred_ip_protocol
        if preferred == "any" or not self.config.ip_protocol_fallback:
            return [preferred]
        return [preferred, "ip6" if preferred == "ip4" else "ip4"]

    async def collect(self, ctx: RunContext) -> Sequence[ProbeResult]:
        start = ctx.clock.monotonic()
        timer = PhaseTimer(ctx.clock.monotonic)
        ctx.answer_on_timeout(lambda: [self._failed(ctx, start, timer, *self._timed_out(timer))])
        try:
            response = await self._fetch(ctx, timer)
        except WireError as exc:
            return [
                self._failed(ctx, start, timer, exc.reason, exc.sub_reason, exc.detail, exc.status)
            ]
        except OSError as exc:  # refused, reset, TLS (ssl.SSLError), out of descriptors
            return [self._failed(ctx, start, timer, *describe_failure(exc))]
        success, reason, detail = self._judge(response.status, response.headers, response.body)
        return [
            self._result(
                ctx,
                start,
                timer,
                reason,
                None,
                detail,
                response.status,
                success,
                timer.tls_earliest_expiry,
            )
        ]

    def _result(
        self,
        ctx: RunContext,
        start: float,
        timer: PhaseTimer,
        reason: str | None,
        sub_reason: str | None,
        detail: str | None,
        status: int | None = None,
        success: bool | None = False,
        expiry: float | None = None,
    ) -> ProbeResult:
        return ProbeResult(
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
            sub_reason=sub_reason,
        )

    def _failed(
        self,
        ctx: RunContext,
        start: float,
        timer: PhaseTimer,
        reason: str,
        sub_reason: str | None,
        detail: str | None,
        status: int | None = None,
    ) -> ProbeResult:
        """A run that failed before a judgeable answer: the open phase gets the time."""
        timer.close_open()
        return self._result(ctx, start, timer, reason, sub_reason, detail, status)

    def _timed_out(self, timer: PhaseTimer) -> tuple[str, str | None, str]:
        """What the run was waiting for when its time ran out (the open phase mark)."""
        within = f"within {self.timeout:g}s"
        if timer.get("dns_start") is not None:
            return "dns", "timeout", f"no DNS answer {within}"
        if timer.get("headers_received") is not None:
            waiting = "the rest of the body"
        elif timer.get("sent") is not None:
            waiting = "the answer"
        elif timer.get("tcp_connected") is not None:
            waiting = "the TLS handshake to finish"
        else:
            waiting = "the connection to be accepted"
        return "timeout", None, f"waited for {waiting}, not done {within}"

    async def _fetch(self, ctx: RunContext, timer: PhaseTimer) -> Response:
        families = self._families()
        for index, family in enumerate(families):
            try:
                return await self._fetcher.fetch(ctx.http.resolve, family, timer)
            except WireError as exc:
                if exc.reason != "dns" or index == len(families) - 1:
                    raise
        raise AssertionError("unreachable")

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
