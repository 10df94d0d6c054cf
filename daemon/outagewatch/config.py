"""Configuration: YAML loaded once into frozen pydantic models.

The schema is assembled here: the shared models of ``config_types.py`` plus each
registered lens's own fields (``Lens.service_fields``, its models in its package).
Every default lives in the models. Unknown keys are rejected, and every error is
reported at once with its key path (``services -> claude -> probes -> api -> url``).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, get_args

import structlog
import yaml
from pydantic import ValidationError, create_model, model_validator

from outagewatch import config_types
from outagewatch.config_types import (
    EX_CONFIG,
    MAX_DEPTH,
    MAX_INTEGER,
    MAX_VALUES,
    MIN_INTERVAL,
    AnthropicProbe,
    ChatBudgetCaps,
    ChatPrice,
    ChatProbeBase,
    ComponentPage,
    ConfigError,
    DisruptionConfig,
    FileChecks,
    GooglePage,
    HttpProbe,
    IncidentIoPage,
    Model,
    Name,
    OpenAIProbe,
    ReportsConfig,
    ServiceReports,
    ShardConfig,
    StatusPageBase,
    StatusPageConfig,
    StatuspagePage,
    StorageConfig,
    format_errors,
    parse_duration,
)
from outagewatch.lenses.registry import LENSES

# What tests and the modules above the lenses read from here.
__all__ = [
    "EX_CONFIG",
    "MIN_INTERVAL",
    "AnthropicProbe",
    "ChatBudgetCaps",
    "ChatPrice",
    "ChatProbeBase",
    "ComponentPage",
    "Config",
    "ConfigError",
    "DisruptionConfig",
    "GooglePage",
    "HttpProbe",
    "IncidentIoPage",
    "Model",
    "OpenAIProbe",
    "ReportsConfig",
    "ServiceConfig",
    "ServiceReports",
    "ShardConfig",
    "StatusPageBase",
    "StatusPageConfig",
    "StatuspagePage",
    "StorageConfig",
    "check_files",
    "format_errors",
    "load_config",
    "parse_config",
    "parse_duration",
]


def _lens_fields(base: type[Model], fields: dict[str, Any], attribute: str) -> dict[str, Any]:
    """``fields`` plus each lens's ``attribute`` in registry order; a key two parts
    claim is a mistake in the code, not the config, so it stops the import."""
    for lens in LENSES:
        for key, field in getattr(lens, attribute).items():
            if key in fields or key in base.model_fields:
                raise TypeError(f"lens {lens.name}: {attribute} key {key!r} is taken")
            fields[key] = field
    return fields


def _service_model() -> type[config_types.ServiceConfig]:
    """A service's model: the shared fields, then each lens's in registry order."""
    fields = _lens_fields(config_types.ServiceConfig, {}, "service_fields")
    return create_model(
        "ServiceConfig",
        __base__=config_types.ServiceConfig,
        __module__=__name__,
        __doc__=config_types.ServiceConfig.__doc__,
        **fields,
    )


def _config_model(service: type[config_types.ServiceConfig]) -> type[config_types.Config]:
    """The whole document's model: its services are of the assembled service model,
    then each lens's top-level fields in registry order."""
    services = config_types.Config.model_fields["services"]
    assembled: dict[str, Any] = {"services": (dict[Name, service], services)}  # type: ignore[valid-type]
    fields = _lens_fields(config_types.Config, assembled, "config_fields")
    return create_model(
        "Config",
        __base__=config_types.Config,
        __module__=__name__,
        __doc__=config_types.Config.__doc__,
        __validators__={"_lens_checks": model_validator(mode="after")(_lens_checks)},  # type: ignore[dict-item]
        **fields,
    )


def _lens_checks(config: config_types.Config) -> config_types.Config:
    """Each lens's checks of its section against the rest of the config."""
    for lens in LENSES:
        lens.check_config(config)
    return config


