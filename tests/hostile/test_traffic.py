"""Hostile Prometheus answers: whatever JSON comes back, the traffic source yields a
finite value or fails the run with one of its named reasons, never anything else."""

from __future__ import annotations

import math
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from outagewatch.lenses.traffic.source import FAILURE_REASONS, parse_query_answer
from outagewatch.sources.errors import SourceError

scalars = st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=8)
json_values = st.recursive(
    scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4)
    ),
    max_leaves=20,
)
sample_values = st.sampled_from(["1", "NaN", "+Inf", "-Inf", "1e400", "x", "", "0x10"]) | st.text(
    max_size=6
)
series = st.fixed_dictionaries(
    {"metric": st.just({}), "value": st.tuples(st.floats(), sample_values).map(list) | json_values}
)
answers = st.fixed_dictionaries(
    {
        "status": st.sampled_from(["success", "error", "x"]),
        "data": st.fixed_dictionaries(
            {
                "resultType": st.sampled_from(["vector", "scalar", "matrix", "string"]),
                "result": st.lists(series, max_size=4) | json_values,
            }
        )
        | json_values,
    }
)


@settings(derandomize=True, max_examples=200, deadline=None)
@given(answers | json_values, st.integers(min_value=1, max_value=3))
def test_any_answer_is_a_finite_value_or_a_named_failure(document: Any, max_series: int) -> None:
    try:
        value, count = parse_query_answer(document, max_series)
    except SourceError as exc:
        assert exc.reason in FAILURE_REASONS
        assert len(exc.detail) < 400
        return
    assert math.isfinite(value)
    assert 1 <= count <= max_series
