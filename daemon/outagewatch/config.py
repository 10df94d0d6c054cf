"""Configuration: YAML loaded once into frozen pydantic models.

Every default lives here. Unknown keys are rejected, and every error is
reported at once with its key path (``services -> claude -> probes -> api -> url``).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

EX_CONFIG = 78

_DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}
_DURATION_RE = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)")
# Names end up as label values and URL path parts: keep them plain.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,62}$"


def parse_duration(value: Any) -> float:
    """Parse ``30s``, ``5m``, ``1h30m``, ``250ms`` (or a bare number of seconds)."""
    if isinstance(value, bool):
        raise ValueError("a duration like 30s, 5m or 1h is required")
    if isinstance(value, int | float):
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
            raise ValueError(f"invalid duration {value!r}: use a number and unit, like 30s, 5m, 1h")
    else:
        raise ValueError("a duration like 30s, 5m or 1h is required")
    if seconds <= 0:
        raise ValueError("a duration must be greater than zero")
    return seconds


Duration = Annotated[float, BeforeValidator(parse_duration)]
Name = Annotated[str, Field(pattern=NAME_PATTERN)]


class Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class JsonPathCheck(Model):
    """Assert that a value in a JSON body equals an expected value."""

    path: str = Field(description="Dotted path: `status.indicator`, `items.0.name`.")
    equals: str | int | float | bool | None


class HttpProbe(Model):
    """An HTTP(S) endpoint probe: an API edge or a web app."""

    kind: Literal["http"] = "http"
    enabled: bool = True
    url: str
    method: Literal["GET", "HEAD", "POST", "PUT", "OPTIONS"] = "GET"
    headers: dict[str, str] = Field(default_factory=dict)
    body: str | None = None
    interval: Duration = 30.0
    timeout: Duration = 10.0
    valid_status_codes: list[Annotated[int, Field(ge=100, le=599)]] = Field(
        default_factory=list, description="Empty means any 2xx."
    )
    fail_if_body_matches: list[str] = Field(default_factory=list)
    fail_if_body_not_matches: list[str] = Field(default_factory=list)
    json_path_equals: list[JsonPathCheck] = Field(default_factory=list)
    follow_redirects: bool = True
    max_redirects: int = Field(default=10, ge=0, le=50)
    preferred_ip_protocol: Literal["any", "ip4", "ip6"] = "any"
    ip_protocol_fallback: bool = True
    max_body_bytes: int = Field(default=1 << 20, gt=0)
    challenge_markers: list[str] = Field(
        default_factory=list,
        description="Regexes that mark a bot-protection page (besides `cf-mitigated: challenge`).",
    )
    tls_insecure_skip_verify: bool = False
    tls_ca_file: Path | None = None

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        if not re.match(r"^https?://[^/\s]+", url):
            raise ValueError(f"must be an http:// or https:// URL, got {url!r}")
        return url

    @field_validator("fail_if_body_matches", "fail_if_body_not_matches", "challenge_markers")
    @classmethod
    def _regexes_compile(cls, patterns: list[str]) -> list[str]:
        for pattern in patterns:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
        return patterns

    @model_validator(mode="after")
    def _timeout_within_interval(self) -> HttpProbe:
        if self.timeout > self.interval:
            raise ValueError(
                f"timeout ({self.timeout:g}s) must not exceed interval ({self.interval:g}s)"
            )
        return self


ProbeConfig = Annotated[HttpProbe, Field(discriminator="kind")]


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
    rate_limit_period: Duration = 60.0


class ServiceConfig(Model):
    """A watched chatbot service; everything we know about it hangs under it."""

    display_name: str | None = None
    probes: dict[Name, ProbeConfig] = Field(default_factory=dict)
    reports: ServiceReports = ServiceReports()

    def title(self, key: str) -> str:
        return self.display_name or key


class SchedulerConfig(Model):
    max_concurrency: int = Field(default=256, ge=1, le=100_000)
    jitter_ratio: float = Field(
        default=0.05,
        ge=0.0,
        le=0.5,
        description="Each run waits a random 0..ratio x interval, without drifting the grid.",
    )
    shutdown_grace: Duration = 5.0


DEFAULT_PROBLEMS = ("app", "website", "login", "api", "slow", "other")


class ReportsConfig(Model):
    """Users' outage reports: intake limits, secrets, baseline and retention."""

    problems: list[Name] = Field(default_factory=lambda: list(DEFAULT_PROBLEMS), min_length=1)
    window: Duration = Field(
        default=3600.0, description="One report per reporter per service per window counts."
    )
    max_body_bytes: int = Field(default=64 * 1024, ge=256, le=1 << 20)
    max_batch: int = Field(default=100, ge=1, le=10_000)
    max_comment_chars: int = Field(default=500, ge=0, le=10_000)
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
    hash_secret_credential: str | None = None
    retention: Duration = Field(default=90 * 86400.0, description="Reports older are pruned.")
    baseline_weeks: int = Field(default=4, ge=1, le=52)
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
    prune_interval: Duration = 3600.0

    def resolved_path(self, environ: Mapping[str, str]) -> Path:
        """The database file: the configured path, else beside systemd's state directory."""
        if self.path is not None:
            return self.path
        state_dirs = environ.get("STATE_DIRECTORY", "")
        if state_dirs:
            # systemd joins several StateDirectory= entries with ':'.
            return Path(state_dirs.split(":")[0]) / "outagewatch.db"
        return Path("outagewatch.db")


