"""Composition root: builds every part once, runs the lifecycle, handles signals."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import os
import platform
import secrets
import signal
import weakref
from collections.abc import Callable
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.abc import AbstractResolver
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from outagewatch import __version__
from outagewatch.budget import ChatBudget
from outagewatch.clock import Clock, SystemClock
from outagewatch.config import Config, ConfigError, ShardConfig, load_config
from outagewatch.credentials import CredentialError, read_secret, read_tokens, secret_path
from outagewatch.exposition import GlobalStateCollector, MetricsPage
from outagewatch.metrics import DetectionCollector, ReportsCollector
from outagewatch.persistence import StateKeeper, StatePart, single
from outagewatch.pipeline import Pipeline
from outagewatch.scheduler import Scheduler
from outagewatch.sdnotify import SystemdNotifier, watchdog_interval
from outagewatch.sources import build_sources
from outagewatch.sources.base import RunContext, Source, probe_source_key
from outagewatch.sources.client import HttpClients
from outagewatch.store import Store, StoreError
from outagewatch.web.reports import RateLimiter, ReporterHasher, ReportIntake
from outagewatch.web.server import WebContext, make_app

DEFAULT_LISTEN = ":10060"
REVISION = os.environ.get("OUTAGEWATCH_REVISION", "unknown")


def parse_listen_address(address: str) -> tuple[str | None, int]:
    """``host:port``, ``:port`` (all interfaces) or ``[v6]:port``."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid listen address {address!r}: want HOST:PORT")
    host = host.strip("[]")
    return (host or None), int(port)


# gc thresholds: young generation, then collections of the one before.
_GC_THRESHOLDS = (10_000, 20, 10)


