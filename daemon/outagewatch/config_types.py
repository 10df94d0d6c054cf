"""The configuration's shared models and field types, below the lenses.

The field types (``Duration``, ``Interval``, ``Name``...), the ``Model`` and
``Scheduled`` bases, the sections of the framework, and the models of the lenses
whose config has not moved into their package yet. A lens's own config model
lives in its package and imports this module; ``config.py`` assembles the whole
schema from this and the lenses in the registry (``Lens.service_fields``).
Unknown keys are rejected everywhere (``Model`` forbids extras).
"""

from __future__ import annotations

import ipaddress
import math
import re
import ssl
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from outagewatch.detect.settings import DetectionSettings

EX_CONFIG = 78

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"(\d{1,15}(?:\.\d{1,15})?)(ms|s|m|h|d)")
# Bounds every duration shares: below 1 ms is noise; past ten years timers overflow
# nothing, but no setting needs it and 400-digit values would reach inf.
MIN_DURATION = 0.001
MAX_DURATION = 3650 * 86400.0
# Floor of anything that repeats (a source's interval, the evaluation and save loops):
# a run every 0.001 ms spins a core; 100 ms still lets tests run fast.
MIN_INTERVAL = 0.1
# Larger integers than this are no count or size a config needs (and overflow C calls).
MAX_INTEGER = 2**53
# Deeper YAML than this is a mistake (and deep enough nesting overflows the parser's stack).
MAX_DEPTH = 64
# Values after alias expansion: a "billion laughs" document stops here.
MAX_VALUES = 200_000
# Names end up as label values and URL path parts: keep them plain.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"
# An HTTP field name (RFC 9110 token): anything else would corrupt the request head.
_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def _show(value: Any) -> str:
    """A value for an error message, cut short: the input may be hostile and huge."""
    text = repr(value)
    return text if len(text) <= 60 else f"{text[:57]}..."


def parse_duration(value: Any) -> float:
    """Parse ``30s``, ``5m``, ``1h30m``, ``250ms`` (or a bare number of seconds)."""
    if isinstance(value, bool):
        raise ValueError("a duration like 30s, 5m or 1h is required")
    if isinstance(value, int | float):
        if (isinstance(value, float) and not math.isfinite(value)) or abs(value) > MAX_DURATION:
            raise ValueError(f"a duration must be a finite number of at most {MAX_DURATION:g}s")
        seconds = float(value)
    elif isinstance(value, str):
        text = value.strip()
        pos = 0
        seconds = 0.0
        for match in _DURATION_RE.finditer(text):
            if match.start() != pos:
                break
            seconds += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
            pos = match.end()
        if pos == 0 or pos != len(text):
            raise ValueError(
                f"invalid duration {_show(value)}: use a number and unit, like 30s, 5m, 1h"
            )
    else:
        raise ValueError("a duration like 30s, 5m or 1h is required")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    if seconds < MIN_DURATION:
        raise ValueError(f"a duration must be at least 1ms, got {_show(value)}")
    if seconds > MAX_DURATION:
        raise ValueError(f"a duration must be at most 3650d, got {_show(value)}")
    return seconds


def _interval(seconds: float) -> float:
    if seconds < MIN_INTERVAL:
        raise ValueError(f"an interval must be at least 100ms, got {seconds:g}s")
    return seconds


