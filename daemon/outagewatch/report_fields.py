"""The one check of a report's fields, shared by the intake and ``reports import``.

Text is refused when it would not survive the way out: lone surrogates cannot be
encoded as UTF-8 (SQLite, JSON, CSV all need it), control characters (a
trailing newline included) break CSV rows and log lines, and every field has a
length limit. Messages name the field, never echo the value.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from outagewatch.config_types import Config

FIELDS = ("service", "problem", "reporter", "country", "comment")
MAX_CHARS = {"service": 128, "problem": 64, "reporter": 256, "country": 2}
_COUNTRY = re.compile(r"[A-Za-z]{2}")
# Control characters (Unicode category Cc), line and paragraph separators, surrogates.
_UNSTORABLE = re.compile("[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# Imported history may come from a machine whose clock runs a little ahead.
FUTURE_TOLERANCE = 300.0


class FieldError(ValueError):
    """A field that cannot be stored: the counted reason, the field, a message."""

    def __init__(self, reason: str, field: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason
        self.field = field
        self.message = message


@dataclass(frozen=True, slots=True)
class ReportFields:
    service: str
    problem: str
    reporter: str | None
    country: str | None
    comment: str | None


def text_problem(value: str) -> str | None:
    """Why ``value`` cannot be stored as text, or None when it can."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return None
    code = ord(found.group())
    if 0xD800 <= code <= 0xDFFF:
        return "holds a lone surrogate (not valid Unicode)"
    return f"holds a control character (U+{code:04X})"


def check_text(name: str, value: Any, max_chars: int) -> str:
    """``value`` as 1..max_chars of storable text; FieldError naming ``name`` if not."""
    if not isinstance(value, str):
        raise FieldError("invalid_field", name, f"{name} must be text")
    if not 0 < len(value) <= max_chars:
        raise FieldError("invalid_field", name, f"{name} must be 1-{max_chars} characters")
    problem = text_problem(value)
    if problem is not None:
        raise FieldError("invalid_field", name, f"{name} {problem}")
    return value


def check_fields(
    values: Mapping[str, Any], config: Config, *, reporter_required: bool
) -> ReportFields:
    """Every field of one report, checked against the config; FieldError on the first bad one.

    Absent and ``None`` are the same. Unknown keys are the caller's business
    (the JSON API refuses them; CSV columns are fixed).
    """
    required = ("service", "problem", "reporter") if reporter_required else ("service", "problem")
    for name in required:
        if values.get(name) is None:
            raise FieldError("missing_field", name, f"{name} is required")
    limits = {**MAX_CHARS, "comment": config.reports.max_comment_chars}
    checked: dict[str, str | None] = {}
    for name in FIELDS:
        value = values.get(name)
        if name == "comment" and value == "":
            value = None  # an empty comment box is no comment
        checked[name] = None if value is None else check_text(name, value, limits[name])
    service, problem = checked["service"], checked["problem"]
    assert service is not None and problem is not None
    if service not in config.services:
        raise FieldError("unknown_service", "service", "unknown service")
    if problem not in config.reports.problems:
        raise FieldError(
            "unknown_problem",
            "problem",
            f"unknown problem; one of: {', '.join(config.reports.problems)}",
        )
    country = checked["country"]
    if country is not None:
        country = check_country(country)
    return ReportFields(service, problem, checked["reporter"], country, checked["comment"])


def check_country(value: str) -> str:
    """An ISO 3166 alpha-2 shaped code, upper case; FieldError if not."""
    if not _COUNTRY.fullmatch(value):  # fullmatch: "DE\n" is not "DE"
        raise FieldError("invalid_field", "country", "country must be a 2-letter code")
    return value.upper()


def check_time(when: float, now: float) -> float:
    """A report time: finite, not before 1970, not past ``now`` + FUTURE_TOLERANCE."""
    if not math.isfinite(when):
        raise FieldError("invalid_field", "timestamp", "timestamp must be a finite number")
    if when < 0:
        raise FieldError("invalid_field", "timestamp", "timestamp is before 1970")
    if when > now + FUTURE_TOLERANCE:
        raise FieldError("invalid_field", "timestamp", "timestamp is in the future")
    return when
