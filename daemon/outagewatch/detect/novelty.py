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
        # Contexts ever stored (the newest is number stored - 1), and the number
        # of the one the search tries first.
        self.stored = 0
        self._hint_seq = -1

    def ratio(self, value: float, span: float) -> tuple[float, float]:
        """(distance of the context ending with `value` / largest recent distance, distance).

        0 while the reservoir or the history is not yet full enough. Does not learn.
        """
        if len(self.values) < self.k - 1 or span <= 0:
            return 0.0, 0.0
        current = (*list(self.values)[-(self.k - 1) :], value) if self.k > 1 else (value,)
        if len(self.contexts) - self.k < self.k:
            return 0.0, 0.0
        nearest, seq = self._index.nearest(current, self._hint_seq, self._hint())
        # The context after this one's nearest is the likeliest nearest of the next.
        self._hint_seq = seq + 1
        dist = nearest / span
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

    def _hint(self) -> tuple[float, ...] | None:
        """The context numbered `_hint_seq` if it is searchable (not among the k newest)."""
        first = self.stored - len(self.contexts)
        if first <= self._hint_seq < self.stored - self.k:
            return self.contexts[self._hint_seq - first]
        return None

    def _store(self, context: tuple[float, ...]) -> None:
        """Append a context; the one `k` back becomes searchable, the oldest may leave."""
        contexts = self.contexts
        if len(contexts) == contexts.maxlen:
            self._index.remove(self.stored - len(contexts), contexts[0])
        contexts.append(context)
        self.stored += 1
        # The k most recent contexts overlap the current one: not searched.
        if len(contexts) > self.k:
            self._index.add(self.stored - 1 - self.k, contexts[-1 - self.k])

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
        self.stored = 0
        self._hint_seq = -1
        for c in state["contexts"]:
            self._store(tuple(float(v) for v in c))
        self.distances.clear()
        self._top = _SlidingMax(self.distances.maxlen or 0)
        for d in state["distances"]:
            self.distances.append(float(d))
            self._top.push(float(d))


class _SumIndex:
    """Contexts sorted by their sum (then their number), for an exact nearest-neighbour search."""

    def __init__(self, k: int) -> None:
        self.root_k = math.sqrt(k)
        self.keys: list[tuple[float, int, tuple[float, ...]]] = []

    def add(self, seq: int, context: tuple[float, ...]) -> None:
        insort(self.keys, (sum(context), seq, context))

    def remove(self, seq: int, context: tuple[float, ...]) -> None:
        i = bisect_left(self.keys, (sum(context), seq))
        if i < len(self.keys) and self.keys[i][1] == seq:
            del self.keys[i]

    def nearest(
        self, current: tuple[float, ...], hint_seq: int, hint: tuple[float, ...] | None
    ) -> tuple[float, int]:
        """(distance from `current` to the nearest indexed context (inf if none), its number).

        `hint`, an indexed context numbered `hint_seq`, gives a first best
        distance; each side of the current sum is then walked outward until its
        sum is too far for a context there to be nearer. The distance is the
        full scan's whatever the hint: only the work depends on it.
        """
        keys = self.keys
        total = sum(current)
        start = bisect_left(keys, (total,))
        dist = math.dist
        best, best_seq = (dist(hint, current), hint_seq) if hint is not None else (math.inf, -1)
        # Rounding of the sums: prune only clearly beyond the best distance.
        slack = 1e-9 * (abs(total) + 1.0)
        root_k = self.root_k
        limit = (best + slack) * root_k
        for i in range(start - 1, -1, -1):
            below, seq, context = keys[i]
            if total - below > limit:
                break
            d = dist(context, current)
            if d < best:
                best, best_seq, limit = d, seq, (d + slack) * root_k
        for i in range(start, len(keys)):
            above, seq, context = keys[i]
            if above - total > limit:
                break
            d = dist(context, current)
            if d < best:
                best, best_seq, limit = d, seq, (d + slack) * root_k
        return best, best_seq


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
