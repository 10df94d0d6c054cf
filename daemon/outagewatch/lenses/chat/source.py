"""Chat probes (`kind: anthropic`, `kind: openai`): one tiny real streamed completion.

A reachable API edge is not a working chatbot. Each run sends a one-word prompt,
reads the stream as a user's client would, and reports what the user would have
seen as one outcome class (``CHAT_OUTCOMES``), classified on the HTTP status and
the provider's ``error.type``/``code``, never on message text (it changes, and it
can echo part of the key) but for one documented match: Anthropic's spend-limit 400.
See docs/chat-probes.md.

The API key is read from its file at each run, held only for the request, and
never put into a detail, a log line or an exception.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import ssl
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp

from outagewatch.config_types import AnthropicProbe, ChatProbeBase, OpenAIProbe
from outagewatch.keys import probe_source_key
from outagewatch.lenses.chat.budget import ChatBudget, estimated_cost
from outagewatch.observations import (
    RATELIMIT_RESOURCES,
    ChatBudgetStatus,
    ChatOutcome,
    ChatStats,
    Observation,
    ProbeResult,
)
from outagewatch.sources.base import RunContext
from outagewatch.sources.client import PhaseTimer, describe_failure
from outagewatch.sources.errors import ChatFailure, SourceError, SSEError
from outagewatch.sources.retry_after import retry_after_seconds
from outagewatch.sources.sse import SSEEvent, SSEParser

_ERROR_BODY_BYTES = 64 * 1024
# One line of printable ASCII: anything else cannot go into a header.
_KEY_CHARS = re.compile(r"[\x21-\x7e]+")

# Anthropic's message for a reached spend limit ("You have reached your specified API
# usage limits. You will regain access on ..."), sent as 400 invalid_request_error.
_SPEND_LIMIT = re.compile(r"reached your (?:specified )?API usage limit", re.IGNORECASE)
# Provider error codes and types, most specific first (OpenAI's `code`, then `type`).
_ERROR_OUTCOMES: dict[str, ChatOutcome] = {
    "overloaded_error": "overloaded",
    "rate_limit_error": "rate_limited",
    "rate_limit_exceeded": "rate_limited",
    "insufficient_quota": "quota",
    "billing_error": "billing",
    "authentication_error": "auth",
    "permission_error": "auth",
    "invalid_api_key": "auth",
    "api_error": "server_error",
    "timeout_error": "server_error",
}


class ApiKey:
    """A key that does not show itself in reprs, tracebacks or f-strings."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        self._value = value

    def reveal(self) -> str:
        return self._value

    def __repr__(self) -> str:
        return "ApiKey('********')"

    __str__ = __repr__


