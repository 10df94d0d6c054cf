"""A paced HTTP/1.1 load generator for loopback benchmarks, run as its own process.

Sends GET requests at a fixed rate over a few keep-alive connections (as
Prometheus does when it scrapes), written by hand so its own CPU stays small.
Prints one JSON line: requests sent, answers by status, latency percentiles.

    python bench/loadgen.py PORT PATH_TEMPLATE RATE SECONDS [CONNECTIONS] [TARGETS]

PATH_TEMPLATE may hold ``{i}``: the request number modulo TARGETS.
"""

from __future__ import annotations

import asyncio
import json
import statistics
import sys
import time


async def read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (Content-Length or chunked); its status."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    if b"content-length:" in lower:
        length = int(lower.split(b"content-length:")[1].split(b"\r\n")[0])
        await reader.readexactly(length)
    elif b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).strip(), 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def run(
    port: int, template: str, rate: float, seconds: float, connections: int, targets: int
) -> dict[str, object]:
    total = int(rate * seconds)
    start = time.monotonic() + 0.2
    latencies: list[float] = []
    statuses: dict[int, int] = {}

    async def worker(first: int) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            for n in range(first, total, connections):
                delay = start + n / rate - time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)
                path = template.format(i=n % targets)
                request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n"
                sent = time.perf_counter()
                writer.write(request.encode())
                status = await read_response(reader)
                latencies.append(time.perf_counter() - sent)
                statuses[status] = statuses.get(status, 0) + 1
        finally:
            writer.close()

    await asyncio.wait_for(
        asyncio.gather(*(worker(i) for i in range(connections))), seconds * 3 + 30
    )
    cuts = statistics.quantiles(latencies, n=100) if len(latencies) > 1 else [0.0] * 99
    return {
        "sent": len(latencies),
        "statuses": statuses,
        "p50_ms": cuts[49] * 1000,
        "p99_ms": cuts[98] * 1000,
    }


def main() -> int:
    port, template, rate, seconds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
    connections = int(sys.argv[5]) if len(sys.argv) > 5 else 8
    targets = int(sys.argv[6]) if len(sys.argv) > 6 else 1
    summary = asyncio.run(
        run(int(port), template, float(rate), float(seconds), connections, targets)
    )
    print(json.dumps(summary))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
