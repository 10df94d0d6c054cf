"""Junk under a lens's own config section (assembled into the schema from the registry):
every error names a key path of the document, never a union tag, and nothing else breaks."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from outagewatch.config import ConfigError, parse_config

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**40), 2**40),
    st.floats(allow_nan=False, allow_infinity=False),
    st.sampled_from(["", "10s", "0s", "http://127.0.0.1:9090", "dns", "http", "prometheus", "x"]),
)
_KEYS = st.sampled_from(
    ["kind", "url", "query", "host", "interval", "timeout", "auth", "enabled", "controls", "x"]
)
_JUNK = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(_KEYS, inner, max_size=4)),
    max_leaves=12,
)


def _paths(node: Any, prefix: tuple[str, ...] = ()) -> set[str]:
    """Every key path of the document, as the errors spell them."""
    out = {" -> ".join(prefix)} if prefix else set()
    if isinstance(node, dict):
        for key, value in node.items():
            out |= _paths(value, (*prefix, str(key)))
    elif isinstance(node, list):
        for number, value in enumerate(node, start=1):
            out |= _paths(value, (*prefix, str(number)))
    return out


def _check(document: dict[str, Any]) -> None:
    try:
        parse_config(document)
    except ConfigError as exc:
        known = _paths(document)
        for error in exc.errors:
            path = error.split(": ", 1)[0]
            # A missing key is named under its (existing) parent.
            parent = path.rsplit(" -> ", 1)[0]
            assert path in known or parent in known, error


@settings(derandomize=True, max_examples=300, deadline=None)
@given(queries=st.dictionaries(st.sampled_from(["requests", "errors", "Bad!"]), _JUNK, max_size=3))
def test_junk_traffic_queries_name_their_key_paths(queries: dict[str, Any]) -> None:
    _check({"services": {"claude": {"traffic": queries}}})


@settings(derandomize=True, max_examples=300, deadline=None)
@given(vantage=_JUNK)
def test_junk_vantage_section_names_its_key_paths(vantage: Any) -> None:
    _check({"vantage": vantage})


def test_a_dns_control_error_path_has_no_union_tag() -> None:
    document = {"vantage": {"controls": {"resolver": {"kind": "dns", "host": "bad host"}}}}
    try:
        parse_config(document)
    except ConfigError as exc:
        assert exc.errors[0].startswith("vantage -> controls -> resolver -> host: ")
    else:
        raise AssertionError("a host with a space was accepted")
