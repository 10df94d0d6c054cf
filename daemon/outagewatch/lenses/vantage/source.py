"""Vantage control targets: a name to resolve, reference URLs to request.

They are not services: their results feed the daemon's judgement of its own
network (``detect/vantage.py``), never a service's state or the probe metrics.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

from outagewatch.config_types import HttpProbe
from outagewatch.keys import control_source_key
from outagewatch.lenses.probe.source import HttpProbeSource
from outagewatch.lenses.vantage import ControlResult, DnsControl, HttpControl
from outagewatch.observations import Observation, ProbeResult
from outagewatch.sources.base import RunContext

# Any status at all proves the request crossed the network.
_ANY_STATUS = list(range(100, 600))


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
        host = self.config.host
        ctx.answer_on_timeout(lambda: [self._result(ctx, "timeout", f"resolving {host} timed out")])
        try:
            addresses = await ctx.http.resolve(host, 443, "any")
        except OSError as exc:
            return [self._result(ctx, "dns", f"cannot resolve {host}: {exc}")]
        if not addresses:
            return [self._result(ctx, "dns", f"no address for {host}")]
        return [self._result(ctx, None, None)]

    def _result(self, ctx: RunContext, reason: str | None, detail: str | None) -> ControlResult:
        return ControlResult(self.target, ctx.clock.time(), reason is None, reason, detail)


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
        # The probe leaves its timeout answer in its own slot; this run's answer wraps it.
        probe_ctx = replace(ctx, timeout_answers=[])
        ctx.answer_on_timeout(lambda: [self._control(r) for r in probe_ctx.timeout_answers[-1]()])
        return [self._control(result) for result in await self._probe.collect(probe_ctx)]

    def _control(self, result: Observation) -> ControlResult:
        assert isinstance(result, ProbeResult)
        success = result.success is not False  # a bot challenge is an answer too
        return ControlResult(
            self.target,
            result.time,
            success,
            None if success else result.reason,
            None if success else result.detail,
        )