class Config(Model):
    scheduler: SchedulerConfig = SchedulerConfig()
    services: dict[Name, ServiceConfig] = Field(default_factory=dict)
    reports: ReportsConfig = ReportsConfig()
    storage: StorageConfig = StorageConfig()


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


# Tags pydantic puts into error locations of discriminated unions; they are not keys.
_UNION_TAGS = {"http"}


def register_union_tag(tag: str) -> None:
    """Let a new source kind's tag be elided from error key paths."""
    _UNION_TAGS.add(tag)


def _key_path(loc: Sequence[int | str], data: Any) -> str:
    parts: list[str] = []
    node: Any = data
    for item in loc:
        if (
            isinstance(item, str)
            and item in _UNION_TAGS
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


def format_errors(exc: ValidationError, data: Any) -> list[str]:
    """One line per error: ``key -> path: message``."""
    lines = []
    for error in exc.errors():
        message = error["msg"]
        if error["type"] == "extra_forbidden":
            message = "unknown key"
        elif error["type"] == "missing":
            message = "required key is missing"
        message = message.removeprefix("Value error, ")
        path = _key_path(error["loc"], data)
        if error["type"] in ("union_tag_not_found", "union_tag_invalid"):
            ctx = error.get("ctx", {})
            path = f"{path} -> {ctx.get('discriminator', 'kind').strip(chr(39))}"
            if error["type"] == "union_tag_not_found":
                message = "required key is missing"
            else:
                message = f"unknown kind {ctx.get('tag')!r} (one of: {ctx.get('expected_tags')})"
        lines.append(f"{path}: {message}" if path else message)
    return lines


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice (YAML would keep the last silently)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_config(data: Any, source: str = "<config>") -> Config:
    """Validate already-parsed YAML data."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, ["the top level must be a mapping"])
    # Top-level "x-" keys hold YAML anchors for reuse (as in Compose files).
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, format_errors(exc, data)) from None


def load_config(path: str | Path) -> Config:
    """Read and validate a YAML config file; raises ConfigError."""
    source = str(path)
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(source, [f"cannot read file: {exc.strerror or exc}"]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.YAMLError as exc:
        raise ConfigError(source, ["invalid YAML: " + " ".join(str(exc).split())]) from None
    return parse_config(data, source)
