"""Traffic queries (`services -> <name> -> traffic`): a PromQL instant query per run.

One source per query: it asks a Prometheus HTTP API (``/api/v1/query``) for the
expression's value now and yields a ``TrafficSample`` (the series summed). A run
that reads nothing usable raises ``SourceError`` with one reason of
``FAILURE_REASONS``; 429 and 5xx answers back off like the status pages do.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Sequence
from typing import Any

import aiohttp

from outagewatch.credentials import CredentialError, read_secret, secret_path
from outagewatch.keys import traffic_source_key
from outagewatch.lenses.traffic import TrafficQuery, TrafficSample
from outagewatch.sources import bounded_json
from outagewatch.sources.base import RunContext
from outagewatch.sources.client import classify_client_error
from outagewatch.sources.errors import TRAFFIC_FAILURE_REASONS, SourceError
from outagewatch.sources.polling import RunBackoff, read_capped

FAILURE_REASONS = TRAFFIC_FAILURE_REASONS
_MAX_JSON_VALUES = 200_000


def _error_text(document: Any) -> str | None:
    """Prometheus' error answer as ``errorType: error``; None when it is not one."""
    if isinstance(document, dict) and document.get("status") == "error":
        kind = str(document.get("errorType", "unknown"))[:40]
        return f"{kind}: {str(document.get('error', ''))[:200]}"
    return None


def _sample_value(sample: Any) -> float:
    """The value of a ``[time, "value"]`` pair; raises SourceError when malformed."""
    if not (isinstance(sample, list) and len(sample) == 2 and isinstance(sample[1], str)):
        raise SourceError("bad_response", f'a sample is not [time, "value"]: {str(sample)[:80]}')
    try:
        value = float(sample[1])
    except ValueError:
        raise SourceError("bad_response", f"sample value {sample[1][:40]!r}") from None
    if not math.isfinite(value):
        raise SourceError("non_finite", f"sample value {sample[1]}")
    return value


def parse_query_answer(document: Any, max_series: int) -> tuple[float, int]:
    """The summed value and the series count of an instant query's JSON answer."""
    error = _error_text(document)
    if error is not None:
        raise SourceError("bad_response", error)
    if not isinstance(document, dict) or document.get("status") != "success":
        raise SourceError("bad_response", "no `status: success`")
    data = document.get("data")
    if not isinstance(data, dict):
        raise SourceError("bad_response", "no `data` object")
    kind, result = data.get("resultType"), data.get("result")
    if kind == "scalar":
        return _sample_value(result), 1
    if kind != "vector" or not isinstance(result, list):
        raise SourceError("bad_response", f"resultType {str(kind)[:20]!r}, expected vector")
    if not result:
        raise SourceError("no_data", "the query returned an empty vector")
    if len(result) > max_series:
        raise SourceError("too_many_series", f"{len(result)} series, more than {max_series}")
    total = 0.0
    for series in result:
        if not isinstance(series, dict):
            raise SourceError("bad_response", "a series is not an object")
        total += _sample_value(series.get("value"))
    if not math.isfinite(total):
        raise SourceError("non_finite", f"the sum of {len(result)} series overflows")
    return total, len(result)


class PrometheusQuerySource:
    """Runs one traffic query once per interval."""

    kind = "prometheus"

    def __init__(self, service: str, name: str, config: TrafficQuery) -> None:
        self.service = service
        self.name = name
        self.config = config
        self.key = traffic_source_key(service, name)
        self.interval = config.interval
        self.timeout = config.timeout
        self.log_context = {"service": service, "query": name, "target": config.url}
        self._backoff = RunBackoff(config.interval, config.max_backoff)

    def _headers(self) -> dict[str, str]:
        cfg = self.config
        headers = {"Accept": "application/json"}
        if cfg.auth == "none":
            return headers
        key = f"services -> {self.service} -> traffic -> {self.name}"
        try:
            path = secret_path(key, cfg.secret_file, cfg.secret_credential, os.environ)
            assert path is not None  # the config requires one
            secret = read_secret(key, path)
        except CredentialError as exc:
            raise SourceError("credential", str(exc)) from None
        if cfg.auth == "bearer":
            headers["Authorization"] = "Bearer " + secret.decode("utf-8", errors="replace")
        else:
            pair = (cfg.username or "").encode() + b":" + secret
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        return headers

    async def collect(self, ctx: RunContext) -> Sequence[TrafficSample]:
        self._backoff.check()
        now = ctx.clock.time()
        value, series = await self._query(ctx, now)
        self._backoff.succeeded()
        return [TrafficSample(self.service, self.name, now, value, series)]

    async def _query(self, ctx: RunContext, now: float) -> tuple[float, int]:
        cfg = self.config
        url = cfg.url.rstrip("/") + "/api/v1/query"
        # Prometheus stops evaluating at its own timeout a little before ours
        # (in whole milliseconds: 2.42 refuses a fractional "0.36s").
        timeout_ms = max(1, int(cfg.timeout * 900))
        params = {"query": cfg.query, "time": f"{now:.3f}", "timeout": f"{timeout_ms}ms"}
        try:
            async with ctx.http.session().get(
                url, params=params, headers=self._headers(), allow_redirects=False
            ) as response:
                body = await read_capped(response, self.config.max_body_bytes)
                status, answer_headers = response.status, response.headers
        except (aiohttp.ClientError, OSError) as exc:
            raise SourceError(classify_client_error(exc), f"{type(exc).__name__}: {exc}") from None
        try:
            document = bounded_json.loads(body, _MAX_JSON_VALUES)
        except ValueError:
            document = None  # not JSON: judged by the status below
        if status == 429 or status >= 500:
            self._backoff.failed(answer_headers.get("Retry-After"), ctx.clock.time())
        error = _error_text(document)
        if status != 200:
            if error is not None:  # Prometheus' own error answer (400 bad_data, 503 timeout...)
                raise SourceError("bad_response", f"HTTP {status}: {error}")
            raise SourceError("rate_limited" if status == 429 else "http_status", f"HTTP {status}")
        if document is None:
            raise SourceError("bad_response", f"not JSON ({len(body)} bytes)")
        return parse_query_answer(document, cfg.max_series)
