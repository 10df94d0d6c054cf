"""JSON bodies of status pages and chart feeds, decoded without stalling the event loop.

Run in a worker thread, ``json.loads`` still holds the GIL from start to end:
an 8 MB body of empty arrays stalled the loop 0.65 s here. Its cost follows
the number of values, so a body is first counted at C speed (an upper bound:
``,`` ``:`` ``[`` ``{``) and then

- up to ``FAST_VALUES`` (200,000, about 50 ms in the worst shape measured):
  ``json.loads``;
- up to the caller's ``max_values``: the standard library's pure-Python
  scanner, which lets the loop run between values (about 3x slower; a 4 MB
  Google history took 0.22 s with the loop never held past 15 ms);
- beyond: ``JsonTooLarge``, before any parsing.

Nesting past the interpreter's recursion limit and numbers past its
4300-digit limit raise ``ValueError``, like malformed text.
"""

from __future__ import annotations

import json
import json.scanner
from typing import Any

FAST_VALUES = 200_000


class JsonTooLarge(ValueError):
    """More values than the caller allows: refused before parsing."""


def value_bound(body: bytes) -> int:
    """At least the number of values in a JSON text (delimiters inside strings count too)."""
    return sum(body.count(mark) for mark in (b",", b":", b"[", b"{")) + 1


def loads(body: bytes, max_values: int) -> Any:
    """Decode a JSON body, refusing one of more than ``max_values`` values."""
    values = value_bound(body)
    if values > max_values:
        raise JsonTooLarge(f"up to {values} JSON values, more than {max_values}")
    try:
        if values <= FAST_VALUES:
            return json.loads(body)
        decoder = json.JSONDecoder()
        # Undocumented but long-standing: the scanner json.decoder falls back to without _json.
        decoder.scan_once = json.scanner.py_make_scanner(decoder)  # type: ignore[attr-defined]
        return decoder.decode(body.decode(json.detect_encoding(body)))
    except RecursionError:
        raise ValueError("JSON nested too deep") from None