_HOST_LABEL = re.compile(r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?")


def _host(host: str) -> None:
    """A DNS name (IDNA labels of 1-63 characters, 253 in all) or an IP literal."""
    try:
        ipaddress.ip_address(host)
        return
    except ValueError:
        pass
    name = host.rstrip(".").lower()
    labels = name.split(".")
    encoded: list[str] = []
    for label in labels:
        if not label:
            raise ValueError("has an empty label in its host")
        try:
            ascii_label = label if label.isascii() else "xn--" + label.encode("punycode").decode()
        except UnicodeError:
            raise ValueError(f"host label {label[:20]!r}... is not valid IDNA") from None
        if len(ascii_label) > 63:
            raise ValueError(
                f"host label of {len(ascii_label)} characters: a DNS label has at most 63"
            )
        if not _HOST_LABEL.fullmatch(ascii_label):
            raise ValueError(f"host label {label!r} is not a valid DNS label")
        encoded.append(ascii_label)
    if len(".".join(encoded)) > 253:
        raise ValueError("host longer than 253 characters")


def _show_url(url: str) -> str:
    # A URL in an error message without its user:password part (a secret).
    return _show(re.sub(r"(?<=//)[^/@]*@", "<userinfo>@", url, count=1))


def _http_url(url: str) -> str:
    if not re.match(r"^https?://[^/\s]+", url) or any(c.isspace() or ord(c) < 32 for c in url):
        raise ValueError(f"must be an http:// or https:// URL, got {_show_url(url)}")
    try:
        parts = urlsplit(url)
        port = parts.port  # ValueError when not a number in 0..65535
    except ValueError as exc:
        raise ValueError(f"invalid URL {_show_url(url)}: {exc}") from None
    if port == 0:
        raise ValueError(f"invalid URL {_show_url(url)}: port must be 1-65535")
    host = parts.hostname
    if not host:
        raise ValueError(f"invalid URL {_show_url(url)}: no host")
    if "[" in parts.netloc.rpartition("@")[2]:
        try:
            ipaddress.IPv6Address(host.partition("%")[0])
        except ValueError:
            raise ValueError(f"invalid URL {_show_url(url)}: bad IPv6 literal") from None
    else:
        try:
            _host(host)
        except ValueError as exc:
            raise ValueError(f"invalid URL {_show_url(url)}: {exc}") from None
    return url


Duration = Annotated[float, BeforeValidator(parse_duration)]
Interval = Annotated[float, BeforeValidator(parse_duration), AfterValidator(_interval)]
HttpUrl = Annotated[str, AfterValidator(_http_url)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", allow_inf_nan=False)


class Scheduled(Model):
    """A source run every ``interval``, each run bounded by a ``timeout`` within it."""

    interval: Interval = Field(description="How often the source runs.")
    timeout: Duration = Field(description="Longest a run may take; at most the interval.")

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> Self:
        if self.timeout > self.interval:
            raise ValueError(
                f"timeout ({self.timeout:g}s) must not exceed interval ({self.interval:g}s)"
            )
        return self


class JsonPathCheck(Model):
    """Assert that a value in a JSON body equals an expected value."""

    path: str = Field(description="Dotted path: `status.indicator`, `items.0.name`.")
    equals: str | int | float | bool | None = Field(
        description="The value expected there (`null` matches a JSON null)."
    )


class HttpProbe(Scheduled):
    """An HTTP(S) endpoint probe: an API edge or a web app."""

    kind: Literal["http"] = Field(
        default="http", description="The probe kind: one HTTP(S) request per run."
    )
    enabled: bool = Field(default=True, description="Disabled probes are validated but not run.")
    url: HttpUrl = Field(description="The endpoint to request.")
    method: Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"] = Field(
        default="GET", description="The request method."
    )
    headers: dict[str, str] = Field(
        default_factory=dict, description="Request headers (no line breaks in values)."
    )
    body: str | None = Field(default=None, description="Request body, for POST and PUT.")
    interval: Interval = Field(default=30.0, description="How often the probe runs.")
    timeout: Duration = Field(
        default=10.0, description="Longest a run may take; at most the interval."
    )
    valid_status_codes: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=list, description="Empty means any 2xx."
    )
    fail_if_body_matches: list[str] = Field(
        default_factory=list, description="Regexes: the probe fails if the body matches any."
    )
    fail_if_body_not_matches: list[str] = Field(
        default_factory=list, description="Regexes: the probe fails unless the body matches each."
    )
    json_path_equals: list[JsonPathCheck] = Field(
        default_factory=list, description="Values the JSON body must hold; any other is a failure."
    )
    follow_redirects: bool = Field(
        default=True, description="Follow 3xx answers (else a 3xx is the answer judged)."
    )
    max_redirects: int = Field(
        default=10, ge=0, le=50, description="More redirects than this is a failure."
    )
    preferred_ip_protocol: Literal["any", "ip4", "ip6"] = Field(
        default="any", description="The address family to connect over."
    )
    ip_protocol_fallback: bool = Field(
        default=True,
        description="Fall back to the other family when the preferred one has no address.",
    )
    max_body_bytes: int = Field(
        default=1 << 20, gt=0, description="Read at most this much of the body."
    )
    challenge_markers: list[str] = Field(
        default_factory=list,
        description="Regexes that mark a bot-protection page (besides `cf-mitigated: challenge`).",
    )
    tls_insecure_skip_verify: bool = Field(
        default=False, description="Do not verify the certificate (its expiry is still read)."
    )
    tls_ca_file: Path | None = Field(
        default=None,
        description="PEM file of CA certificates to verify against, instead of the system's.",
    )

    @field_validator("headers")
    @classmethod
    def _headers_fit_on_a_line(cls, headers: dict[str, str]) -> dict[str, str]:
        for name, value in headers.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"invalid header name {name!r}")
            if any(c in value for c in "\r\n\0"):
                raise ValueError(f"header {name} has a line break or NUL in its value")
        return headers

    @field_validator("fail_if_body_matches", "fail_if_body_not_matches", "challenge_markers")
    @classmethod
    def _regexes_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
        return patterns


