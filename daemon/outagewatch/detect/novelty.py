"""Contextual nearest-neighbour novelty (in the spirit of KNN-CAD / CAD-OSE), O(W) per point.

The context of a point is the vector of the last `k` values. A bounded
reservoir keeps the last `window` contexts; the novelty of the newest context is
its distance to the nearest stored one (the `k` most recent, overlapping
contexts excluded), in units of the seen range. A bounded history of recent
nearest distances of normal points says what is typical; `ratio` is the new
distance over the largest of them, so ratio > 1 means no recently seen pattern
was this far from everything before it.

The nearest stored context is found through an index sorted by each
context's sum: |sum(a) - sum(b)| / sqrt(k) is a lower bound of the distance
between a and b (Cauchy-Schwarz), so the search walks outward from the
current sum and stops where that bound passes the best distance found. The
result is the full scan's, at a small share of its cost on most series. The
largest recent distance is kept by a monotonic queue. Neither is saved: both
are rebuilt from the contexts and distances on restore.
"""

from __future__ import annotations

import math
from bisect import bisect_left, insort
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
        self._index = _SumIndex(k)
        self._top = _SlidingMax(history)

    def ratio(self, value: float, span: float) -> tuple[float, float]:
        """(distance of the context ending with `value` / largest recent distance, distance).

        0 while the reservoir or the history is not yet full enough. Does not learn.
        """
        if len(self.values) < self.k - 1 or span <= 0:
            return 0.0, 0.0
        current = (*list(self.values)[-(self.k - 1) :], value) if self.k > 1 else (value,)
        if len(self.contexts) - self.k < self.k:
            return 0.0, 0.0
        dist = self._index.nearest(current) / span
        if 2 * len(self.distances) < (self.distances.maxlen or 0):
            return 0.0, dist
        return dist / max(self.floor, self._top.value()), dist

    def learn(self, value: float, dist: float, normal: bool) -> None:
        """Store the context ending with `value`; remember its distance if it was normal."""
        self.values.append(value)
        if len(self.values) == self.k:
            self._store(tuple(self.values))
        if normal:
            self.distances.append(dist)
            self._top.push(dist)

    def _store(self, context: tuple[float, ...]) -> None:
        """Append a context; the one `k` back becomes searchable, the oldest may leave."""
        if len(self.contexts) == self.contexts.maxlen:
            self._index.remove(self.contexts[0])
        self.contexts.append(context)
        # The k most recent contexts overlap the current one: not searched.
        if len(self.contexts) > self.k:
            self._index.add(self.contexts[-1 - self.k])

    def to_state(self) -> dict[str, Any]:
        """JSON-safe snapshot."""
        return {
            "values": list(self.values),
            "contexts": [list(c) for c in self.contexts],
            "distances": list(self.distances),
        }

    def load_state(self, state: dict[str, Any]) -> None:
        """Restore a `to_state` snapshot (the index and the running maximum are rebuilt)."""
        self.values.clear()
        self.values.extend(float(v) for v in state["values"])
        self.contexts.clear()
        self._index = _SumIndex(self.k)
        for c in state["contexts"]:
            self._store(tuple(float(v) for v in c))
        self.distances.clear()
        self._top = _SlidingMax(self.distances.maxlen or 0)
        for d in state["distances"]:
            self.distances.append(float(d))
            self._top.push(float(d))


class _SumIndex:
    """Contexts sorted by their sum, for an exact nearest-neighbour search."""

    def __init__(self, k: int) -> None:
        self.inv_sqrt_k = 1.0 / math.sqrt(k)
        self.keys: list[tuple[float, tuple[float, ...]]] = []

    def add(self, context: tuple[float, ...]) -> None:
        insort(self.keys, (sum(context), context))

    def remove(self, context: tuple[float, ...]) -> None:
        i = bisect_left(self.keys, (sum(context), context))
        if i < len(self.keys) and self.keys[i][1] == context:
            del self.keys[i]

    def nearest(self, current: tuple[float, ...]) -> float:
        """Distance from `current` to the nearest indexed context (inf if none).

        The two contexts whose sums bracket the current one give a first best
        distance; each side is then walked outward until its sum is too far.
        """
        keys = self.keys
        total = sum(current)
        start = bisect_left(keys, (total,))
        best = math.inf
        for i in (start - 1, start):
            if 0 <= i < len(keys):
                best = min(best, math.dist(keys[i][1], current))
        # Rounding of the sums: prune only clearly beyond the best distance.
        slack = 1e-9 * (abs(total) + 1.0)
        root_k = 1.0 / self.inv_sqrt_k
        dist = math.dist
        for i in range(start - 2, -1, -1):
            below, context = keys[i]
            if total - below > (best + slack) * root_k:
                break
            d = dist(context, current)
            if d < best:
                best = d
        for i in range(start + 1, len(keys)):
            above, context = keys[i]
            if above - total > (best + slack) * root_k:
                break
            d = dist(context, current)
            if d < best:
                best = d
        return best


class _SlidingMax:
    """The largest of the last `size` values pushed, in amortised O(1)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.pushed = 0
        # (push number, value), values decreasing: the front is the maximum.
        self.queue: deque[tuple[int, float]] = deque()

    def push(self, value: float) -> None:
        while self.queue and self.queue[-1][1] <= value:
            self.queue.pop()
        self.queue.append((self.pushed, value))
        self.pushed += 1
        if self.queue[0][0] <= self.pushed - 1 - self.size:
            self.queue.popleft()

    def value(self) -> float:
        """The maximum (-inf when nothing was pushed)."""
        return self.queue[0][1] if self.queue else -math.inf
