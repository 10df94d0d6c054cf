"""What the sources that poll an HTTP API share: back-off counted in runs, and a
body read under a cap."""

from __future__ import annotations

import math
import random

import aiohttp

from outagewatch.sources.errors import SourceError
from outagewatch.sources.retry_after import retry_after_seconds

_CHUNK = 64 * 1024
# Doubling stops here: 2**30 intervals is past any max_backoff anyway.
_MOST_FAILURES = 30


class RunBackoff:
    """Skip runs for the server's Retry-After, or for doubling waits, capped.

    Counted in runs, not seconds: the next run is one interval away anyway, so a
    first failure skips nothing and a wait of n intervals skips n - 1. With
    ``rng`` a doubling wait is drawn between its half and its whole, so many
    sources throttled by one host at once do not come back at once.
    """

    def __init__(self, interval: float, longest: float, rng: random.Random | None = None) -> None:
        self.interval = interval
        self.longest = longest
        self._rng = rng
        self.failures_in_row = 0
        self.runs_to_skip = 0

    def check(self) -> None:
        """Raise ``backoff`` for a run that is to be skipped."""
        if self.runs_to_skip > 0:
            self.runs_to_skip -= 1
            raise SourceError("backoff", f"{self.runs_to_skip} more run(s) skipped after 429/5xx")

    def succeeded(self) -> None:
        self.failures_in_row = 0

    def failed(self, retry_after: str | None, now: float) -> None:
        """A 429/5xx: wait what the server asks, else twice as long as last time."""
        self.failures_in_row = min(self.failures_in_row + 1, _MOST_FAILURES)
        wait = retry_after_seconds(retry_after, now)
        if wait is None:
            wait = self.interval * 2 ** (self.failures_in_row - 1)
            if self._rng is not None:
                wait = self._rng.uniform(wait / 2, wait)
        wait = min(wait, self.longest)
        self.runs_to_skip = max(0, math.ceil(wait / self.interval) - 1)


async def read_capped(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or ``too_large`` as soon as it passes ``limit`` bytes."""
    if response.content_length is not None and response.content_length > limit:
        raise SourceError("too_large", f"body of {response.content_length} bytes > {limit}")
    body = bytearray()
    async for chunk in response.content.iter_chunked(_CHUNK):
        body += chunk
        if len(body) > limit:
            raise SourceError("too_large", f"body exceeds {limit} bytes")
    return bytes(body)