class ChatBudgetCaps(Model):
    """Daily caps on what chat probes spend; a cap left out is no cap. Days are UTC."""

    requests_per_day: int | None = Field(default=None, ge=1, description="Chat requests a day.")
    tokens_per_day: int | None = Field(default=None, ge=1, description="Input plus output.")
    cost_per_day: float | None = Field(
        default=None, gt=0, description="In the currency of the probes' `price`."
    )


class ChatProbeBudget(ChatBudgetCaps):
    """A chat probe's own caps: on by default (a probe every 5 minutes is 288 a day)."""

    requests_per_day: int | None = Field(default=500, ge=1, description="Chat requests a day.")
    tokens_per_day: int | None = Field(default=50_000, ge=1, description="Input plus output.")


class ChatPrice(Model):
    """What the provider charges, per million tokens (for the estimated cost)."""

    input_per_million_tokens: float = Field(ge=0, description="Price of a million input tokens.")
    output_per_million_tokens: float = Field(ge=0, description="Price of a million output tokens.")


# A systemd credential name: a file name inside $CREDENTIALS_DIRECTORY.
CREDENTIAL_NAME = r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,254}$"


class ChatProbeBase(Scheduled):
    """A tiny streamed chat completion, sent with a real key (see docs/chat-probes.md).

    The key itself is never in the config: only where to read it at run time.
    """

    enabled: bool = Field(default=True, description="Disabled probes are validated but not run.")
    base_url: HttpUrl = Field(description="The API's base address; any compatible endpoint.")
    model: str = Field(min_length=1, description="The model to ask, e.g. the provider's smallest.")
    prompt: str = Field(
        default="Reply with one word: ok", min_length=1, description="The prompt sent each run."
    )
    max_tokens: int = Field(
        default=16, ge=1, le=4096, description="Output tokens asked for at most."
    )
    interval: Interval = Field(
        default=300.0, description="How often the probe runs (each run is a paid request)."
    )
    timeout: Duration = Field(
        default=60.0, description="Longest a run may take; at most the interval."
    )
    max_chunk_gap: Duration = Field(
        default=30.0, description="No data for longer than this: the stream has stalled."
    )
    max_stream_bytes: int = Field(
        default=1 << 20, gt=0, description="Read at most this much of the stream."
    )
    auth: Literal["key", "none"] = Field(
        default="key",
        description="`none`: keyless edge check; the provider's own JSON 401/403 is success.",
    )
    api_key_file: Path | None = Field(
        default=None,
        description="A file holding the API key (one of this or api_key_credential when auth is "
        "key).",
    )
    api_key_credential: str | None = Field(
        default=None,
        description="The systemd credential holding the API key: the name given to "
        "LoadCredential=, read from $CREDENTIALS_DIRECTORY.",
    )
    budget: ChatProbeBudget = Field(
        default=ChatProbeBudget(),
        description="This probe's daily caps; the probe pauses when one is spent.",
    )
    price: ChatPrice | None = Field(
        default=None, description="The provider's prices, for the estimated cost and cost caps."
    )

    @field_validator("api_key_credential")
    @classmethod
    def _credential_name(cls, name: str | None) -> str | None:
        if name is not None and not re.match(CREDENTIAL_NAME, name):
            raise ValueError(
                f"{name!r} is not a systemd credential name (the name given to "
                "LoadCredential=; letters, digits, _ . : -), nor a path"
            )
        return name

    @model_validator(mode="after")
    def _consistent(self) -> ChatProbeBase:
        if self.max_chunk_gap >= self.timeout:
            raise ValueError(
                f"max_chunk_gap ({self.max_chunk_gap:g}s) must be shorter than "
                f"timeout ({self.timeout:g}s)"
            )
        sources = [k for k in ("api_key_file", "api_key_credential") if getattr(self, k)]
        if self.auth == "key" and len(sources) != 1:
            raise ValueError("auth: key needs exactly one of api_key_file or api_key_credential")
        if self.auth == "none" and sources:
            raise ValueError(f"auth: none sends no key; remove {sources[0]}")
        if self.budget.cost_per_day is not None and self.price is None:
            raise ValueError("budget -> cost_per_day needs a price")
        return self


