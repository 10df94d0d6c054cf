"""``outagewatch demo``: the real daemon against the simulated world, on loopback.

The demo writes a config and a tokens file into a temporary directory, seeds
four weeks of ordinary report history into a fresh store, starts the world
(``world.py``) and the daemon (``app.Daemon``, its normal code paths) in one
event loop, posts a stream of user reports to the daemon's own API, and
narrates the phases of the seed day as they begin.

Demo time runs ``scale`` times faster than the wall clock once the daemon is
ready: the daemon gets a clock whose ``time()`` is demo time (timestamps of
probes, reports and status readings) and whose ``monotonic()`` is real
(measured durations). Schedules stay in wall seconds: the config's short
intervals are chosen for the speed.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

import aiohttp
import yaml
from aiohttp import web

from outagewatch.app import Daemon
from outagewatch.demo import timeline
from outagewatch.demo.world import CHATGPT_APP_ID, CLAUDE_APP_ID, DEMO_API_KEY, World
from outagewatch.lenses.probe import ProbeLens
from outagewatch.observations import Report
from outagewatch.store import Store

SERVICES = ("claude", "chatgpt")
DEMO_TOKEN = "demo-reports-token"
HISTORY_WEEKS = 4
REPORT_TICK = 0.5  # wall seconds between posts of the report stream
_PROBLEMS_USUAL = (("app", 3), ("website", 2), ("login", 1), ("slow", 1), ("other", 1))
_PROBLEMS_OUTAGE = (("app", 5), ("api", 2), ("slow", 3), ("website", 2), ("login", 1))


class DemoClock:
    """Real time until ``start()``; then demo time, ``scale`` times faster.

    ``monotonic()`` always stays real, so measured durations are true wall time.
    """

    def __init__(self, scale: float) -> None:
        self.scale = scale
        self._origin: float | None = None
        self._origin_mono = 0.0

    def start(self) -> None:
        self._origin = time.time()
        self._origin_mono = time.monotonic()

    @property
    def origin(self) -> float:
        assert self._origin is not None, "start the clock first"
        return self._origin

    def time(self) -> float:
        if self._origin is None:
            return time.time()
        return self._origin + (time.monotonic() - self._origin_mono) * self.scale

    def monotonic(self) -> float:
        return time.monotonic()

    def minute(self) -> float:
        """Demo minutes since ``start()``."""
        return (self.time() - self.origin) / 60.0 if self._origin is not None else 0.0


@dataclass(frozen=True, slots=True)
class Timing:
    """Wall-clock intervals and delays for a speed."""

    speed: float

    @property
    def scale(self) -> float:
        """Demo seconds per wall second."""
        return timeline.DEMO_MINUTES * 60.0 / timeline.WALL_SECONDS * self.speed

    @property
    def probe_interval(self) -> float:
        return max(1.0, 3.0 / self.speed)

    @property
    def feed_interval(self) -> float:
        return max(1.0, 4.0 / self.speed)

    @property
    def delay_scale(self) -> float:
        """Story seconds of first-token time to wall seconds of delay (fits the gap)."""
        return min(1.0, self.probe_interval / 4.0)

    @property
    def wall_seconds(self) -> float:
        return timeline.WALL_SECONDS / self.speed


def demo_config(directory: Path, world_url: str, timing: Timing) -> dict[str, Any]:
    """The daemon config for the demo: every source points at the world."""
    probe = f"{timing.probe_interval:g}s"
    feed = f"{timing.feed_interval:g}s"
    gap = f"{timing.probe_interval * 0.75:g}s"
    budget = {"requests_per_day": 100_000, "tokens_per_day": 10_000_000}
    key_file = str(directory / "api-key")

    def service(
        title: str, chat: dict[str, Any], web_path: str, page: dict[str, Any], app_id: str
    ) -> dict[str, Any]:
        return {
            "display_name": title,
            "probes": {
                "api": {
                    **chat,
                    "model": "demo",
                    "api_key_file": key_file,
                    "interval": probe,
                    "timeout": probe,
                    "max_chunk_gap": gap,
                    "budget": budget,
                },
                "web": {
                    "kind": "http",
                    "url": f"{world_url}/{web_path}/",
                    "interval": probe,
                    "timeout": probe,
                },
            },
            "status_pages": {"main": {**page, "interval": probe, "timeout": probe}},
            "appstore": {"app_id": app_id},
            "reports": {"public": True, "rate_limit": 5, "rate_limit_period": "1m"},
        }

    # Readings are stamped in demo time but sources run every few wall seconds:
    # freshness and the recovery hold are stretched by the clock's scale, and the
    # detectors warm up within the story's first 90 demo minutes.
    run_in_demo_seconds = timing.probe_interval * timing.scale
    return {
        "scheduler": {"jitter_ratio": 0.0, "shutdown_grace": "2s"},
        "detection": {"warmup_s": 90 * 60.0, "warmup_points": 10},
        "disruption": {
            "stale_intervals": 3 * timing.scale,
            "recover_after": f"{3 * run_in_demo_seconds:g}s",
            "evaluate_interval": probe,
        },
        "storage": {"path": str(directory / "outagewatch.db"), "synchronous": "normal"},
        "reports": {"tokens_file": str(directory / "report-tokens")},
        "appstore": {
            "countries": list(timeline.COUNTRIES),
            "charts": [{"chart": "top-free"}],
            "limit": 100,
            "interval": feed,
            "timeout": feed,
            "v2_base_url": f"{world_url}/appstore/api/v2",
        },
        "services": {
            "claude": service(
                "Claude",
                {"kind": "anthropic", "base_url": f"{world_url}/anthropic/v1"},
                "claude-web",
                {
                    "kind": "statuspage",
                    "url": f"{world_url}/claude-status",
                    "components": ["claude.ai", "Claude API (api.anthropic.com)"],
                },
                CLAUDE_APP_ID,
            ),
            "chatgpt": service(
                "ChatGPT",
                {"kind": "openai", "base_url": f"{world_url}/openai/v1"},
                "chatgpt-web",
                {
                    "kind": "incidentio",
                    "url": f"{world_url}/openai-status",
                    "components": ["ChatGPT", "Chat Completions"],
                },
                CHATGPT_APP_ID,
            ),
        },
    }


def _poisson(rng: random.Random, mean: float) -> int:
    """A Poisson draw: Knuth's product for small means, a rounded normal for large."""
    if mean <= 0:
        return 0
    if mean > 50:
        return max(0, round(rng.gauss(mean, math.sqrt(mean))))
    limit, product, count = math.exp(-mean), rng.random(), 0
    while product > limit:
        product *= rng.random()
        count += 1
    return count


