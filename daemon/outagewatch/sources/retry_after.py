"""``Retry-After`` (RFC 9110 §10.2.3) read defensively: one parser for every source.

The header is either delay-seconds (ASCII digits) or an HTTP date. Servers
also send decimals (``1.5``), which are taken; anything else (``-1``, ``1e9``,
non-ASCII digits such as ``²`` that ``str.isdigit`` accepts) is no answer,
never an exception. Waits are capped at a year: a cap on back-off belongs to
the caller, this only keeps the number finite.
"""

from __future__ import annotations

import re
from datetime import UTC
from email.utils import parsedate_to_datetime

_SECONDS = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,9})?", re.ASCII)
_LONGEST = 365 * 86400.0


def retry_after_seconds(value: str | None, now: float) -> float | None:
    """Seconds from ``now`` a ``Retry-After`` value asks to wait; None when unreadable."""
    if not value:
        return None
    text = value.strip()
    if len(text) > 64:  # no valid value is this long; do not feed it to the date parser
        return None
    if _SECONDS.fullmatch(text):
        return min(float(text), _LONGEST)
    try:
        when = parsedate_to_datetime(text)
        if when.tzinfo is None:  # "-0000": a UTC time from a source that does not say
            when = when.replace(tzinfo=UTC)
        seconds = when.timestamp() - now
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    return min(max(0.0, seconds), _LONGEST)
