"""Contextual nearest-neighbour novelty (in the spirit of KNN-CAD / CAD-OSE), O(W) per point.

The context of a point is the vector of the last `k` values. A bounded
reservoir keeps the last `window` contexts; the novelty of the newest context is
its distance to the nearest stored one (the `k` most recent, overlapping
contexts excluded), in units of the seen range. A bounded history of recent
nearest distances of normal points says what is typical; `ratio` is the new
distance over the largest of them, so ratio > 1 means no recently seen pattern
was this far from everything before it.
"""

from __future__ import annotations

import math
from collections import deque
from typing import Any


class ContextNovelty:
    """Nearest-neighbour distance of the current context, relative to recent ones."""

    def __init__(self, k: int, window: int, history: int, floor: float) -> None:
        """Empty reservoir of `window` contexts of `k` values; `history` recent distances.

        `floor` is the smallest typical distance (share of the range), so a
        perfectly repeating series does not call every rounding difference new.
        """
        self.k = k
        self.floor = floor
        self.values: deque[float] = deque(maxlen=k)
        self.contexts: deque[tuple[float, ...]] = deque(maxlen=window)
        self.distances: deque[float] = deque(maxlen=history)

    def ratio(self, value: float, span: float) -> tuple[float, float]:
        """(distance of the context ending with `value` / largest recent distance, distance).

        0 while the reservoir or the history is not yet full enough. Does not learn.
        """
        if len(self.values) < self.k - 1 or span <= 0:
            return 0.0, 0.0
        current = (*list(self.values)[-(self.k - 1) :], value) if self.k > 1 else (value,)
        n = len(self.contexts) - self.k
        if n < self.k:
            return 0.0, 0.0
        best = math.inf
        for i, past in enumerate(self.contexts):
            if i >= n:
                break
            d = math.dist(past, current)
            if d < best:
                best = d
        dist = best / span
        if 2 * len(self.distances) < (self.distances.maxlen or 0):
            return 0.0, dist
        return dist / max(self.floor, max(self.distances)), dist

    def learn(self, value: float, dist: float, normal: bool) -> None:
        """Store the context ending with `value`; remember its distance if it was normal."""
        self.values.append(value)
        if len(self.values) == self.k:
            self.contexts.append(tuple(self.values))
        if normal:
            self.distances.append(dist)

    def to_state(self) -> dict[str, Any]:
        """JSON-safe snapshot."""
        return {
            "values": list(self.values),
            "contexts": [list(c) for c in self.contexts],
            "distances": list(self.distances),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a `to_state` snapshot."""
        self.values.clear()
        self.values.extend(float(v) for v in state["values"])
        self.contexts.clear()
        self.contexts.extend(tuple(float(v) for v in c) for c in state["contexts"])
        self.distances.clear()
        self.distances.extend(float(v) for v in state["distances"])