class AnthropicProbe(ChatProbeBase):
    """Anthropic Messages API, streamed."""

    kind: Literal["anthropic"] = Field(
        default="anthropic", description="The probe kind: Anthropic's streamed Messages API."
    )
    base_url: HttpUrl = Field(
        default="https://api.anthropic.com/v1", description="The API's base address."
    )
    anthropic_version: str = Field(
        default="2023-06-01", description="The anthropic-version header sent."
    )


class OpenAIProbe(ChatProbeBase):
    """OpenAI chat completions, streamed; any OpenAI-compatible endpoint by base_url."""

    kind: Literal["openai"] = Field(
        default="openai", description="The probe kind: OpenAI-style streamed chat completions."
    )
    base_url: HttpUrl = Field(
        default="https://api.openai.com/v1",
        description="The API's base address; any OpenAI-compatible endpoint.",
    )
    max_tokens_field: Literal["max_tokens", "max_completion_tokens"] = Field(
        default="max_tokens", description="Newer OpenAI models take max_completion_tokens."
    )
    include_usage: bool = Field(
        default=True, description="Ask for the usage chunk (stream_options.include_usage)."
    )


ProbeConfig = Annotated[HttpProbe | AnthropicProbe | OpenAIProbe, Field(discriminator="kind")]


class StatusPageBase(Scheduled):
    """What every official status page source shares."""

    enabled: bool = Field(default=True, description="Disabled pages are validated but not read.")
    url: HttpUrl = Field(description="The page's address.")
    interval: Interval = Field(default=60.0, description="How often the page is read.")
    timeout: Duration = Field(
        default=15.0, description="Longest a run may take; at most the interval."
    )
    max_body_bytes: int = Field(
        default=4 << 20, gt=0, description="Read at most this much of the JSON."
    )
    max_redirects: int = Field(
        default=5, ge=0, le=20, description="More redirects than this is a failure."
    )
    redirect_to_other_hosts: bool = Field(
        default=False,
        description="Follow redirects to a host other than the page's; off: such a "
        "redirect fails the run with reason redirect.",
    )
    max_backoff: Duration = Field(
        default=900.0, description="Longest wait after repeated 429/5xx answers."
    )


def _unique(values: list[str]) -> list[str]:
    seen: set[str] = set()
    for value in values:
        if not value.strip():
            raise ValueError("names must not be empty")
        if value.casefold() in seen:
            raise ValueError(f"{value!r} is listed twice")
        seen.add(value.casefold())
    return values


