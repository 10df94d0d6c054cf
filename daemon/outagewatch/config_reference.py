"""Write docs/configuration.md from the config models: ``python -m outagewatch.config_reference``.

Every key with its type, default and description, one section per model, the
probe and status-page kinds each in their own section. The page is committed;
tests/docs/test_configuration_reference.py fails when it differs from this output.
"""

from __future__ import annotations

import argparse
import sys
import types
import typing
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal, Union

import annotated_types
from pydantic import BaseModel, BeforeValidator
from pydantic.fields import FieldInfo
from pydantic_core import PydanticUndefined

from outagewatch.config import Config, parse_duration

REGENERATE = "python -m outagewatch.config_reference"

_INTRO = f"""\
# Configuration reference

<!-- Generated from daemon/outagewatch/config.py by `{REGENERATE}`; do not edit. -->

Every key of the YAML config, its type, default and meaning. Unknown keys are
errors; `outagewatch check-config --config.file FILE` validates a file and names
the key path of each problem. Durations are a number and a unit: `250ms`, `30s`,
`5m`, `1h`, `1d` (or `1h30m`). Names (service, probe, status page and app keys)
are lowercase letters, digits, `-` and `_`; they become label values. Top-level
keys starting with `x-` are ignored: use them to hold YAML anchors.
[`deploy/config/example.yml`](../deploy/config/example.yml) uses every key.

Secrets never appear in the config, only where to read them: a systemd
credential name (`api_key_credential`, `tokens_credential`,
`hash_secret_credential`, read from `$CREDENTIALS_DIRECTORY`) or a file path
(`api_key_file`, `tokens_file`, `hash_secret_file`).
"""


class MissingDescription(Exception):
    """A config field without a description: the reference would have a hole."""


@dataclass(frozen=True)
class Section:
    """One model documented at one key path."""

    path: str
    model: type[BaseModel]
    kind: str | None = None  # the discriminator value, for a union member

    @property
    def title(self) -> str:
        return f"`{self.path}` (kind `{self.kind}`)" if self.kind else f"`{self.path}`"

    @property
    def anchor(self) -> str:
        text = self.title.lower()
        return "".join(c for c in text if c.isalnum() or c in " -_").replace(" ", "-")


def _unwrap(annotation: Any) -> tuple[Any, list[Any]]:
    """The bare type and the metadata of an ``Annotated`` (nested ones flattened)."""
    metadata: list[Any] = []
    while typing.get_origin(annotation) is Annotated:
        args = typing.get_args(annotation)
        annotation, metadata = args[0], [*args[1:], *metadata]
    # A Field() inside Annotated carries its constraints in its own metadata.
    flat: list[Any] = []
    for item in metadata:
        flat.append(item)
        if isinstance(item, FieldInfo):
            flat.extend(item.metadata)
    return annotation, flat


def _is_duration(metadata: Sequence[Any]) -> bool:
    return any(isinstance(m, BeforeValidator) and m.func is parse_duration for m in metadata)


def _models_in(annotation: Any, tag: str | None = None) -> list[tuple[type[BaseModel], str | None]]:
    """The models an annotation holds, in a list, a map or a union, each with the
    discriminator key of the union it is a member of."""
    annotation, metadata = _unwrap(annotation)
    for item in metadata:
        if isinstance(item, FieldInfo) and isinstance(item.discriminator, str):
            tag = item.discriminator
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return [(annotation, tag)]
    found: list[tuple[type[BaseModel], str | None]] = []
    for arg in typing.get_args(annotation):
        found.extend(_models_in(arg, tag))
    return found


def _bounds(metadata: Sequence[Any]) -> str:
    parts = []
    for item in metadata:
        for attr, sign in (("ge", "≥"), ("gt", ">"), ("le", "≤"), ("lt", "<")):
            value = getattr(item, attr, None)
            if isinstance(item, annotated_types.BaseMetadata) and value is not None:
                parts.append(f"{sign} {value}")
        if isinstance(item, annotated_types.MinLen) and item.min_length:
            parts.append(f"at least {item.min_length}")
        pattern = getattr(item, "pattern", None)
        if isinstance(pattern, str) and pattern.startswith("^[a-z0-9]"):
            return ""  # a name: its own type word says it
    return ", ".join(parts)


class _Namer:
    """Type words for annotations; links nested models to their sections."""

    def __init__(self, anchors: dict[type[BaseModel], str]) -> None:
        self.anchors = anchors

    def __call__(self, annotation: Any, metadata: Sequence[Any] = ()) -> str:
        annotation, inner = _unwrap(annotation)
        metadata = [*metadata, *inner]
        if _is_duration(metadata):
            return "duration"
        if any(getattr(m, "func", None) is not None and "url" in m.func.__name__ for m in metadata):
            return "URL"
        if any(getattr(m, "pattern", None) == r"^[a-z0-9][a-z0-9_-]{0,62}$" for m in metadata):
            return "name"
        origin = typing.get_origin(annotation)
        args = typing.get_args(annotation)
        if origin is Literal:
            return " \\| ".join(f"`{a}`" for a in args)
        if origin in (Union, types.UnionType):
            present = [a for a in args if a is not type(None)]
            words = " or ".join(self(a) for a in present)
            return f"{words} or null" if len(present) < len(args) else words
        if origin in (list, tuple):
            return f"list of {self(args[0])}"
        if origin is dict:
            return f"map of {self(args[0])} to {self(args[1])}"
        if isinstance(annotation, type) and issubclass(annotation, BaseModel):
            anchor = self.anchors.get(annotation)
            return f"[{annotation.__name__}](#{anchor})" if anchor else annotation.__name__
        return {
            str: "string",
            int: "integer",
            float: "number",
            bool: "boolean",
            Path: "path",
        }.get(annotation, getattr(annotation, "__name__", str(annotation)))


