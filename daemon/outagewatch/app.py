"""Composition root: builds every part once, runs the lifecycle, handles signals."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import math
import os
import platform
import secrets
import signal
import ssl
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

import structlog
from aiohttp import web
from aiohttp.abc import AbstractResolver
from prometheus_client import CollectorRegistry, GCCollector, PlatformCollector, ProcessCollector

from outagewatch import __version__
from outagewatch.clock import Clock, SystemClock
from outagewatch.config import MIN_INTERVAL, Config, ConfigError, load_config
from outagewatch.credentials import CredentialError, read_secret, read_tokens, secret_path
from outagewatch.detect import compiled as detectors_compiled
from outagewatch.exposition import MetricsPage
from outagewatch.lenses.appstore import AppStoreLens
from outagewatch.lenses.chat.budget import ChatBudget
from outagewatch.lenses.registry import build_sources
from outagewatch.lenses.reports import ReportsCollector
from outagewatch.metrics import DetectionCollector, StateCollector
from outagewatch.persistence import StateKeeper, StatePart, StateRestoreCollector, single
from outagewatch.pipeline import Pipeline
from outagewatch.revision import build_revision
from outagewatch.scheduler import Scheduler
from outagewatch.scrub import Scrubber, config_secrets
from outagewatch.sdnotify import SystemdNotifier, watchdog_interval
from outagewatch.sources.base import RunContext, Source
from outagewatch.sources.client import HttpClients
from outagewatch.store import Store, StoreError, StoreLock, decode_state
from outagewatch.views import StatusQuery
from outagewatch.warmstart import warm_start
from outagewatch.web.connections import (
    AcceptErrorLog,
    ConnectionGate,
    ConnectionsCollector,
    GatedSite,
    connection_cap,
    raise_fd_limit,
)
from outagewatch.web.reports import RateLimiter, ReporterHasher, ReportIntake
from outagewatch.web.security import (
    BasicAuth,
    WebConfig,
    WebSecurity,
    external_url,
    load_web_config,
)
from outagewatch.web.server import WebContext, WebOptions, make_app

DEFAULT_LISTEN = ":10060"


def parse_listen_address(address: str) -> tuple[str | None, int]:
    """``host:port``, ``:port`` (all interfaces) or ``[v6]:port``."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"invalid listen address {address!r}: want HOST:PORT")
    host = host.strip("[]")
    return (host or None), int(port)


# gc thresholds: young generation, then collections of the one before.
GC_THRESHOLDS = (10_000, 20, 10)
# A stored reporter hash key shorter than this is damage, not a key.
_MIN_REPORTER_KEY_BYTES = 16


def prepare_sources(config: Config, chat_budget: ChatBudget, source: str) -> list[Source]:
    """The sources ``config`` describes, checked to be schedulable; ConfigError if not.

    ``check-config``, start-up and reload all call this, so what check-config
    passes, run starts and a reload applies.
    """
    try:
        sources = build_sources(config, chat_budget)
    except ConfigError:
        raise
    except Exception as exc:  # e.g. a CA file that ssl cannot load
        raise ConfigError(source, [f"cannot build the sources: {exc}"]) from None
    errors = [
        f"{s.key}: interval {s.interval!r} and timeout {s.timeout!r} cannot be scheduled"
        for s in sources
        if not (
            math.isfinite(s.interval)
            and math.isfinite(s.timeout)
            and s.interval >= MIN_INTERVAL
            and s.timeout > 0
        )
    ]
    if errors:
        raise ConfigError(source, errors)
    return sources


@dataclass(frozen=True)
class Prepared:
    """Everything a config needs, built before it is applied (a reload swaps all of it)."""

    config: Config
    sources: list[Source]
    tokens: list[str]
    reporter_key: bytes
    secrets: list[str]


@dataclass
class Running:
    """The parts ``Daemon.run`` built, each torn down by its exit stack, and the
    config in force (``applied``, swapped by each reload)."""

    store: Store
    keeper: StateKeeper
    intake: ReportIntake
    site: GatedSite
    metrics_page: MetricsPage
    scheduler: Scheduler
    web_security: WebSecurityHolder
    bound_port: int
    applied: Prepared