# The assembled models are subclasses of the shared ones: code is typed with those
# (``config_types.Config``), the document validates against these.
if TYPE_CHECKING:
    from outagewatch.config_types import Config, ServiceConfig
else:
    ServiceConfig = _service_model()
    Config = _config_model(ServiceConfig)


def _kind_tags(*unions: Any) -> frozenset[str]:
    """The `kind` values of the models of discriminated unions (``Annotated[A | B, ...]``)."""
    tags: set[str] = set()
    for union in unions:
        members, *_ = get_args(union)
        for model in get_args(members):
            tags.update(get_args(model.model_fields["kind"].annotation))
    return frozenset(tags)


# The `kind` tags of the lenses' discriminated unions (probes, status pages): pydantic
# puts them into error locations, but they are not keys of the document.
_UNION_TAGS = _kind_tags(*(union for lens in LENSES for union in lens.kind_unions))


class _UniqueKeyLoader(yaml.SafeLoader):
    """SafeLoader that rejects a key given twice (YAML would keep the last silently),
    a key that is a list or mapping, and nesting deeper than ``MAX_DEPTH``."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self._depth += 1
        try:
            if self._depth > MAX_DEPTH:
                mark = self.peek_event().start_mark  # type: ignore[no-untyped-call]
                raise yaml.composer.ComposerError(
                    None, None, f"nested deeper than {MAX_DEPTH} levels", mark
                )
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            if key_node.tag == "tag:yaml.org,2002:merge":
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                raise yaml.constructor.ConstructorError(
                    None,
                    None,
                    "a key must be a plain value, not a list or mapping",
                    key_node.start_mark,
                )
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(
                    None, None, f"duplicate key {key!r}", key_node.start_mark
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def _scan_values(data: Any) -> list[str]:
    """Errors for values no setting takes: NaN, infinities, huge numbers, keys that
    are not text; and a stop when aliases expand the document past ``MAX_VALUES``."""
    errors: list[str] = []
    stack: list[tuple[Any, tuple[str, ...]]] = [(data, ())]
    seen = 0
    while stack:
        node, path = stack.pop()
        seen += 1
        if seen > MAX_VALUES:
            return [f"the document expands to more than {MAX_VALUES} values (YAML aliases?)"]
        where = " -> ".join(path)
        prefix = f"{where}: " if where else ""
        if isinstance(node, float) and not math.isfinite(node):
            errors.append(f"{prefix}must be a finite number, got {node}")
        elif isinstance(node, int) and not isinstance(node, bool) and abs(node) > MAX_INTEGER:
            errors.append(f"{prefix}number too large (at most 2^53)")
        elif isinstance(node, Mapping):
            for key, value in node.items():
                if not isinstance(key, str | int) or isinstance(key, bool):
                    errors.append(f"{prefix}key {str(key)[:40]!r} must be text")
                    continue
                stack.append((value, (*path, str(key))))
        elif isinstance(node, list):
            for number, value in enumerate(node, start=1):
                stack.append((value, (*path, str(number))))
    return sorted(errors)


def parse_config(data: Any, source: str = "<config>") -> Config:
    """Validate already-parsed YAML data."""
    if data is None:
        data = {}
    if not isinstance(data, Mapping):
        raise ConfigError(source, ["the top level must be a mapping"])
    # Top-level "x-" keys hold YAML anchors for reuse (as in Compose files).
    data = {k: v for k, v in data.items() if not (isinstance(k, str) and k.startswith("x-"))}
    errors = _scan_values(data)
    if errors:
        raise ConfigError(source, errors)
    try:
        return Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(source, format_errors(exc, data, _UNION_TAGS)) from None


def check_files(config: config_types.Config, environ: Mapping[str, str]) -> list[str]:
    """Errors for files the config names that cannot be opened, each with its key path.

    A systemd credential is checked in ``$CREDENTIALS_DIRECTORY`` (which systemd gives
    ``ExecStartPre=`` as well as ``ExecStart=``).
    """
    files = FileChecks(environ)
    for service_name, service in config.services.items():
        for probe_name, probe in service.probes.items():
            if not probe.enabled:
                continue  # a disabled probe's key need not exist yet
            key = f"services -> {service_name} -> probes -> {probe_name}"
            if isinstance(probe, HttpProbe) and probe.tls_ca_file is not None:
                files.ca_file(f"{key} -> tls_ca_file", probe.tls_ca_file)
            if isinstance(probe, ChatProbeBase):
                if probe.api_key_file is not None:
                    files.readable(f"{key} -> api_key_file", probe.api_key_file)
                files.credential(f"{key} -> api_key_credential", probe.api_key_credential)
    for lens in LENSES:
        lens.check_files(config, files)
    reports = config.reports
    if reports.tokens_file is not None:
        files.readable("reports -> tokens_file", reports.tokens_file)
    files.credential("reports -> tokens_credential", reports.tokens_credential)
    if reports.hash_secret_file is not None:
        files.readable("reports -> hash_secret_file", reports.hash_secret_file)
    files.credential("reports -> hash_secret_credential", reports.hash_secret_credential)
    return files.errors


def _decode(raw: bytes) -> str:
    """UTF-8 text; ValueError naming the line of the first bad byte, or UTF-16."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        raise ValueError("the file is UTF-16 (it starts with a byte order mark): save it as UTF-8")
    if b"\0" in raw:
        line = raw[: raw.index(b"\0")].count(b"\n") + 1
        raise ValueError(f"NUL byte at line {line} (UTF-16 or binary?): save it as UTF-8 text")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        column = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        raise ValueError(
            f"not valid UTF-8 at line {line}, column {column} (byte 0x{raw[exc.start]:02x}): "
            "save it as UTF-8"
        ) from None


