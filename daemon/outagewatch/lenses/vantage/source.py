"""Vantage control targets: a name to resolve, reference URLs to request.

They are not services: their results feed the daemon's judgement of its own
network (``detect/vantage.py``), never a service's state or the probe metrics.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from outagewatch.config import DnsControl, HttpControl, HttpProbe
from outagewatch.lenses.probe.source import HttpProbeSource
from outagewatch.observations import ControlResult
from outagewatch.sources.base import RunContext

# Any status at all proves the request crossed the network.
_ANY_STATUS = list(range(100, 600))


def control_source_key(target: str) -> str:
    return f"vantage/control/{target}"


class DnsControlSource:
    """Resolves one name per run with the probes' resolver."""

    kind = "control_dns"

    def __init__(self, target: str, config: DnsControl) -> None:
        self.target = target
        self.config = config
        self.key = control_source_key(target)
        self.interval = config.interval
        self.timeout = config.timeout
        self.log_context = {"control": target, "target": config.host}

    async def collect(self, ctx: RunContext) -> Sequence[ControlResult]:
        reason = detail = None
        try:
            async with asyncio.timeout(self.config.timeout):
                addresses = await ctx.http.resolve(self.config.host, 443, "any")
            if not addresses:
                reason, detail = "dns", f"no address for {self.config.host}"
        except TimeoutError:
            reason, detail = "timeout", f"resolving {self.config.host} timed out"
        except OSError as exc:
            reason, detail = "dns", f"cannot resolve {self.config.host}: {exc}"
        return [ControlResult(self.target, ctx.clock.time(), reason is None, reason, detail)]


class HttpControlSource:
    """Requests one reference URL per run; any HTTP answer is a success."""

    kind = "control_http"

    def __init__(self, target: str, config: HttpControl) -> None:
        self.target = target
        self.config = config
        self.key = control_source_key(target)
        self.interval = config.interval
        self.timeout = config.timeout
        self.log_context = {"control": target, "target": config.url}
        probe = HttpProbe(
            url=config.url,
            interval=config.interval,
            timeout=config.timeout,
            valid_status_codes=_ANY_STATUS,
            tls_ca_file=config.tls_ca_file,
        )
        self._probe = HttpProbeSource("vantage", target, probe)

    async def collect(self, ctx: RunContext) -> Sequence[ControlResult]:
        (result,) = await self._probe.collect(ctx)
        success = result.success is not False  # a bot challenge is an answer too
        return [
            ControlResult(
                self.target,
                result.time,
                success,
                None if success else result.reason,
                None if success else result.detail,
            )
        ]