def read_api_key(config: ChatProbeBase, environ: Mapping[str, str]) -> ApiKey:
    """Read the probe's key from its file or systemd credential; SourceError if unusable."""
    if config.api_key_file is not None:
        path = config.api_key_file
        where = f"API key file {path}"
    else:
        directory = environ.get("CREDENTIALS_DIRECTORY")
        if not directory:
            raise SourceError(
                "credential",
                f"systemd credential {config.api_key_credential!r} needs $CREDENTIALS_DIRECTORY "
                "(LoadCredential= in the unit)",
            )
        path = Path(directory) / str(config.api_key_credential)
        where = f"systemd credential {config.api_key_credential!r}"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise SourceError("credential", f"cannot read {where}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise SourceError("credential", f"{where} is not UTF-8 text") from None
    value = text.strip()
    if not value:
        raise SourceError("credential", f"{where} is empty")
    if not _KEY_CHARS.fullmatch(value):
        raise SourceError("credential", f"{where} must hold one line of printable ASCII")
    return ApiKey(value)


@dataclass(frozen=True)
class ProviderError:
    """The provider's error object: what we classify on (never its message).

    ``spend_limit`` is the one fact read from a message: Anthropic answers a reached
    spend limit with a 400 ``invalid_request_error`` whose message says so.
    """

    type: str | None
    code: str | None
    request_id: str | None = None
    spend_limit: bool = False

    def describe(self) -> str:
        names = [n for n in dict.fromkeys((self.type, self.code)) if n]
        text = "/".join(names) or "error"
        if self.spend_limit:
            text += " (API usage limit reached)"
        return f"{text} (request {self.request_id})" if self.request_id else text


def _short(value: object) -> str | None:
    # Only short identifiers: never let a provider's free text into a label-like field.
    if isinstance(value, str) and 0 < len(value) <= 64 and value.isprintable():
        return value
    return None


def provider_error_of(document: Any) -> ProviderError | None:
    """The error object of a provider JSON body, or None when it is not one."""
    if isinstance(document, list) and len(document) == 1:
        document = document[0]  # Gemini wraps its error in a one-item list
    if not isinstance(document, dict):
        return None
    error = document.get("error")
    if not isinstance(error, dict):
        return None
    kind = _short(error.get("type"))
    # OpenAI: `code` is a string; Gemini: `code` is the HTTP status and `status` the name.
    code = _short(error.get("code")) or _short(error.get("status"))
    if kind is None and code is None and not isinstance(error.get("message"), str):
        return None
    message = error.get("message")
    spend_limit = (
        kind == "invalid_request_error"
        and isinstance(message, str)
        and _SPEND_LIMIT.search(message[:500]) is not None
    )
    return ProviderError(kind, code, _short(document.get("request_id")), spend_limit)


def parse_provider_error(body: bytes) -> ProviderError | None:
    try:
        return provider_error_of(json.loads(body))
    except (ValueError, RecursionError):
        return None


def classify_error(status: int | None, error: ProviderError | None) -> ChatOutcome:
    """One outcome class from the HTTP status and the provider's error type/code.

    ``status`` is None for an error that arrived inside a 200 stream. A body that
    is not the provider's error JSON came from something in between (a CDN, a
    proxy): its 4xx says nothing about the provider (a bad response); its 5xx
    are judged by status alone.
    """
    if error is not None:
        if error.spend_limit and status in (400, None):
            return "quota"  # the account's own limit, not a wrong request
        for name in (error.code, error.type):
            if name in _ERROR_OUTCOMES:
                return _ERROR_OUTCOMES[name]
    elif status is not None and status < 500:
        return "bad_response"
    if status in (401, 403):
        return "auth"
    if status == 402:
        return "billing"
    if status == 429:
        return "rate_limited"
    if status in (503, 529):
        return "overloaded"
    if status is None or status >= 500:
        return "server_error"
    return "bad_response"  # 400, 404, 413, 422: usually a wrong model name in the config


def _number(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        return float(value)
    except ValueError:
        return None


def ratelimit_headroom(headers: Mapping[str, str]) -> dict[str, float]:
    """remaining/limit per resource, from Anthropic's or OpenAI's rate-limit headers."""
    headroom: dict[str, float] = {}
    for resource in RATELIMIT_RESOURCES:
        name = resource.replace("_", "-")
        for remaining_header, limit_header in (
            (f"anthropic-ratelimit-{name}-remaining", f"anthropic-ratelimit-{name}-limit"),
            (f"x-ratelimit-remaining-{name}", f"x-ratelimit-limit-{name}"),
        ):
            remaining = _number(headers.get(remaining_header))
            limit = _number(headers.get(limit_header))
            if remaining is not None and limit:
                headroom[resource] = max(0.0, min(1.0, remaining / limit))
    return headroom


def _should_retry(value: str | None) -> bool | None:
    return {"true": True, "false": False}.get((value or "").strip().lower())


def _json_object(data: str) -> dict[str, Any]:
    try:
        document = json.loads(data)
    except (ValueError, RecursionError):
        raise ChatFailure("bad_response", "an event's data is not JSON") from None
    if not isinstance(document, dict):
        raise ChatFailure("bad_response", "an event's data is not a JSON object")
    return document


def _tokens(usage: Any, key: str) -> int | None:
    if isinstance(usage, dict):
        value = usage.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
    return None


class StreamReader(ABC):
    """Follows one provider's stream: text deltas, usage, the end marker, errors."""

    end_marker = ""

    def __init__(self) -> None:
        self.complete = False
        self.input_tokens: int | None = None
        self.output_tokens: int | None = None

    @abstractmethod
    def handle(self, event: SSEEvent) -> bool:
        """Apply one event; True when it carried answer text. Raises ChatFailure."""


class AnthropicStream(StreamReader):
    """message_start → content blocks → message_delta → message_stop."""

    end_marker = "message_stop"
    _AFTER_START = frozenset(
        ("content_block_start", "content_block_delta", "content_block_stop", "message_delta")
    )

    def __init__(self) -> None:
        super().__init__()
        self.started = False

    def handle(self, event: SSEEvent) -> bool:
        if event.event == "ping":
            return False
        document = _json_object(event.data)
        kind = event.event if event.event != "message" else document.get("type")
        if kind == "error":
            error = provider_error_of(document)
            detail = error.describe() if error else "error event"
            raise ChatFailure(classify_error(None, error), f"{detail} after HTTP 200")
        if kind == "message_start":
            self.started = True
            message = document.get("message")
            usage = message.get("usage") if isinstance(message, dict) else None
            self.input_tokens = _tokens(usage, "input_tokens")
            self.output_tokens = _tokens(usage, "output_tokens")
            return False
        if (kind in self._AFTER_START or kind == "message_stop") and not self.started:
            raise ChatFailure("bad_response", f"{kind} before message_start")
        if kind == "content_block_delta":
            delta = document.get("delta")
            return (
                isinstance(delta, dict)
                and delta.get("type") == "text_delta"
                and bool(delta.get("text"))
            )
        if kind == "message_delta":
            usage = document.get("usage")
            self.output_tokens = _tokens(usage, "output_tokens") or self.output_tokens
            self.input_tokens = _tokens(usage, "input_tokens") or self.input_tokens
        elif kind == "message_stop":
            self.complete = True
        return False  # other event types are new ones we need not understand


class OpenAIStream(StreamReader):
    """chat.completion.chunk lines, one with finish_reason, then ``data: [DONE]``."""

    end_marker = "[DONE]"

    def __init__(self) -> None:
        super().__init__()
        self.finished = False

    def handle(self, event: SSEEvent) -> bool:
        if event.data.strip() == "[DONE]":
            if not self.finished:
                raise ChatFailure("truncated", "[DONE] before any finish_reason")
            self.complete = True
            return False
        document = _json_object(event.data)
        if "error" in document:
            error = provider_error_of(document)
            detail = error.describe() if error else "error chunk"
            raise ChatFailure(classify_error(None, error), f"{detail} after HTTP 200")
        choices = document.get("choices")
        if not isinstance(choices, list):
            raise ChatFailure("bad_response", "a chunk without choices")
        usage = document.get("usage")
        self.input_tokens = _tokens(usage, "prompt_tokens") or self.input_tokens
        self.output_tokens = _tokens(usage, "completion_tokens") or self.output_tokens
        text = False
        for choice in choices:
            if not isinstance(choice, dict):
                raise ChatFailure("bad_response", "a choice that is not an object")
            delta = choice.get("delta")
            if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                text = text or bool(delta["content"])
            if choice.get("finish_reason"):
                self.finished = True
        return text


@dataclass
class _Measure:
    """What one run saw, kept as it goes so a failed run still reports it."""

    start: float
    status: int | None = None
    headers: Mapping[str, str] = field(default_factory=dict)
    ttft: float | None = None
    first_text: float | None = None
    last_chunk: float | None = None
    max_gap: float | None = None
    end: float | None = None
    reader: StreamReader | None = None


class ChatProbeSource(ABC):
    """Sends one tiny streamed completion per interval and classifies the outcome."""

    kind = ""
    path = ""

    def __init__(
        self, service: str, name: str, config: AnthropicProbe | OpenAIProbe, budget: ChatBudget
    ) -> None:
        self.service = service
        self.name = name
        self.config = config
        self._budget = budget
        self.key = probe_source_key(service, name)
        self.interval = config.interval
        self.timeout = config.timeout
        self.url = config.base_url.rstrip("/") + self.path
        self.log_context = {"service": service, "probe": name, "target": self.url}

    # The provider's dialect.

    @abstractmethod
    def request(self, key: ApiKey | None) -> tuple[dict[str, str], dict[str, Any]]:
        """Headers and JSON body of the request."""

    @abstractmethod
    def stream_reader(self) -> StreamReader:
        """A reader for one response stream of this provider."""

    def keyless_edge_answered(self, error: ProviderError | None) -> bool:
        """Whether a 401/403 body is the provider's own error (the edge is up)."""
        return error is not None

    # The run.

    async def collect(self, ctx: RunContext) -> Sequence[Observation]:
        cfg = self.config
        key: ApiKey | None = None
        if cfg.auth == "key":
            key = read_api_key(cfg, os.environ)
            now = ctx.clock.time()
            admission = self._budget.admit(self.service, self.name, now)
            if not admission.allowed:
                if admission.first_refusal:
                    ctx.log.warning(
                        "chat_budget_exhausted",
                        resource=admission.resource,
                        resumes_at=datetime.fromtimestamp(
                            admission.resumes_at or now, tz=UTC
                        ).isoformat(),
                    )
                return [self._budget_status(now)]
        measure = _Measure(start=ctx.clock.monotonic())
        timer = PhaseTimer(ctx.clock.monotonic)
        ctx.answer_on_timeout(
            lambda: self._settled(ctx, key, self._timed_out(ctx, measure, timer), measure)
        )
        result = await self._probe(ctx, key, measure, timer)
        return self._settled(ctx, key, result, measure)

    def _settled(
        self, ctx: RunContext, key: ApiKey | None, result: ProbeResult, measure: _Measure
    ) -> list[Observation]:
        """The run's result, and with a key what it spent of the budget."""
        cfg = self.config
        if key is None:
            return [result]
        reader = measure.reader
        answered = measure.status == 200
        input_tokens = reader.input_tokens if reader and reader.input_tokens is not None else None
        output_tokens = (
            reader.output_tokens if reader and reader.output_tokens is not None else None
        )
        # A stream that never reported its usage may still be billed: assume the most.
        if input_tokens is None:
            input_tokens = len(cfg.prompt) // 2 + 16 if answered else 0
        if output_tokens is None:
            output_tokens = cfg.max_tokens if answered else 0
        now = ctx.clock.time()
        self._budget.spend(
            self.service,
            self.name,
            now,
            input_tokens + output_tokens,
            estimated_cost(cfg.price, input_tokens, output_tokens),
        )
        return [result, self._budget_status(now)]

    def _budget_status(self, now: float) -> ChatBudgetStatus:
        remaining = self._budget.remaining(self.service, self.name, now)
        return ChatBudgetStatus(
            service=self.service,
            probe=self.name,
            time=now,
            exhausted=any(ratio <= 0.0 for ratio in remaining.values()),
            remaining=remaining,
        )

    async def _probe(
        self, ctx: RunContext, key: ApiKey | None, measure: _Measure, timer: PhaseTimer
    ) -> ProbeResult:
        outcome: ChatOutcome = "ok"
        detail, sub_reason = None, None
        try:
            await self._exchange(ctx, key, timer, measure)
        except ChatFailure as exc:
            outcome, detail = exc.reason, exc.detail
        except (aiohttp.ClientError, OSError, TimeoutError, ssl.SSLError) as exc:
            timer.close_open()
            # Built from the exception (OS and OpenSSL texts), never from the request.
            failure = describe_failure(exc)
            sub_reason, detail = failure.sub_reason, failure.detail
            # Too many redirects is the one transport reason no chat outcome names.
            outcome = "bad_response" if failure.reason == "http_status" else failure.reason
            if measure.status is not None and outcome == "connect":
                outcome, sub_reason = "truncated", None  # it broke after the answer began
                detail = f"{detail} after HTTP {measure.status}"
            if outcome == "timeout":
                detail = self._not_within()
        return self._result(ctx, measure, timer, outcome, detail, sub_reason)

    def _not_within(self) -> str:
        return f"no complete answer within {self.timeout:g}s"

    def _timed_out(self, ctx: RunContext, measure: _Measure, timer: PhaseTimer) -> ProbeResult:
        """The run's deadline cut the exchange short: what it measured so far."""
        timer.close_open()
        return self._result(ctx, measure, timer, "timeout", self._not_within(), None)

    def _result(
        self,
        ctx: RunContext,
        measure: _Measure,
        timer: PhaseTimer,
        outcome: ChatOutcome,
        detail: str | None,
        sub_reason: str | None,
    ) -> ProbeResult:
        end = ctx.clock.monotonic()
        reader = measure.reader
        output_tokens = reader.output_tokens if reader else None
        tokens_per_second = None
        if (
            output_tokens
            and measure.first_text is not None
            and measure.end is not None
            and measure.end > measure.first_text
        ):
            tokens_per_second = output_tokens / (measure.end - measure.first_text)
        stats = ChatStats(
            outcome=outcome,
            ttft_seconds=measure.ttft,
            max_chunk_gap_seconds=measure.max_gap,
            input_tokens=reader.input_tokens if reader else None,
            output_tokens=output_tokens,
            output_tokens_per_second=tokens_per_second,
            ratelimit_remaining=ratelimit_headroom(measure.headers),
            retry_after_seconds=retry_after_seconds(
                measure.headers.get("retry-after"), ctx.clock.time()
            ),
            should_retry=_should_retry(measure.headers.get("x-should-retry")),
        )
        return ProbeResult(
            service=self.service,
            probe=self.name,
            kind=self.kind,
            time=ctx.clock.time(),
            success=outcome == "ok",
            duration_seconds=end - measure.start,
            reason=None if outcome == "ok" else outcome,
            status_code=measure.status,
            phases=dict(timer.totals),
            tls_earliest_expiry=timer.tls_earliest_expiry,
            detail=detail,
            chat=stats,
            sub_reason=sub_reason,
        )

    async def _exchange(
        self, ctx: RunContext, key: ApiKey | None, timer: PhaseTimer, measure: _Measure
    ) -> None:
        headers, body = self.request(key)
        async with ctx.http.session().post(
            self.url,
            data=json.dumps(body).encode(),
            headers={"Content-Type": "application/json", **headers},
            allow_redirects=False,
            trace_request_ctx=timer,
        ) as response:
            measure.status = response.status
            measure.headers = response.headers
            if response.status != 200:
                raw = await _read_at_most(response, _ERROR_BODY_BYTES)
                timer.close("transfer", "headers_received")
                error = parse_provider_error(raw)
                if (
                    key is None
                    and response.status in (401, 403)
                    and self.keyless_edge_answered(error)
                ):
                    return  # keyless edge mode: the front door answered in its own words
                described = error.describe() if error else "not the provider's error format"
                raise ChatFailure(
                    classify_error(response.status, error), f"HTTP {response.status} {described}"
                )
            if key is None:
                raise ChatFailure("bad_response", "HTTP 200 to a request without a key")
            content_type = response.headers.get("Content-Type", "")
            if content_type.split(";")[0].strip().lower() != "text/event-stream":
                raise ChatFailure(
                    "bad_response", f"content type {content_type[:60]!r}, not an event stream"
                )
            await self._read_stream(ctx, response, measure)
            timer.close("transfer", "headers_received")

    async def _read_stream(
        self, ctx: RunContext, response: aiohttp.ClientResponse, measure: _Measure
    ) -> None:
        cfg = self.config
        parser = SSEParser(cfg.max_stream_bytes)
        reader = measure.reader = self.stream_reader()
        received = 0
        while True:
            try:
                async with asyncio.timeout(cfg.max_chunk_gap):
                    chunk = await response.content.readany()
            except TimeoutError:
                raise ChatFailure("stalled", f"no data for {cfg.max_chunk_gap:g}s") from None
            now = ctx.clock.monotonic()
            if not chunk:
                raise ChatFailure("truncated", f"the stream ended before {reader.end_marker}")
            if measure.last_chunk is not None:
                measure.max_gap = max(measure.max_gap or 0.0, now - measure.last_chunk)
            measure.last_chunk = now
            received += len(chunk)
            if received > cfg.max_stream_bytes:
                raise ChatFailure("bad_response", f"stream exceeds {cfg.max_stream_bytes} bytes")
            try:
                events = parser.feed(chunk)
            except SSEError as exc:
                raise ChatFailure("bad_response", str(exc)) from None
            for event in events:
                if reader.handle(event) and measure.ttft is None:
                    measure.ttft = now - measure.start
                    measure.first_text = now
                if reader.complete:
                    measure.end = now
                    return


async def _read_at_most(response: aiohttp.ClientResponse, limit: int) -> bytes:
    body = bytearray()
    while len(body) < limit:
        chunk = await response.content.read(limit - len(body))
        if not chunk:
            break
        body += chunk
    return bytes(body)


class AnthropicProbeSource(ChatProbeSource):
    """Anthropic Messages API, streamed (`POST {base_url}/messages`)."""

    kind = "anthropic"
    path = "/messages"
    config: AnthropicProbe

    def request(self, key: ApiKey | None) -> tuple[dict[str, str], dict[str, Any]]:
        cfg = self.config
        headers = {"Accept": "text/event-stream", "anthropic-version": cfg.anthropic_version}
        if key is not None:
            headers["x-api-key"] = key.reveal()
        body = {
            "model": cfg.model,
            "max_tokens": cfg.max_tokens,
            "messages": [{"role": "user", "content": cfg.prompt}],
            "stream": True,
        }
        return headers, body

    def stream_reader(self) -> StreamReader:
        return AnthropicStream()

    def keyless_edge_answered(self, error: ProviderError | None) -> bool:
        return error is not None and error.type in ("authentication_error", "permission_error")


class OpenAIProbeSource(ChatProbeSource):
    """OpenAI chat completions, streamed (`POST {base_url}/chat/completions`)."""

    kind = "openai"
    path = "/chat/completions"
    config: OpenAIProbe

    def request(self, key: ApiKey | None) -> tuple[dict[str, str], dict[str, Any]]:
        cfg = self.config
        headers = {"Accept": "text/event-stream"}
        if key is not None:
            headers["Authorization"] = f"Bearer {key.reveal()}"
        body: dict[str, Any] = {
            "model": cfg.model,
            "messages": [{"role": "user", "content": cfg.prompt}],
            cfg.max_tokens_field: cfg.max_tokens,
            "stream": True,
        }
        if cfg.include_usage:
            body["stream_options"] = {"include_usage": True}
        return headers, body

    def stream_reader(self) -> StreamReader:
        return OpenAIStream()