class WebSecurityHolder:
    """The web config in force: read per request, swapped whole on reload."""

    def __init__(self, security: WebSecurity, tls: ssl.SSLContext | None) -> None:
        self.security = security
        self.tls = tls  # the listening socket's context, kept for the site's life

    def __call__(self) -> WebSecurity:
        return self.security

    def apply(
        self,
        security: WebSecurity,
        tls: ssl.SSLContext | None,
        log: structlog.typing.FilteringBoundLogger,
    ) -> None:
        """Users and headers now, a renewed certificate for new connections; other TLS
        changes wait for a restart."""
        old_tls = self.security.config.tls_server_config
        self.security = security
        new_tls = security.config.tls_server_config
        if self.tls is not None and new_tls is not None:
            try:
                self.tls.load_cert_chain(new_tls.cert_file, new_tls.key_file)
            except (OSError, ssl.SSLError) as exc:  # changed again since it was checked
                log.error("web_tls_reload_failed", error=str(exc))
        if old_tls is None and new_tls is None:
            return
        same = {"cert_file", "key_file"}
        if (old_tls is None) != (new_tls is None) or (
            old_tls is not None
            and new_tls is not None
            and old_tls.model_dump(exclude=same) != new_tls.model_dump(exclude=same)
        ):
            log.warning("web_tls_change_needs_restart")


