"""Everything stateful survives a restart the same way: keyed JSON in the store.

Each part (detectors, disruption states, chat budgets, the incident log, App
Store rank history) gives its state as ``{key: JSON value}`` and takes it back.
The keeper loads every part at start-up (after the store opens, before the
scheduler starts) and saves them every ``storage.state_save_interval`` and at
shutdown (before the store closes). Only keys whose value changed since the
last save are written; keys a part no longer has are deleted.

Damage stays local: a key that cannot be read (not JSON, NaN or Infinity, a
shape the part rejects, or anything the part raises on) is logged as
``state_restore_failed``, counted in ``outagewatch_state_restore_failures_total``
by part, and that key starts empty; the rest of the part and every other part
load as usual, and the next save overwrites or deletes the bad row.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog
from prometheus_client.core import CounterMetricFamily
from prometheus_client.registry import Collector

from outagewatch.store import Store, StoreError, decode_state


@dataclass(frozen=True)
class StatePart:
    """One stateful part: its store namespace and how to save and restore it.

    ``restore`` gets every stored key of the namespace and returns the keys it
    could not use (logged, then left to be overwritten by the next save).
    """

    namespace: str
    save: Callable[[], Mapping[str, Any]]
    restore: Callable[[Mapping[str, Any]], Sequence[str]]


def single(
    value: Callable[[], Any], load: Callable[[Any], None]
) -> tuple[Callable[[], Mapping[str, Any]], Callable[[Mapping[str, Any]], Sequence[str]]]:
    """Adapt a part whose whole state is one value (kept under the key ``state``)."""

    def save() -> Mapping[str, Any]:
        return {"state": value()}

    def restore(stored: Mapping[str, Any]) -> Sequence[str]:
        if "state" not in stored:
            return []
        try:
            load(stored["state"])
        except (ValueError, TypeError, KeyError):
            return ["state"]
        return []

    return save, restore


class StateKeeper:
    """Loads and saves every ``StatePart`` through the store's keyed JSON state."""

    def __init__(self, store: Store, parts: Sequence[StatePart]) -> None:
        self.store = store
        self.parts = list(parts)
        self.log = structlog.get_logger("outagewatch.persistence")
        self._saved: dict[tuple[str, str], str] = {}
        # Keys (or whole parts) that could not be restored since start, by part.
        self.failures: Counter[str] = Counter()

    def record_failure(self, part: str, keys: Sequence[str], reason: str) -> None:
        """Log and count state that could not be read (and so starts empty)."""
        self.failures[part] += max(1, len(keys))
        self.log.error("state_restore_failed", part=part, keys=sorted(keys), reason=reason)

    async def load(self) -> None:
        """Restore every part from the store, key by key; what cannot be read starts empty."""
        for part in self.parts:
            self.failures.setdefault(part.namespace, 0)
        for part in self.parts:
            try:
                stored = await self.store.get_state_text(part.namespace)
            except Exception as exc:  # a damaged file: the whole part starts empty
                self.record_failure(part.namespace, [], f"{type(exc).__name__}: {exc}"[:300])
                continue
            reasons: dict[str, str] = {}
            for key, text in stored.items():
                self._saved[(part.namespace, key)] = text
                try:
                    value = decode_state(text)
                except ValueError as exc:
                    reasons[key] = f"not JSON: {exc}"[:200]
                    continue
                self._saved[(part.namespace, key)] = _text(value)
                try:
                    rejected = part.restore({key: value})
                except Exception as exc:  # whatever a part raises, the daemon starts
                    reasons[key] = f"{type(exc).__name__}: {exc}"[:200]
                    continue
                if rejected:
                    reasons[key] = "malformed"
            if reasons:
                self.record_failure(
                    part.namespace,
                    list(reasons),
                    "; ".join(f"{k}: {v}" for k, v in sorted(reasons.items())),
                )
            self.log.info(
                "state_restored", namespace=part.namespace, keys=len(stored) - len(reasons)
            )

    async def save(self) -> int:
        """Write what changed since the last save; returns how many keys were written.

        The writes go out together, so the store commits them in one transaction.
        """
        writes: list[Awaitable[None]] = []
        done: dict[tuple[str, str], str | None] = {}
        for part in self.parts:
            current = dict(part.save())
            for key, value in current.items():
                text = _text(value)
                if self._saved.get((part.namespace, key)) != text:
                    writes.append(self.store.put_state(part.namespace, key, value))
                    done[(part.namespace, key)] = text
            for namespace, key in [k for k in self._saved if k[0] == part.namespace]:
                if key not in current:
                    writes.append(self.store.delete_state(namespace, key))
                    done[(namespace, key)] = None
        await asyncio.gather(*writes)
        for saved_key, saved in done.items():
            if saved is None:
                del self._saved[saved_key]
            else:
                self._saved[saved_key] = saved
        return len(writes)

    async def save_logged(self) -> None:
        """``save``, logging a store failure instead of raising (the next save retries)."""
        try:
            await self.save()
        except StoreError as exc:
            self.log.error("state_save_failed", error=str(exc))

    async def run(self, interval: Callable[[], float]) -> None:
        """Save every ``interval()`` seconds (read each time: a reload may change it)."""
        while True:
            await asyncio.sleep(interval())
            await self.save_logged()


def _text(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


class StateRestoreCollector(Collector):
    """``outagewatch_state_restore_failures_total{part}``: state that started empty."""

    def __init__(self, keeper: StateKeeper) -> None:
        self.keeper = keeper

    def collect(self) -> Iterator[CounterMetricFamily]:
        family = CounterMetricFamily(
            "outagewatch_state_restore_failures",
            "Stored state keys that could not be read at start and started empty, by part.",
            labels=["part"],
        )
        for part, count in sorted(self.keeper.failures.items()):
            family.add_metric([part], count)
        yield family