class ComponentPage(StatusPageBase):
    """A page with components (Statuspage and incident.io); ``url`` is its address."""

    components: list[str] = Field(
        default_factory=list,
        description="Component ids, or names matched case-insensitively; others are ignored.",
    )

    @field_validator("components")
    @classmethod
    def _unique_components(cls, components: list[str]) -> list[str]:
        return _unique(components)

    @field_validator("url")
    @classmethod
    def _page_address(cls, url: str) -> str:
        if url.rstrip("/").endswith(".json"):
            raise ValueError("give the page's address (https://status.example.com), not a JSON URL")
        return url


class StatuspagePage(ComponentPage):
    """An Atlassian Statuspage v2 page, read from /api/v2/summary.json."""

    kind: Literal["statuspage"] = Field(description="An Atlassian Statuspage v2 page.")


class IncidentIoPage(ComponentPage):
    """An incident.io page, read through its Statuspage-compatible JSON."""

    kind: Literal["incidentio"] = Field(description="An incident.io page.")
    native_fallback: bool = Field(
        default=True, description="Read /proxy/<host> when the compatible JSON fails."
    )


class GooglePage(StatusPageBase):
    """A Google Cloud or Workspace dashboard's incidents.json, filtered by product."""

    kind: Literal["google"] = Field(description="A Google Cloud or Workspace status dashboard.")
    max_body_bytes: int = Field(
        default=32 << 20,
        gt=0,
        description="Read at most this much of incidents.json (the whole history).",
    )  # the whole incident history
    products: list[str] = Field(
        min_length=1,
        description="Product titles or service names, matched case-insensitively.",
    )

    @field_validator("products")
    @classmethod
    def _unique_products(cls, products: list[str]) -> list[str]:
        return _unique(products)


StatusPageConfig = Annotated[
    StatuspagePage | IncidentIoPage | GooglePage, Field(discriminator="kind")
]


class ServiceReports(Model):
    """How one service takes users' outage reports."""

    public: bool = Field(
        default=False,
        description="Accept reports without a token (the /report/<service> page), "
        "rate limited per client address.",
    )
    rate_limit: int = Field(
        default=5, ge=1, le=100_000, description="Reports per client address per period."
    )
    rate_limit_period: Interval = Field(default=60.0, description="The period of rate_limit.")


class ServiceConfig(Model):
    """A watched chatbot service; everything we know about it hangs under it.

    The fields of the framework and of the lenses not yet moved; ``config.py``
    adds each registered lens's ``service_fields`` to it.
    """

    display_name: str | None = Field(
        default=None, description="Shown on pages; the key is used when absent."
    )
    probes: dict[Name, ProbeConfig] = Field(
        default_factory=dict, description="Probes by name (the `probe` label), each of a kind."
    )
    chat_budget: ChatBudgetCaps = Field(
        default=ChatBudgetCaps(), description="Caps over all of the service's chat probes."
    )

    @model_validator(mode="after")
    def _service_cost_cap_needs_prices(self) -> ServiceConfig:
        if self.chat_budget.cost_per_day is not None:
            for key, probe in self.probes.items():
                if isinstance(probe, ChatProbeBase) and probe.price is None:
                    raise ValueError(f"chat_budget -> cost_per_day needs a price on probe {key}")
        return self

    status_pages: dict[Name, StatusPageConfig] = Field(
        default_factory=dict, description="Official status pages by name, each of a kind."
    )
    reports: ServiceReports = Field(
        default=ServiceReports(), description="How the service takes users' reports."
    )

    def title(self, key: str) -> str:
        return self.display_name or key


class SchedulerConfig(Model):
    max_concurrency: int = Field(
        default=256,
        ge=1,
        le=100_000,
        description="Source runs in flight at once, across all services.",
    )
    jitter_ratio: float = Field(
        default=0.05,
        ge=0.0,
        le=0.5,
        description="Each run waits a random 0..ratio x interval, without drifting the grid.",
    )
    shutdown_grace: Duration = Field(
        default=5.0, description="On SIGTERM, runs in flight get this long after being cancelled."
    )


