"""GET with redirects followed by hand, so a feed cannot send us to another host.

Status pages and chart feeds follow redirects on their own host only, unless
the source's ``redirect_to_other_hosts`` allows more; a refused or broken
redirect fails the run with reason ``redirect`` and says where it pointed.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager

import aiohttp
from yarl import URL

from outagewatch.sources.errors import SourceError

_REDIRECT_STATUSES = {301, 302, 303, 307, 308}


@asynccontextmanager
async def get_following_redirects(
    session: aiohttp.ClientSession,
    url: str,
    headers: Mapping[str, str],
    max_redirects: int,
    other_hosts: bool,
) -> AsyncIterator[aiohttp.ClientResponse]:
    """The final response of a GET, after at most ``max_redirects`` allowed hops."""
    origin = URL(url).host
    target = URL(url)
    for _ in range(max_redirects + 1):
        async with session.get(target, headers=headers, allow_redirects=False) as response:
            location = response.headers.get("Location")
            if response.status not in _REDIRECT_STATUSES or location is None:
                yield response
                return
            try:
                target = response.url.join(URL(location))
            except (ValueError, TypeError):
                raise SourceError(
                    "redirect", f"HTTP {response.status} to an unreadable Location"
                ) from None
        if target.scheme not in ("http", "https") or not target.host:
            raise SourceError("redirect", f"redirect to a non-HTTP address ({target.scheme}:)")
        if target.host != origin and not other_hosts:
            raise SourceError(
                "redirect",
                f"redirect to another host {target.host} refused "
                "(allow it with redirect_to_other_hosts)",
            )
    raise SourceError("redirect", f"more than {max_redirects} redirects")
