"""structlog set-up: console on a TTY, JSON otherwise, logfmt on request.

aiohttp's stdlib loggers go through the same renderer, and every event passes
the daemon's ``Scrubber`` (secrets never reach the log).
"""

from __future__ import annotations

import logging
import sys
from typing import Literal

import structlog

from outagewatch.scrub import Scrubber

LogFormat = Literal["logfmt", "json", "console"]
LEVELS = ("debug", "info", "warning", "error")


def configure(
    level: str = "info", fmt: LogFormat | None = None, scrubber: Scrubber | None = None
) -> None:
    """Configure structlog and the stdlib root logger once, at start-up.

    ``scrubber`` is the daemon's: it may change its secrets later (a reload).
    """
    if fmt is None:
        fmt = "console" if sys.stderr.isatty() else "json"
    renderer: structlog.typing.Processor
    if fmt == "json":
        renderer = structlog.processors.JSONRenderer()
    elif fmt == "logfmt":
        renderer = structlog.processors.LogfmtRenderer(key_order=["ts", "level", "event"])
    else:
        renderer = structlog.dev.ConsoleRenderer(colors=sys.stderr.isatty())
    shared: list[structlog.typing.Processor] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True, key="ts"),
        structlog.processors.format_exc_info,
    ]
    rendering: list[structlog.typing.Processor] = [
        structlog.stdlib.ProcessorFormatter.remove_processors_meta,
        renderer,
    ]
    if scrubber is not None:
        # On the values (nested ones and exception text included), and once more on
        # the rendered line, whatever escaping the renderer applied.
        shared.append(scrubber.scrub_event)
        rendering.append(scrubber.scrub_rendered)
    numeric = logging.getLevelName(level.upper())
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(numeric),
        cache_logger_on_first_use=False,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(processors=rendering, foreign_pre_chain=shared)
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(numeric)
    # Access logs per scrape are noise at info.
    logging.getLogger("aiohttp.access").setLevel(max(numeric, logging.WARNING))