class MetricsConfig(Model):
    """What /metrics holds beyond what the shipped dashboards and rules use."""

    probe_details: bool = Field(
        default=False,
        description="Also each probe's phase durations, last duration, last success time "
        "and its source's last run duration: about 0.5 kB more per probe on every scrape; "
        "per service, outagewatch_probe_phase_seconds_total and "
        "outagewatch_probe_total_duration_seconds are always there.",
    )


class ShardConfig(Model):
    """This instance's share of the probes when several daemons split them.

    A probe belongs to shard ``hashmod(key, count)``, the hash Prometheus'
    ``hashmod`` relabelling uses, so daemon-side and Prometheus-side shards agree.
    With ``replicas`` k it also runs on the k-1 shards after that one (mod count),
    so k instances, in different regions, can confirm each other's failures.
    """

    index: int = Field(
        default=0, ge=0, description="This instance's shard, 0..count-1 (or --shard.index)."
    )
    count: int = Field(
        default=1, ge=1, le=1000, description="Instances splitting the probes (or --shard.count)."
    )
    shard_all_sources: bool = Field(
        default=False,
        description="Also split status pages, App Store feeds and the like; by default "
        "shard 0 owns them all.",
    )
    replicas: int = Field(
        default=1,
        ge=1,
        le=1000,
        description="Instances each probe runs on: its hashmod shard and the replicas-1 "
        "after it, mod count (or --shard.replicas). 1 runs each probe once.",
    )

    @model_validator(mode="after")
    def _within_count(self) -> ShardConfig:
        if self.index >= self.count:
            raise ValueError(f"index ({self.index}) must be below count ({self.count})")
        if self.replicas > self.count:
            raise ValueError(f"replicas ({self.replicas}) must be at most count ({self.count})")
        return self

    def with_flags(self, flags: Mapping[str, int], source: str) -> ShardConfig:
        """This shard with the --shard.* flags given replacing their keys, one by one.

        One by one, so `--shard.index` on each host keeps the file's shared `count`
        and `replicas`. Raises ConfigError naming the keys.
        """
        data = {**self.model_dump(), **flags}
        try:
            return ShardConfig.model_validate(data)
        except ValidationError as exc:
            given = ", ".join(f"--shard.{key}" for key in flags)
            errors = [f"shard (with {given}): {line}" for line in format_errors(exc, data)]
            raise ConfigError(source, errors) from None


DEFAULT_PROBLEMS = ("app", "website", "login", "api", "slow", "other")


class ReportsConfig(Model):
    """Users' outage reports: intake limits, secrets, baseline and retention."""

    problems: list[Name] = Field(
        default_factory=lambda: list(DEFAULT_PROBLEMS),
        min_length=1,
        description="Problems a report may name (the `problem` label).",
    )
    window: Duration = Field(
        default=3600.0, description="One report per reporter per service per window counts."
    )
    max_body_bytes: int = Field(
        default=64 * 1024,
        ge=256,
        le=1 << 20,
        description="Larger request bodies are refused (413).",
    )
    max_batch: int = Field(
        default=100, ge=1, le=10_000, description="Reports in one request at most."
    )
    max_comment_chars: int = Field(
        default=500, ge=0, le=10_000, description="Longer comments are refused."
    )
    tokens_file: Path | None = Field(
        default=None, description="Bearer tokens for machine clients, one per line."
    )
    tokens_credential: str | None = Field(
        default=None, description="Name of a systemd credential holding the tokens file."
    )
    hash_secret_file: Path | None = Field(
        default=None,
        description="Key for hashing reporter ids; without one a key is generated and stored.",
    )
    hash_secret_credential: str | None = Field(
        default=None, description="Name of a systemd credential holding the reporter hash key."
    )
    retention: Duration = Field(default=90 * 86400.0, description="Reports older are pruned.")
    baseline_weeks: int = Field(
        default=4, ge=1, le=52, description="Weeks of history the usual level is taken from."
    )
    baseline_min_weeks: int = Field(
        default=2, ge=1, le=52, description="Fewer weeks of history: use the recent level."
    )
    baseline_floor_per_5m: float = Field(
        default=1.0, gt=0, description="Ratio to baseline divides by at least this."
    )

    @model_validator(mode="after")
    def _consistent(self) -> ReportsConfig:
        if self.tokens_file is not None and self.tokens_credential is not None:
            raise ValueError("set tokens_file or tokens_credential, not both")
        if self.hash_secret_file is not None and self.hash_secret_credential is not None:
            raise ValueError("set hash_secret_file or hash_secret_credential, not both")
        if self.baseline_min_weeks > self.baseline_weeks:
            raise ValueError("baseline_min_weeks must not exceed baseline_weeks")
        if self.retention < (self.baseline_weeks + 1) * 7 * 86400:
            raise ValueError(
                f"retention must cover baseline_weeks + 1 weeks ({self.baseline_weeks + 1}w)"
            )
        if len(set(self.problems)) != len(self.problems):
            raise ValueError("problems must not repeat")
        return self