class Daemon:
    """One outagewatch process: config, scheduler, pipeline, web, signals."""

    def __init__(
        self,
        config_path: str | Path,
        listen_address: str = DEFAULT_LISTEN,
        clock: Clock | None = None,
        resolver_factory: Callable[[], AbstractResolver] | None = None,
        handle_signals: bool = True,
        shard: ShardConfig | None = None,
    ) -> None:
        self.config_path = Path(config_path)
        self.listen_address = listen_address
        self.clock = clock or SystemClock()
        self.handle_signals = handle_signals
        self.shard_override = shard
        self.log = structlog.get_logger("outagewatch")
        self.notifier = SystemdNotifier()
        self.pipeline = Pipeline(self.clock)
        self.registry = CollectorRegistry()
        self.http = HttpClients(resolver_factory)
        # Chat probes' spending today: one ledger for the process, kept across reloads.
        self.chat_budget = ChatBudget()
        self.config: Config = Config()
        self.scheduler: Scheduler | None = None
        self.store: Store | None = None
        self.intake: ReportIntake | None = None
        self.keeper: StateKeeper | None = None
        self.bound_port: int | None = None
        self._contexts: weakref.WeakKeyDictionary[Source, RunContext] = weakref.WeakKeyDictionary()
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()

    def _context(self, source: Source) -> RunContext:
        # Bound once per source, not per run: binding costs more than a probe's bookkeeping.
        ctx = self._contexts.get(source)
        if ctx is None:
            log = self.log.bind(**source.log_context)
            ctx = self._contexts[source] = RunContext(http=self.http, clock=self.clock, log=log)
        return ctx

    def _register_collectors(self) -> None:
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        # Per-target families are rendered by MetricsPage (cached), the rest from here.
        self.registry.register(
            GlobalStateCollector(
                self.pipeline.state, __version__, REVISION, platform.python_version()
            )
        )
        assert self.store is not None
        self.registry.register(ReportsCollector(self.pipeline.state, self.clock, self.store))
        self.registry.register(DetectionCollector(self.pipeline.state))

    async def _load(self) -> Config:
        config = await asyncio.to_thread(load_config, self.config_path)
        if self.shard_override is not None:  # --shard.* flags win over the file
            config = config.model_copy(update={"shard": self.shard_override})
        return config

    def stop(self) -> None:
        self._stop.set()

    def is_ready(self) -> bool:
        return self.scheduler is not None and self.scheduler.running

    async def reload(self) -> bool:
        """Load the config file again; on error keep running the old one."""
        async with self._reload_lock:
            self.notifier.reloading()
            try:
                config = await self._load()
                sources = build_sources(config, self.chat_budget)
                tokens, reporter_key = await self._report_secrets(config)
            except ConfigError as exc:
                self.log.error("config_reload_failed", errors=exc.errors)
                self.pipeline.record_reload(ok=False)
                self.notifier.ready()
                return False
            if config.storage != self.config.storage:
                self.log.warning("storage_change_needs_restart")
            self.config = config
            assert self.scheduler is not None
            self.scheduler.sync(sources)
            keys = {s.key for s in sources}
            self.pipeline.retain(
                keys,
                {
                    (svc, probe)
                    for svc, cfg in config.services.items()
                    for probe in cfg.probes
                    if probe_source_key(svc, probe) in keys
                },
            )
            self.pipeline.configure_reports(config)
            self.pipeline.configure_detection(config, keys)
            assert self.intake is not None
            self.intake.set_tokens(tokens)
            self.intake.hasher = ReporterHasher(reporter_key)
            self.pipeline.record_reload(ok=True)
            self.log.info("config_reloaded", sources=len(sources))
            self.notifier.ready()
            return True

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (or ``stop()``). Raises ConfigError at start-up."""
        self.config = await self._load()
        sources = build_sources(self.config, self.chat_budget)
        self.store = Store(
            self.config.storage.resolved_path(os.environ),
            self.clock,
            self.config.storage.synchronous,
        )
        await asyncio.to_thread(self.store.open)
        try:
            return await self._serve(sources)
        finally:
            await asyncio.to_thread(self.store.close)

    async def _report_secrets(self, config: Config) -> tuple[list[str], bytes]:
        """Intake tokens and the reporter hash key; ConfigError when unreadable."""
        cfg = config.reports
        try:
            tokens: list[str] = []
            path = secret_path(
                "reports -> tokens_file", cfg.tokens_file, cfg.tokens_credential, os.environ
            )
            if path is not None:
                tokens = read_tokens("reports -> tokens_file", path)
            key_name = "reports -> hash_secret_file"
            path = secret_path(
                key_name, cfg.hash_secret_file, cfg.hash_secret_credential, os.environ
            )
            if path is not None:
                return tokens, read_secret(key_name, path)
        except CredentialError as exc:
            raise ConfigError(str(self.config_path), [str(exc)]) from None
        # No configured key: generate one once and keep it beside the reports.
        assert self.store is not None
        stored = await self.store.get_state("reports")
        if "reporter_hash_key" in stored:
            return tokens, bytes.fromhex(stored["reporter_hash_key"])
        key = secrets.token_bytes(32)
        await self.store.put_state("reports", "reporter_hash_key", key.hex())
        return tokens, key

    async def _prune_reports(self) -> None:
        """Delete reports past their retention, now and every prune interval."""
        while True:
            try:
                deleted = await self.pipeline.prune_reports(self.config.reports.retention)
            except StoreError as exc:
                self.log.error("reports_prune_failed", error=str(exc))
            else:
                if deleted:
                    self.log.info("reports_pruned", deleted=deleted)
            await asyncio.sleep(self.config.storage.prune_interval)

    def _state_parts(self) -> list[StatePart]:
        """Everything that survives a restart, one namespace of the store each."""
        state = self.pipeline.state
        budget = self.chat_budget
        return [
            StatePart("detectors", state.signals.snapshot, state.signals.load),
            StatePart("disruption", state.disruption.snapshot, state.disruption.load),
            StatePart(
                "chat_budget",
                *single(budget.snapshot, lambda value: budget.load(value, self.clock.time())),
            ),
            StatePart("incidents", *single(state.incidents.snapshot, state.incidents.load)),
            StatePart(
                "appstore_ranks",
                *single(state.appstore.history.snapshot, state.appstore.history.load),
            ),
        ]

    async def _detect(self) -> None:
        """Judge every service now and every evaluate interval."""
        while True:
            for _ in self.pipeline.detect_steps():
                await asyncio.sleep(0)  # runs due meanwhile start between slices
            await asyncio.sleep(self.config.disruption.evaluate_interval)

    async def _serve(self, sources: list[Source]) -> int:
        assert self.store is not None
        await self.pipeline.start_reports(self.store, self.config)
        self.pipeline.configure_detection(self.config, {s.key for s in sources})
        self.keeper = StateKeeper(self.store, self._state_parts())
        await self.keeper.load()
        tokens, reporter_key = await self._report_secrets(self.config)
        self.intake = ReportIntake(
            self.pipeline,
            lambda: self.config,
            self.clock,
            ReporterHasher(reporter_key),
            RateLimiter(self.clock),
        )
        self.intake.set_tokens(tokens)
        self.pipeline.record_reload(ok=True)
        self._register_collectors()
        loop = asyncio.get_running_loop()
        if self.handle_signals:
            loop.add_signal_handler(signal.SIGTERM, self.stop)
            loop.add_signal_handler(signal.SIGINT, self.stop)
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
        web_ctx = WebContext(
            state=self.pipeline.state,
            config=lambda: self.config,
            ready=self.is_ready,
            reload=self.reload,
            reports=self.intake,
            clock=self.clock,
        )
        runner = web.AppRunner(
            make_app(web_ctx, MetricsPage(self.pipeline.state, self.registry)), access_log=None
        )
        await runner.setup()
        host, port = parse_listen_address(self.listen_address)
        site = web.TCPSite(runner, host, port, reuse_address=True)
        await site.start()
        self.bound_port = runner.addresses[0][1] if runner.addresses else port
        self.scheduler = Scheduler(
            self.pipeline,
            self._context,
            self.clock,
            self.config.scheduler.max_concurrency,
            self.config.scheduler.jitter_ratio,
        )
        self.scheduler.start(sources)
        # What start-up built lives as long as the process: keep it out of the full
        # collections, which otherwise walk every source and stall the loop at 10,000.
        gc.freeze()
        # A young generation of 700 objects is collected while requests are in flight,
        # so their objects reach the old generation and full collections (100-300 ms
        # at 10,000 probes) came every few seconds. A larger one lets them die young.
        gc.set_threshold(*_GC_THRESHOLDS)
        self.log.info(
            "started",
            version=__version__,
            listen=self.listen_address,
            port=self.bound_port,
            sources=len(sources),
            config=str(self.config_path),
            event_loop="uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio",
        )
        self.notifier.ready()
        watchdog = asyncio.create_task(self._watchdog())
        pruning = asyncio.create_task(self._prune_reports())
        detecting = asyncio.create_task(self._detect())
        saving = asyncio.create_task(
            self.keeper.run(lambda: self.config.storage.state_save_interval)
        )
        try:
            await self._stop.wait()
        finally:
            self.log.info("stopping")
            self.notifier.stopping()
            watchdog.cancel()
            pruning.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await pruning
            await self.scheduler.shutdown(self.config.scheduler.shutdown_grace)
            for task in (detecting, saving):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await self.keeper.save_logged()  # before run() closes the store
            await runner.cleanup()
            await self.http.close()
            if self.handle_signals:
                for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                    loop.remove_signal_handler(sig)
        return 0

    async def _watchdog(self) -> None:
        """Ping systemd from the event loop: a stuck loop stops the pings."""
        interval = watchdog_interval()
        if interval is None or not self.notifier.enabled:
            return
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)
