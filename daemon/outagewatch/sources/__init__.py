"""The shared run machinery of every lens's sources: the ``Source`` shape (base.py),
HTTP clients, TLS, back-off, and the fleet's sharding function.

Which sources a config describes is the lenses' business (``lenses/registry.py``).
"""

from __future__ import annotations

import hashlib


def hashmod(key: str, count: int) -> int:
    """The shard of ``key``: the same function as Prometheus' ``hashmod`` relabel action."""
    return int.from_bytes(hashlib.md5(key.encode()).digest()[8:], "big") % count


def replica_shards(key: str, count: int, replicas: int) -> list[int]:
    """The shards that run ``key``: its ``hashmod`` shard, then the next ones (mod count).

    The first is Prometheus' ``hashmod`` assignment, so one replica is plain sharding.
    """
    first = hashmod(key, count)
    return [(first + j) % count for j in range(replicas)]
