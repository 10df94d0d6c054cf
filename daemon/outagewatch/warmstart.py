"""Warm start from the store: stored reports replayed into the report detectors.

The store-reading side of ``detect/replay.py``: it reads ``Store`` rows and runs
the pure replay in a thread; detect/ itself does no I/O.
"""

from __future__ import annotations

import asyncio
import math
import sqlite3
from collections.abc import Iterable, Iterator
from typing import Any

import structlog

from outagewatch.clock import Clock
from outagewatch.detect.replay import SIGNAL, adopt, bucket_start, needs_replay, replay
from outagewatch.detect.signals import SignalDetectors
from outagewatch.store import Store


def stored_reports(
    rows: Iterable[tuple[int, Any, Any, Any, Any]], services: Iterable[str]
) -> Iterator[tuple[float, str]]:
    """(time, service) of ``Store.iter_reports`` rows for ``services``; other rows skipped.

    Stored rows are unchecked (an older version or another tool may have written
    them): a time that is not a finite number is left out.
    """
    keep = set(services)
    for _id, when, service, _problem, _country in rows:
        if service not in keep or isinstance(when, bool) or not isinstance(when, int | float):
            continue
        if math.isfinite(when):
            yield float(when), service


async def warm_start(
    store: Store,
    signals: SignalDetectors,
    clock: Clock,
    log: structlog.typing.FilteringBoundLogger,
) -> list[str]:
    """Replay stored reports into report detectors missing or younger than the history.

    Returns the services whose detectors were replaced. The replay runs in a
    thread; the catch-up to the live bucket and the swap run here, on the loop,
    with nothing awaited between them (detect/replay.py).
    """
    try:
        firsts = await asyncio.to_thread(store.first_reports)
    except sqlite3.Error as exc:  # a damaged table: the daemon runs cold
        log.error("detectors_replay_failed", error=str(exc)[:300])
        return []
    services = [
        s
        for s in sorted(signals.services)
        if needs_replay(signals.detectors.get((s, SIGNAL)), firsts.get(s))
    ]
    if not services:
        return []
    began = clock.monotonic()
    settings, until = signals.settings, bucket_start(clock.time())
    try:
        done = await asyncio.to_thread(
            lambda: replay(
                settings, services, stored_reports(store.iter_reports(), services), until
            )
        )
        now = clock.time()
        signals.close(now)
        done.feed(stored_reports(store.iter_reports(done.until), services), bucket_start(now))
    except Exception as exc:  # whatever the replay raises, the daemon runs cold
        log.error("detectors_replay_failed", error=f"{type(exc).__name__}: {exc}"[:300])
        return []
    adopted = adopt(signals, done, older_only=True)
    if adopted:
        log.info(
            "detectors_replayed",
            services=adopted,
            reports=done.reports,
            seconds=round(clock.monotonic() - began, 3),
        )
    return adopted
