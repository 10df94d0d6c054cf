"""The daemon's parts come down in reverse order of construction (one exit stack),
also when start-up fails part way."""

from __future__ import annotations

import asyncio
import socket
from pathlib import Path

import pytest

from outagewatch.app import Daemon
from outagewatch.store import StoreClosed, StoreLock
from tests.chat.test_chat_daemon import eventually


def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "outagewatch.yml"
    path.write_text(f"storage:\n  path: {tmp_path / 'store.db'}\n")
    return path


async def test_a_start_failing_at_the_web_site_releases_the_store_and_its_lock(
    tmp_path: Path,
) -> None:
    config = config_file(tmp_path)
    taken = socket.socket()
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    try:
        port = taken.getsockname()[1]
        daemon = Daemon(config, f"127.0.0.1:{port}", handle_signals=False)
        with pytest.raises(OSError):
            await asyncio.wait_for(daemon.run(), 30)
    finally:
        taken.close()
    assert daemon.running is None and not daemon.is_ready()
    # Unwound: the store is closed and its lock free again.
    lock = StoreLock(tmp_path / "store.db")
    lock.acquire()
    lock.release()


async def test_stop_tears_down_every_part_and_the_state_is_saved(tmp_path: Path) -> None:
    config = config_file(tmp_path)
    daemon = Daemon(config, "127.0.0.1:0", handle_signals=False)
    task = asyncio.create_task(daemon.run())
    await eventually(lambda: daemon.is_ready() or task.done())
    running = daemon.running
    assert running is not None and running.bound_port > 0
    daemon.stop()
    assert await asyncio.wait_for(task, 30) == 0
    assert not running.scheduler.running
    with pytest.raises(StoreClosed):
        await running.store.get_state_text("detectors")
    lock = StoreLock(tmp_path / "store.db")
    lock.acquire()
    lock.release()