class StorageConfig(Model):
    """The SQLite store: reports now; detector state, budgets, incidents later."""

    path: Path | None = Field(
        default=None,
        description="Default: $STATE_DIRECTORY/outagewatch.db under systemd, "
        "else ./outagewatch.db.",
    )
    synchronous: Literal["full", "normal"] = Field(
        default="full",
        description="full: an acknowledged report survives power loss; "
        "normal: it survives a process crash only.",
    )
    prune_interval: Interval = Field(
        default=3600.0, description="How often reports past retention are deleted."
    )
    state_save_interval: Interval = Field(
        default=30.0,
        description="How often detector, disruption, budget, incident and rank state is "
        "saved (and always at shutdown).",
    )

    def resolved_path(self, environ: Mapping[str, str]) -> Path:
        """The database file: the configured path, else beside systemd's state directory."""
        if self.path is not None:
            return self.path
        state_dirs = environ.get("STATE_DIRECTORY", "")
        if state_dirs:
            # systemd joins several StateDirectory= entries with ':'.
            return Path(state_dirs.split(":")[0]) / "outagewatch.db"
        return Path("outagewatch.db")


class DisruptionConfig(Model):
    """Thresholds of the disruption rules (daemon/outagewatch/detect/disruption.py)."""

    probe_failure_runs: int = Field(
        default=3, ge=1, le=100, description="Consecutive failed runs before a probe counts."
    )
    probe_failure_share: float = Field(
        default=0.5,
        gt=0,
        le=1,
        description="Share of the fresh probes failing that makes the service disrupted.",
    )
    chat_overloaded_runs: int = Field(
        default=2, ge=1, le=100, description="Consecutive overloaded chat answers."
    )
    official_disrupted_level: int = Field(
        default=2, ge=1, le=3, description="Official level that alone means disrupted (2 major)."
    )
    corroborating_lenses: int = Field(
        default=2,
        ge=1,
        le=4,
        description="Lenses with a warning sign that together mean disrupted.",
    )
    stale_intervals: float = Field(
        default=3.0, ge=1, description="A reading is fresh for this many of its lens's intervals."
    )
    recover_after: Duration = Field(
        default=120.0, description="A milder state must hold this long before it is taken."
    )
    lead_window: Duration = Field(
        default=6 * 3600.0,
        description="A flag up to this long after an incident's start still counts (late).",
    )
    history: int = Field(default=100, ge=1, le=10_000, description="Transitions kept per service.")
    evaluate_interval: Interval = Field(
        default=5.0, description="How often every service is judged besides after each run."
    )
    restored_fresh_for: Duration = Field(
        default=60.0,
        description="A state restored from the store after a restart stands in for "
        "evidence this long after it was last judged; then a service without a "
        "conclusive reading is unknown.",
    )