class Daemon:
    """One outagewatch process: config, scheduler, pipeline, web, signals.

    ``run`` builds the parts in order on an ``AsyncExitStack``, so they come down
    in reverse order by construction; a reload applies a new config to each part
    through its own ``apply``.
    """

    def __init__(
        self,
        config_path: str | Path,
        listen_address: str = DEFAULT_LISTEN,
        clock: Clock | None = None,
        resolver_factory: Callable[[], AbstractResolver] | None = None,
        handle_signals: bool = True,
        shard_flags: Mapping[str, int] | None = None,
        scrubber: Scrubber | None = None,
        web_options: WebOptions | None = None,
    ) -> None:
        self.config_path = Path(config_path)
        self.listen_address = listen_address
        self.web_options = web_options or WebOptions()
        self.external = external_url(
            self.web_options.external_url,
            self.web_options.route_prefix,
            parse_listen_address(listen_address)[1],
        )
        self.fd_limits = (0, 0)  # soft, hard RLIMIT_NOFILE after raising the soft one
        self.clock = clock or SystemClock()
        self.handle_signals = handle_signals
        self.shard_flags = dict(shard_flags or {})
        self.log = structlog.get_logger("outagewatch")
        # Given to the log set-up by the caller too; its secrets follow the config.
        self.scrubber = scrubber if scrubber is not None else Scrubber()
        self.notifier = SystemdNotifier()
        self.pipeline = Pipeline(self.clock)
        # The read side of the pipeline: the page, its JSON and the collectors read this.
        self.status = StatusQuery(self.pipeline.state)
        self.registry = CollectorRegistry()
        self.http = HttpClients(resolver_factory)
        # Chat probes' spending today: one ledger for the process, kept across reloads.
        self.chat_budget = ChatBudget()
        self.config: Config = Config()
        # What run() built, from when it serves (None before): read by tests and is_ready.
        self.running: Running | None = None
        self._contexts: weakref.WeakKeyDictionary[Source, RunContext] = weakref.WeakKeyDictionary()
        self._stop = asyncio.Event()
        self._reload_lock = asyncio.Lock()

    @property
    def bound_port(self) -> int | None:
        return self.running.bound_port if self.running is not None else None

    def _context(self, source: Source) -> RunContext:
        # Bound once per source, not per run: binding costs more than a probe's bookkeeping.
        ctx = self._contexts.get(source)
        if ctx is None:
            log = self.log.bind(**source.log_context)
            ctx = self._contexts[source] = RunContext(http=self.http, clock=self.clock, log=log)
        return ctx

    def _register_collectors(
        self, store: Store, keeper: StateKeeper, gate: Callable[[], ConnectionGate | None]
    ) -> None:
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        GCCollector(registry=self.registry)
        # Per-target families are rendered by MetricsPage (cached), the rest from here.
        self.registry.register(
            StateCollector(self.status, __version__, build_revision(), platform.python_version())
        )
        self.registry.register(ReportsCollector(self.pipeline.reports, self.clock, store))
        self.registry.register(DetectionCollector(self.status))
        self.registry.register(StateRestoreCollector(keeper))
        self.registry.register(ConnectionsCollector(gate))

    async def _load(self) -> Config:
        config = await asyncio.to_thread(load_config, self.config_path)
        if self.shard_flags:  # --shard.* flags win over the file's keys
            shard = config.shard.with_flags(self.shard_flags, str(self.config_path))
            config = config.model_copy(update={"shard": shard})
        return config

    async def _load_web_security(self) -> tuple[WebSecurity, ssl.SSLContext | None]:
        """The web config file (if any) with the flags; ConfigError when invalid."""
        options = self.web_options
        web_config, tls = WebConfig(), None
        if options.config_file is not None:
            web_config, tls = await asyncio.to_thread(load_web_config, options.config_file)
        auth = await asyncio.to_thread(BasicAuth, web_config.basic_auth_users)
        security = WebSecurity(
            web_config, auth, options.trusted_proxies, self.external, options.enable_lifecycle
        )
        return security, tls

    def stop(self) -> None:
        self._stop.set()

    def is_ready(self) -> bool:
        return self.running is not None and self.running.scheduler.running

    async def _prepare(self, store: Store, keeper: StateKeeper) -> Prepared:
        """Load the config file and build what it needs, touching nothing running."""
        config = await self._load()
        tokens, reporter_key = await self._report_secrets(config, store, keeper)
        secrets = await asyncio.to_thread(config_secrets, config, os.environ, reporter_key)
        sources = prepare_sources(config, self.chat_budget, str(self.config_path))
        return Prepared(config, sources, tokens, reporter_key, secrets)

    def _apply(self, running: Running, new: Prepared) -> None:
        """Make ``new`` the running config: each part takes it through its own apply."""
        keys = {s.key for s in new.sources}
        running.scheduler.sync(new.sources)
        self.config = new.config
        self.pipeline.apply(new.config, keys)
        running.intake.apply(new.tokens, new.reporter_key)
        running.metrics_page.apply(new.config.metrics)
        self.scrubber.replace(new.secrets)

    async def reload(self) -> bool:
        """Load the config file again; on any error keep running the old one."""
        return await self.reload_error() is None

    async def reload_error(self) -> str | None:
        """``reload``, returning why it failed (None when it succeeded).

        Everything the new config needs is built first; only then is it applied.
        Should applying fail part way, the old config is applied again. Either
        way systemd hears READY=1 again and the reload metric tells the outcome.
        """
        running = self.running
        if running is None:
            return "the daemon is not running yet"
        async with self._reload_lock:
            self.notifier.reloading()
            old = running.applied
            try:
                new = await self._prepare(running.store, running.keeper)
                security, tls = await self._load_web_security()
                if new.config.storage != self.config.storage:
                    self.log.warning("storage_change_needs_restart")
                try:
                    self._apply(running, new)
                except Exception:
                    self.chat_budget.configure(old.config)
                    self._apply(running, old)
                    raise
                running.applied = new
                running.web_security.apply(security, tls, self.log)
            except Exception as exc:
                self.chat_budget.configure(old.config)  # building sources set new caps
                errors = exc.errors if isinstance(exc, ConfigError) else [f"{exc!r}"[:500]]
                self.log.error("config_reload_failed", errors=errors)
                self.pipeline.record_reload(ok=False)
                return "\n".join(errors)
            else:
                self.pipeline.record_reload(ok=True)
                self.log.info("config_reloaded", sources=len(new.sources))
                return None
            finally:
                self.notifier.ready()

    async def _reload_from_web(self) -> bool:
        """``POST /-/reload``: 200, or 500 with why (the old config stays)."""
        error = await self.reload_error()
        if error is not None:
            raise web.HTTPInternalServerError(
                text=f"Reload failed; the old config stays:\n{error}\n"
            )
        return True

    async def run(self) -> int:
        """Run until SIGTERM/SIGINT (or ``stop()``). Raises ConfigError at start-up,
        StoreError when the store is unusable or used by another daemon.

        Each part is registered on the exit stack as it is built, so teardown runs
        in reverse: stop scheduling and cancel runs, close the web, save the state,
        close the HTTP clients and the store, release the lock.
        """
        self.fd_limits = raise_fd_limit()
        self.config = await self._load()
        web_security = WebSecurityHolder(*await self._load_web_security())
        sources = prepare_sources(self.config, self.chat_budget, str(self.config_path))
        async with contextlib.AsyncExitStack() as stack:
            store = await self._open_store(stack)
            stack.push_async_callback(self.http.close)
            keeper = await self._restore_state(stack, store, sources)
            prepared = await self._first_config(store, keeper, sources)
            intake = ReportIntake(
                self.pipeline,
                lambda: self.config,
                self.clock,
                ReporterHasher(prepared.reporter_key),
                RateLimiter(self.clock),
            )
            intake.set_tokens(prepared.tokens)
            self.pipeline.record_reload(ok=True)
            metrics_page = MetricsPage(
                self.status, self.registry, self.config.metrics.probe_details
            )
            site, bound_port, cap = await self._serve_web(stack, intake, web_security, metrics_page)
            self._register_collectors(store, keeper, lambda: site.gate)
            scheduler = self._start_scheduler(stack, sources)
            self.running = Running(
                store,
                keeper,
                intake,
                site,
                metrics_page,
                scheduler,
                web_security,
                bound_port,
                prepared,
            )
            self._started(sources, web_security.tls is not None, bound_port, cap)
            self._start_tasks(stack, store, keeper)
            stack.callback(self._stopping)
            await self._stop.wait()
        return 0

    async def _open_store(self, stack: contextlib.AsyncExitStack) -> Store:
        """Take the store's lock, then open it; both undone when the stack closes."""
        path = self.config.storage.resolved_path(os.environ)
        lock = StoreLock(path)
        await asyncio.to_thread(lock.acquire)
        stack.callback(lock.release)
        store = Store(path, self.clock, self.config.storage.synchronous)
        await asyncio.to_thread(store.open)
        stack.push_async_callback(asyncio.to_thread, store.close)
        return store

    async def _restore_state(
        self, stack: contextlib.AsyncExitStack, store: Store, sources: list[Source]
    ) -> StateKeeper:
        """Reports and saved state from the store; the state is saved again at exit."""
        await self.pipeline.start_reports(store, self.config)
        # Configured before the saved detector state loads into it.
        self.pipeline.configure_detection(self.config, {s.key for s in sources})
        keeper = StateKeeper(store, self._state_parts())
        keeper.failures["reporter_hash_key"] += 0
        for table in store.repaired:
            keeper.record_failure("store_schema", [table], "table or index missing")
        await keeper.load()
        stack.push_async_callback(keeper.save_logged)  # after runs stop, before the store closes
        return keeper

    async def _first_config(
        self, store: Store, keeper: StateKeeper, sources: list[Source]
    ) -> Prepared:
        """The start-up config's report secrets and scrubbed secrets, applied."""
        tokens, reporter_key = await self._report_secrets(self.config, store, keeper)
        secrets_now = await asyncio.to_thread(config_secrets, self.config, os.environ, reporter_key)
        self.scrubber.replace(secrets_now)
        return Prepared(self.config, sources, tokens, reporter_key, secrets_now)

    async def _serve_web(
        self,
        stack: contextlib.AsyncExitStack,
        intake: ReportIntake,
        web_security: WebSecurityHolder,
        metrics_page: MetricsPage,
    ) -> tuple[GatedSite, int, int]:
        """Signals, the aiohttp app and its listening site, with the port it bound and
        its connection cap; all undone at exit."""
        loop = asyncio.get_running_loop()
        loop.set_exception_handler(AcceptErrorLog())
        stack.callback(loop.set_exception_handler, None)
        if self.handle_signals:
            loop.add_signal_handler(signal.SIGTERM, self.stop)
            loop.add_signal_handler(signal.SIGINT, self.stop)
            loop.add_signal_handler(signal.SIGHUP, lambda: loop.create_task(self.reload()))
            for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
                stack.callback(loop.remove_signal_handler, sig)
        timeouts = self.web_options.timeouts
        web_ctx = WebContext(
            status=self.status,
            config=lambda: self.config,
            ready=self.is_ready,
            reload=self._reload_from_web,
            reports=intake,
            clock=self.clock,
            security=web_security,
            timeouts=timeouts,
        )
        app = make_app(web_ctx, metrics_page)
        app.middlewares.append(self.scrubber.middleware())  # before the app freezes
        runner = web.AppRunner(
            app,
            access_log=None,
            # aiohttp closes a connection idle this long between requests, a partial
            # next request head included.
            keepalive_timeout=timeouts.idle,
        )
        await runner.setup()
        stack.push_async_callback(runner.cleanup)
        host, port = parse_listen_address(self.listen_address)
        soft_fds, _hard_fds = self.fd_limits
        cap = connection_cap(
            self.web_options.max_connections, soft_fds, self.config.scheduler.max_concurrency
        )
        if cap < self.web_options.max_connections:
            self.log.warning(
                "web_max_connections_lowered",
                wanted=self.web_options.max_connections,
                cap=cap,
                fd_limit=soft_fds,
                probe_concurrency=self.config.scheduler.max_concurrency,
            )
        site = GatedSite(
            runner,
            host,
            port,
            cap,
            timeouts.header,
            ssl_context=web_security.tls,
            reuse_address=True,
        )
        await site.start()
        return site, runner.addresses[0][1] if runner.addresses else port, cap

    def _start_scheduler(
        self, stack: contextlib.AsyncExitStack, sources: list[Source]
    ) -> Scheduler:
        """Schedule the sources; at exit, stop scheduling and cancel runs in flight."""
        scheduler = Scheduler(
            self.pipeline,
            self._context,
            self.clock,
            self.config.scheduler.max_concurrency,
            self.config.scheduler.jitter_ratio,
        )
        scheduler.start(sources)
        stack.push_async_callback(lambda: scheduler.shutdown(self.config.scheduler.shutdown_grace))
        return scheduler

    def _started(self, sources: list[Source], tls: bool, port: int, cap: int) -> None:
        # What start-up built lives as long as the process: keep it out of the full
        # collections, which otherwise walk every source and stall the loop at 10,000.
        gc.freeze()
        # A young generation of 700 objects is collected while requests are in flight,
        # so their objects reach the old generation and full collections (100-300 ms
        # at 10,000 probes) came every few seconds. A larger one lets them die young.
        gc.set_threshold(*GC_THRESHOLDS)
        loop = asyncio.get_running_loop()
        soft_fds, hard_fds = self.fd_limits
        self.log.info(
            "started",
            version=__version__,
            listen=self.listen_address,
            port=port,
            external_url=self.external.url,
            tls=tls,
            max_connections=cap,
            fd_limit=soft_fds,
            fd_hard_limit=hard_fds,
            sources=len(sources),
            config=str(self.config_path),
            event_loop="uvloop" if type(loop).__module__.startswith("uvloop") else "asyncio",
            detectors="compiled" if detectors_compiled() else "interpreted",
        )
        self.notifier.ready()

    def _start_tasks(
        self, stack: contextlib.AsyncExitStack, store: Store, keeper: StateKeeper
    ) -> None:
        """The background loops; each cancelled (and awaited) at exit, first of all."""
        for loop_task in (
            self._warm_start(store, keeper),
            keeper.run(lambda: self.config.storage.state_save_interval),
            self._detect(),
            self._prune_reports(),
            self._watchdog(),
        ):
            stack.push_async_callback(_cancelled, asyncio.create_task(loop_task))

    async def _report_secrets(
        self, config: Config, store: Store, keeper: StateKeeper
    ) -> tuple[list[str], bytes]:
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
        stored = (await store.get_state_text("reports")).get("reporter_hash_key")
        if stored is not None:
            try:
                key = bytes.fromhex(decode_state(stored))
                if len(key) < _MIN_REPORTER_KEY_BYTES:
                    raise ValueError(f"{len(key)} bytes is too short")
                return tokens, key
            except (ValueError, TypeError) as exc:
                # Damaged: a new key (reporters' earlier reports no longer match theirs).
                keeper.record_failure("reporter_hash_key", [], str(exc)[:200])
        key = secrets.token_bytes(32)
        await store.put_state("reports", "reporter_hash_key", key.hex())
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
        ranks = state.lenses.of(AppStoreLens)
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
                *single(ranks.history.snapshot, ranks.history.load),
            ),
        ]

    async def _warm_start(self, store: Store, keeper: StateKeeper) -> None:
        """Replay stored reports into the report detectors (outagewatch/warmstart.py)."""
        if await warm_start(store, self.pipeline.state.signals, self.clock, self.log):
            await keeper.save_logged()

    async def _detect(self) -> None:
        """Judge every service now and every evaluate interval."""
        while True:
            for _ in self.pipeline.detect_steps():
                await asyncio.sleep(0)  # runs due meanwhile start between slices
            await asyncio.sleep(self.config.disruption.evaluate_interval)

    def _stopping(self) -> None:
        self.log.info("stopping")
        self.notifier.stopping()

    async def _watchdog(self) -> None:
        """Ping systemd from the event loop: a stuck loop stops the pings."""
        interval = watchdog_interval()
        if interval is None or not self.notifier.enabled:
            return
        while True:
            self.notifier.watchdog()
            await asyncio.sleep(interval)


async def _cancelled(task: asyncio.Task[None]) -> None:
    """Cancel a background loop and wait until it has stopped."""
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