def _choose(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    names = [n for n, _ in weighted]
    return rng.choices(names, weights=[w for _, w in weighted])[0]


def seed_history(rng: random.Random, now: float) -> list[Report]:
    """Four weeks of ordinary reports, hour by hour, before ``now`` (imported history)."""
    reports = []
    first_hour = int(now // 3600) - HISTORY_WEEKS * 7 * 24
    # Up to ``now``, the current hour's part too: else the chart shows a hole before the start.
    for hour in range(first_hour, int(now // 3600) + 1):
        for service in SERVICES:
            start = hour * 3600.0
            mean = timeline.usual_reports_per_hour(service, start + 1800.0)
            for _ in range(_poisson(rng, mean)):
                when = start + rng.random() * 3600.0
                if when < now:
                    problem = _choose(rng, _PROBLEMS_USUAL)
                    reports.append(Report(service, problem, when, channel="import"))
    return reports


class ReportStream:
    """Users reporting problems: posts batches to the daemon's ``/api/v1/reports``."""

    def __init__(self, url: str, clock: DemoClock, rng: random.Random) -> None:
        self.url = url
        self.clock = clock
        self.rng = rng
        self.sent = 0
        self.refused = 0
        self._reporter = 0

    async def run(self, session: aiohttp.ClientSession) -> None:
        last = self.clock.time()
        while True:
            await asyncio.sleep(REPORT_TICK)
            now = self.clock.time()
            minute = self.clock.minute()
            batch = []
            for service in SERVICES:
                rate = timeline.reports_per_hour(service, minute, now)
                usual = timeline.usual_reports_per_hour(service, now)
                problems = _PROBLEMS_OUTAGE if rate > 3 * usual else _PROBLEMS_USUAL
                for _ in range(_poisson(self.rng, rate * (now - last) / 3600.0)):
                    self._reporter += 1
                    batch.append(
                        {
                            "service": service,
                            "problem": _choose(self.rng, problems),
                            "reporter": f"demo-user-{self._reporter}",
                            "country": self.rng.choice(timeline.COUNTRIES).upper(),
                        }
                    )
            last = now
            for start in range(0, len(batch), 100):
                await self._post(session, batch[start : start + 100])

    async def _post(self, session: aiohttp.ClientSession, batch: list[dict[str, str]]) -> None:
        try:
            async with session.post(
                self.url, json=batch, headers={"Authorization": f"Bearer {DEMO_TOKEN}"}
            ) as response:
                await response.read()
                if response.status in (200, 202):
                    self.sent += len(batch)
                else:
                    self.refused += len(batch)
        except aiohttp.ClientError:
            self.refused += len(batch)


def _demo_clock_text(minute: float) -> str:
    return f"{int(minute // 60):02d}:{int(minute % 60):02d}"


class Narrator:
    """Prints the phases as they begin and a one-line summary now and then."""

    def __init__(self, daemon: Daemon, clock: DemoClock, out: TextIO) -> None:
        self.daemon = daemon
        self.clock = clock
        self.out = out
        self.phase = 0

    def say(self, text: str) -> None:
        print(text, file=self.out, flush=True)

    def tick(self) -> None:
        minute = self.clock.minute()
        phase = timeline.phase_at(minute)
        if phase.number != self.phase:
            self.phase = phase.number
            self.say(f"[demo {_demo_clock_text(minute)}] phase {phase.number}: {phase.title}")

    def summary(self) -> str:
        state = self.daemon.pipeline.state
        now = self.clock.time()
        parts = []
        for service in SERVICES:
            probe = state.lenses.of(ProbeLens).probes.get((service, "api"))
            last = probe.last if probe else None
            result = "-" if last is None else ("up" if last.success else f"{last.reason}")
            counts = self.daemon.pipeline.reports.services.get(service)
            recent = counts.last_5m(now) if counts else 0
            status = state.disruption.status.get(service)
            verdict = status.state if status else "unknown"
            parts.append(f"{service}: {verdict}, api {result}, {recent} reports/5m")
        return "; ".join(parts)

    def lead(self) -> str:
        lead = self.daemon.pipeline.state.disruption.last_lead("claude")
        if lead is None or lead.seconds is None:
            return "no detection lead for Claude's incident"
        when = "before" if lead.seconds >= 0 else "after"
        return (
            f"detection lead: outagewatch flagged Claude {abs(lead.seconds) / 60:.0f} demo "
            f"minutes {when} the official incident's start"
        )


async def _wait_ready(daemon: Daemon, task: asyncio.Task[int], limit: float = 30.0) -> None:
    deadline = time.monotonic() + limit
    while not daemon.is_ready():
        if task.done():
            task.result()  # raises the daemon's start-up error
            raise RuntimeError("the daemon stopped before it was ready")
        if time.monotonic() > deadline:
            raise RuntimeError("the daemon did not become ready")
        await asyncio.sleep(0.05)


async def run_demo(
    speed: float,
    seed: int,
    listen: str,
    exit_when_done: bool,
    out: TextIO = sys.stdout,
    on_ready: Callable[[Daemon], None] | None = None,
) -> int:
    """Run the seed day once; keep serving afterwards unless ``exit_when_done``."""
    timing = Timing(speed)
    rng = random.Random(seed)
    clock = DemoClock(timing.scale)
    with tempfile.TemporaryDirectory(prefix="outagewatch-demo-") as tmp:
        directory = Path(tmp)
        world = World(clock.minute, clock.time, random.Random(rng.random()), timing.delay_scale)
        runner = web.AppRunner(world.app(), access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        world_url = f"http://127.0.0.1:{runner.addresses[0][1]}"
        config_path = directory / "outagewatch.yml"
        config_path.write_text(
            yaml.safe_dump(demo_config(directory, world_url, timing), sort_keys=False)
        )
        (directory / "api-key").write_text(DEMO_API_KEY + "\n")
        (directory / "report-tokens").write_text(DEMO_TOKEN + "\n")

        store = Store(directory / "outagewatch.db", clock, "normal")
        await asyncio.to_thread(store.open)
        history = seed_history(random.Random(rng.random()), time.time())
        await store.import_reports(history)
        await asyncio.to_thread(store.close)

        daemon = Daemon(config_path, listen, clock=clock)
        daemon_task = asyncio.create_task(daemon.run())
        try:
            await _wait_ready(daemon, daemon_task)
            clock.start()
            world.start = clock.origin
            if on_ready is not None:
                on_ready(daemon)
            return await _tell_story(
                daemon, daemon_task, clock, timing, rng, exit_when_done, out, len(history)
            )
        finally:
            daemon.stop()
            with contextlib.suppress(Exception):
                await daemon_task
            await runner.cleanup()


async def _tell_story(
    daemon: Daemon,
    daemon_task: asyncio.Task[int],
    clock: DemoClock,
    timing: Timing,
    rng: random.Random,
    exit_when_done: bool,
    out: TextIO,
    seeded: int,
) -> int:
    base = f"http://127.0.0.1:{daemon.bound_port}"
    narrator = Narrator(daemon, clock, out)
    narrator.say(
        f"outagewatch demo: the seed day, {timeline.DEMO_MINUTES / 60:g} demo hours in "
        f"{timing.wall_seconds:.0f} s (speed {timing.speed:g}, 1 s = {timing.scale:g} demo s)\n"
        f"  status page  {base}/\n"
        f"  metrics      {base}/metrics\n"
        f"  JSON         {base}/api/v1/status\n"
        f"  report page  {base}/report/claude\n"
        f"  seeded {seeded} reports of history ({HISTORY_WEEKS} weeks)"
    )
    stream = ReportStream(f"{base}/api/v1/reports", clock, random.Random(rng.random()))
    async with aiohttp.ClientSession() as session:
        reporting = asyncio.create_task(stream.run(session))
        try:
            next_summary = 0.0
            while clock.minute() < timeline.DEMO_MINUTES:
                if daemon_task.done():
                    return daemon_task.result() or 1
                narrator.tick()
                if clock.minute() >= next_summary:
                    narrator.say(f"  {_demo_clock_text(clock.minute())} {narrator.summary()}")
                    next_summary += 20.0
                await asyncio.sleep(0.1)
            narrator.say(
                f"[demo {_demo_clock_text(clock.minute())}] the seed day is over: "
                f"{stream.sent} reports posted, {stream.refused} refused; {narrator.lead()}"
            )
        finally:
            reporting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await reporting
    if exit_when_done:
        return 0
    narrator.say("still serving; Ctrl-C to stop")
    return await daemon_task