class Config(Model):
    scheduler: SchedulerConfig = Field(
        default=SchedulerConfig(), description="How sources are run."
    )
    metrics: MetricsConfig = Field(
        default=MetricsConfig(), description="Which per-probe series /metrics shows."
    )
    shard: ShardConfig = Field(
        default=ShardConfig(),
        description="This instance's share when several daemons split the probes.",
    )
    services: dict[Name, ServiceConfig] = Field(
        default_factory=dict, description="Watched services by name (the `service` label)."
    )
    reports: ReportsConfig = Field(default=ReportsConfig(), description="Users' outage reports.")
    storage: StorageConfig = Field(default=StorageConfig(), description="The SQLite store.")
    detection: DetectionSettings = Field(
        default=DetectionSettings(),
        description="Spike detector parameters (see docs/detection.md).",
    )
    disruption: DisruptionConfig = Field(
        default=DisruptionConfig(),
        description="Thresholds that judge each service's disruption state.",
    )


class ConfigError(Exception):
    """Invalid configuration; ``errors`` lists each problem with its key path."""

    def __init__(self, source: str, errors: Sequence[str]) -> None:
        self.source = source
        self.errors = list(errors)
        super().__init__(self.render())

    def render(self) -> str:
        lines = [f"invalid configuration in {self.source}:"]
        lines.extend(f"  {error}" for error in self.errors)
        return "\n".join(lines)


def _key_path(loc: Sequence[int | str], data: Any, union_tags: frozenset[str]) -> str:
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if (
            isinstance(item, str)
            and item in union_tags
            and not (isinstance(node, Mapping) and item in node)
        ):
            continue  # a union tag, not a key of the document
        if isinstance(item, int):
            parts.append(str(item + 1))  # people count from 1
        else:
            parts.append(item)
        if isinstance(node, Mapping):
            node = node.get(item)
        elif isinstance(node, list) and isinstance(item, int) and item < len(node):
            node = node[item]
        else:
            node = None
    return " -> ".join(parts)


def format_errors(
    exc: ValidationError, data: Any, union_tags: frozenset[str] = frozenset()
) -> list[str]:
    """One line per error: ``key -> path: message``; ``union_tags`` are the `kind`
    tags of the schema's discriminated unions, which are not keys of the document."""
    lines = []
    for error in exc.errors():
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        message = message.removeprefix("Value error, ")
        loc = error["loc"]
        if loc and loc[-1] == "[key]":  # a mapping key failed validation: it is a name
            loc = loc[:-1]
            message = f"invalid name {error['input']!r}: use lowercase letters, digits, '-' and '_'"
        path = _key_path(loc, data, union_tags)
        if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
            ctx = error.get("ctx", {})
            path = f"{path} -> {ctx.get('discriminator', 'kind').strip(chr(39))}"
            if error["type"] == "union_tag_not_found":
                message = "required key is missing"
            else:
                message = f"unknown kind {ctx.get('tag')!r} (one of: {ctx.get('expected_tags')})"
        lines.append(f"{path}: {message}" if path else message)
    return lines


class FileChecks:
    """Errors for files the config names that cannot be opened, each with its key path.

    A systemd credential is checked in ``$CREDENTIALS_DIRECTORY`` (which systemd gives
    ``ExecStartPre=`` as well as ``ExecStart=``).
    """

    def __init__(self, environ: Mapping[str, str]) -> None:
        self.credentials = environ.get("CREDENTIALS_DIRECTORY", "")
        self.errors: list[str] = []

    def readable(self, key: str, path: Path) -> None:
        try:
            with path.open("rb"):
                pass
        except OSError as exc:
            self.errors.append(f"{key}: cannot read {path}: {exc.strerror or exc}")

    def ca_file(self, key: str, path: Path) -> None:
        before = len(self.errors)
        self.readable(key, path)
        if len(self.errors) > before:
            return
        try:
            ssl.create_default_context(cafile=str(path))
        except (ssl.SSLError, ValueError) as exc:
            self.errors.append(f"{key}: {path} holds no usable PEM certificates ({exc})")

    def credential(self, key: str, name: str | None) -> None:
        if name is None:
            return
        if not self.credentials:
            self.errors.append(f"{key}: credential {name!r} needs $CREDENTIALS_DIRECTORY")
        else:
            self.readable(key, Path(self.credentials) / name)
