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
current sum and stops where that bound passes the best distance found; within
that run a context is dropped once its partial sum of squares passes the best
distance. The result is the full scan's, at a small share of its cost. The
largest recent distance is kept by a monotonic queue. Neither is saved: both
are rebuilt from the contexts and distances on restore.
"""

from __future__ import annotations

import math
from bisect import bisect_left, bisect_right
from collections import deque
from typing import Any, Final

# Contexts each side of the current sum the search computes first.
_NEAR: Final = 8


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
    """Contexts sorted by their sum, for an exact nearest-neighbour search.

    Three parallel lists (sums, numbers, contexts), ordered by sum.
    """

    def __init__(self, k: int) -> None:
        self.root_k = math.sqrt(k)
        self.sums: list[float] = []
        self.seqs: list[int] = []
        self.contexts: list[tuple[float, ...]] = []

    def add(self, seq: int, context: tuple[float, ...]) -> None:
        total = sum(context)
        i = bisect_right(self.sums, total)
        self.sums.insert(i, total)
        self.seqs.insert(i, seq)
        self.contexts.insert(i, context)

    def remove(self, seq: int, context: tuple[float, ...]) -> None:
        sums, seqs = self.sums, self.seqs
        total = sum(context)
        i = bisect_left(sums, total)
        while i < len(sums) and sums[i] == total:
            if seqs[i] == seq:
                del sums[i], seqs[i], self.contexts[i]
                return
            i += 1

    def nearest(
        self, current: tuple[float, ...], hint_seq: int, hint: tuple[float, ...] | None
    ) -> tuple[float, int]:
        """(distance from `current` to the nearest indexed context (inf if none), its number).

        `hint` (an indexed context numbered `hint_seq`) and the `_NEAR`
        contexts each side of the current sum give a first best distance; only
        the contexts whose sum is within best * sqrt(k) of the current sum can
        be nearer. The result is the full scan's whatever the hint: only the
        work depends on it.
        """
        sums = self.sums
        total = sum(current)
        start = bisect_left(sums, total)
        dist = math.dist
        best, best_seq = (dist(hint, current), hint_seq) if hint is not None else (math.inf, -1)
        # First the contexts nearest by sum, then the rest of the run the best
        # distance so far leaves.
        near_lo, near_hi = max(0, start - _NEAR), min(len(sums), start + _NEAR)
        best, best_seq = self._scan(current, near_lo, near_hi, best, best_seq)
        # Rounding of the sums: prune only clearly beyond the best distance.
        limit = (best + 1e-9 * (abs(total) + 1.0)) * self.root_k
        lo = bisect_left(sums, total - limit, 0, near_lo)
        hi = bisect_right(sums, total + limit, near_hi)
        best, best_seq = self._scan(current, lo, near_lo, best, best_seq)
        return self._scan(current, near_hi, hi, best, best_seq)

    def _scan(
        self, current: tuple[float, ...], lo: int, hi: int, best: float, best_seq: int
    ) -> tuple[float, int]:
        """The nearer of (best, best_seq) and the contexts lo:hi by sum."""
        contexts = self.contexts
        # Early abandon: once the partial sum of squares passes best² (with room for
        # rounding) the context cannot be nearer. Newest values first: they differ
        # most. Survivors get math.dist, so the answer is the full scan's.
        bound = best * best * (1.0 + 1e-9)
        last = len(current) - 1
        newest = current[last]
        for i in range(lo, hi):
            context = contexts[i]
            diff = context[last] - newest
            total = diff * diff
            j = last - 1
            while j >= 0 and total <= bound:
                diff = context[j] - current[j]
                total += diff * diff
                j -= 1
            if total <= bound:
                d = math.dist(context, current)
                if d < best:
                    best, best_seq = d, self.seqs[i]
                    bound = best * best * (1.0 + 1e-9)
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