def _duration_text(seconds: float) -> str:
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if seconds >= size and seconds % size == 0:
            return f"{int(seconds // size)}{unit}"
    return f"{int(seconds * 1000)}ms" if seconds < 1 else f"{seconds:g}s"


def _value(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, BaseModel):
        fields = value.model_dump(exclude_defaults=True, mode="json")
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in fields.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k}: {_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _default(field: FieldInfo, metadata: Sequence[Any]) -> str:
    if field.is_required():
        return "required"
    factory = field.default_factory
    value = factory() if factory is not None else field.default  # type: ignore[call-arg]
    if value is PydanticUndefined:
        return "required"
    if isinstance(value, BaseModel) and not value.model_dump(exclude_defaults=True):
        return "(its defaults)"
    if _is_duration(metadata) and isinstance(value, int | float):
        return f"`{_duration_text(float(value))}`"
    if value in ({}, []):
        return "empty"
    return f"`{_value(value)}`"


def _child_path(path: str, key: str, annotation: Any) -> str:
    """Where a nested model sits: ``services.<service>`` for a map, ``charts[]`` for a list."""
    bare, _ = _unwrap(annotation)
    origin = typing.get_origin(bare)
    if origin in (Union, types.UnionType):
        args = [a for a in typing.get_args(bare) if a is not type(None)]
        if len(args) == 1:
            return _child_path(path, key, args[0])
    prefix = f"{path}.{key}" if path else key
    if origin is dict:
        placeholder = {"services": "service", "probes": "probe", "status_pages": "page"}
        return f"{prefix}.<{placeholder.get(key, 'name')}>"
    if origin in (list, tuple):
        return f"{prefix}[]"
    return prefix


def sections(model: type[BaseModel] = Config, path: str = "") -> Iterator[Section]:
    """Every model under ``model``, depth first, each at its key path."""
    yield Section(path or "(top level)", model)
    for key, field in model.model_fields.items():
        annotation = field.rebuild_annotation()
        child_path = _child_path(path, key, annotation)
        for child, tag in _models_in(annotation):
            if tag is None:
                yield from sections(child, child_path)
                continue
            kind = typing.get_args(child.model_fields[tag].annotation)[0]
            for section in sections(child, child_path):
                if section.model is child:
                    section = Section(section.path, child, kind)
                yield section


def render(model: type[BaseModel] = Config) -> str:
    """The whole reference page (of the daemon's config unless told another model)."""
    # A model met twice at one path (a chat probe's budget, under each chat kind) once.
    all_sections = list({(s.path, s.model): s for s in sections(model)}.values())
    anchors: dict[type[BaseModel], str] = {}
    for section in all_sections:
        anchors.setdefault(section.model, section.anchor)
    name_of = _Namer(anchors)
    out = [_INTRO]
    out.append("## Contents\n")
    for section in all_sections:
        out.append(f"- [{section.title}](#{section.anchor})")
    out.append("")
    for section in all_sections:
        model = section.model
        out.append(f"## {section.title}\n")
        doc = " ".join((model.__doc__ or "").split("\n\n")[0].split())
        if doc:
            out.append(f"{doc}\n")
        out.append("| key | type | default | description |")
        out.append("|---|---|---|---|")
        for key, field in model.model_fields.items():
            if not field.description:
                raise MissingDescription(
                    f"{model.__name__}.{key} ({section.path}) has no description"
                )
            annotation = field.rebuild_annotation()
            _, metadata = _unwrap(annotation)
            type_text = name_of(annotation)
            bounds = _bounds(metadata)
            if bounds:
                type_text = f"{type_text}, {bounds}"
            description = " ".join(field.description.split()).replace("|", "\\|")
            out.append(f"| `{key}` | {type_text} | {_default(field, metadata)} | {description} |")
        out.append("")
    return "\n".join(out)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m outagewatch.config_reference",
        description="Write the configuration reference (docs/configuration.md) "
        "from the config models.",
    )
    parser.add_argument(
        "-o",
        "--output",
        metavar="FILE",
        help="write the page here (default: standard output)",
    )
    args = parser.parse_args(argv)
    try:
        page = render()
    except MissingDescription as exc:
        print(f"config_reference: {exc}", file=sys.stderr)
        return 1
    if args.output is None:
        sys.stdout.write(page)
    else:
        Path(args.output).write_text(page, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
