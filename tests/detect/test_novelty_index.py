"""The novelty's indexed nearest-context search and running maximum equal a full scan."""

from __future__ import annotations

import math
from collections import deque

from hypothesis import given, settings
from hypothesis import strategies as st

from outagewatch.detect.novelty import ContextNovelty

values = st.lists(
    st.one_of(
        st.floats(-1e6, 1e6, allow_nan=False),
        st.integers(-3, 3).map(float),  # many ties and repeats
    ),
    min_size=1,
    max_size=400,
)


def full_scan(contexts: deque[tuple[float, ...]], k: int, current: tuple[float, ...]) -> float:
    """What the search replaced: every stored context but the k most recent."""
    eligible = list(contexts)[: len(contexts) - k]
    return min((math.dist(c, current) for c in eligible), default=math.inf)


@settings(derandomize=True, max_examples=150, deadline=None)
@given(series=values, k=st.integers(1, 6), window=st.integers(8, 60))
def test_indexed_search_is_the_full_scan(series: list[float], k: int, window: int) -> None:
    novelty = ContextNovelty(k, window, 10, 0.0)
    for value in series:
        if len(novelty.values) >= k - 1 and len(novelty.contexts) - k >= k:
            current = (*list(novelty.values)[len(novelty.values) - (k - 1) :], value)
            current = current[-k:]
            _, dist = novelty.ratio(value, 1.0)
            assert dist == full_scan(novelty.contexts, k, current)
        novelty.learn(value, abs(value), normal=value >= 0)
        assert novelty._top.value() == max(novelty.distances, default=-math.inf)


@settings(derandomize=True, max_examples=30, deadline=None)
@given(series=values)
def test_a_restored_novelty_searches_as_the_original(series: list[float]) -> None:
    novelty = ContextNovelty(3, 40, 20, 0.0)
    for value in series:
        novelty.learn(value, abs(value), normal=True)
    restored = ContextNovelty(3, 40, 20, 0.0)
    restored.load_state(novelty.to_state())
    for probe in (0.0, 1.5, -1e5):
        assert restored.ratio(probe, 2.0) == novelty.ratio(probe, 2.0)