def load_config(path: str | Path, environ: Mapping[str, str] | None = None) -> Config:
    """Read and validate a YAML config file and the files it names; raises ConfigError.

    ``check-config`` and ``run`` (start and reload) all call this, so anything
    check-config passes, run starts.
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(source, [f"cannot read file: {exc.strerror or exc}"]) from None
    try:
        text = _decode(raw)
    except ValueError as exc:
        raise ConfigError(source, [str(exc)]) from None
    try:
        data = yaml.load(text, Loader=_UniqueKeyLoader)  # a SafeLoader
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark else ""
        raise ConfigError(source, [f"invalid YAML{where}: {exc.problem or exc.context}"]) from None
    except yaml.reader.ReaderError as exc:
        line = text.count("\n", 0, exc.position) + 1
        column = exc.position - (text.rfind("\n", 0, exc.position) + 1) + 1
        hint = " (is the file UTF-16?)" if exc.character == "\0" else ""
        raise ConfigError(
            source,
            [
                f"invalid YAML at line {line}, column {column}: control character "
                f"{ord(exc.character) if isinstance(exc.character, str) else exc.character:#04x}"
                f" is not allowed{hint}"
            ],
        ) from None
    except yaml.YAMLError as exc:
        message = " ".join(str(exc).split())  # one line per error
        raise ConfigError(source, [f"invalid YAML: {message[:300]}"]) from None
    except (ValueError, TypeError, OverflowError, RecursionError) as exc:
        # PyYAML's constructors raise these for e.g. 5,000-digit integers or odd timestamps.
        raise ConfigError(source, [f"invalid YAML value: {str(exc)[:200]}"]) from None
    config = parse_config(data, source)
    errors = check_files(config, os.environ if environ is None else environ)
    if errors:
        raise ConfigError(source, errors)
    _warn_deprecated(data, source)
    return config


def _warn_deprecated(data: Any, source: str) -> None:
    """One warning per deprecated key still in the file, naming its key path."""
    for lens in LENSES:
        for path, use in lens.deprecated_keys.items():
            node = data
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if node is not None:
                structlog.get_logger("outagewatch.config").warning(
                    "config_key_deprecated", key=" -> ".join(path), use=use, file=source
                )
