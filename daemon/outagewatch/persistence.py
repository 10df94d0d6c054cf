"""Everything stateful survives a restart the same way: keyed JSON in the store.

Each part (detectors, disruption states, chat budgets, the incident log, App
Store rank history) gives its state as ``{key: JSON value}`` and takes it back.
The keeper loads every part at start-up (after the store opens, before the
scheduler starts) and saves them every ``storage.state_save_interval`` and at
shutdown (before the store closes). Only keys whose value changed since the
last save are written; keys a part no longer has are deleted.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import structlog

from outagewatch.store import Store, StoreError


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

    async def load(self) -> None:
        """Restore every part from the store; a part that cannot be read starts empty."""
        for part in self.parts:
            stored = await self.store.get_state(part.namespace)
            for key, value in stored.items():
                self._saved[(part.namespace, key)] = _text(value)
            bad = part.restore(stored)
            if bad:
                self.log.error("state_restore_failed", namespace=part.namespace, keys=sorted(bad))
            self.log.info("state_restored", namespace=part.namespace, keys=len(stored) - len(bad))

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
