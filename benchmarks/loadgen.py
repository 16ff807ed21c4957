"""A closed-loop HTTP/1.1 load generator that keeps every raw latency: N keep-alive connections, each sending
its next request as soon as the previous answer has arrived, for a warm-up and then a measured period.

No coordinated-omission correction (unlike wrk): the percentiles are of the latencies observed. It is small and
cheap (asyncio streams on uvloop, requests formatted from a template, ~30-50 µs of CPU per request) so that one
core of load generation can drive a server on the other core.

    python -m benchmarks.loadgen --url http://127.0.0.1:3000/predict --concurrency 8 --duration 10 \
        --warmup 3 --header "X-API-Key: aic_..." --body '{"symbol": "EURUSD", "indicators": {"rsi_value": %RSI%}}'

Prints one JSON object: concurrency, requests, total_requests (warm-up included), errors, statuses, seconds,
rps, p50_ms, p90_ms, p99_ms, max_ms; `--latencies FILE.npy` also keeps every measured latency.
`%RSI%` and `%ADX%` in the body are replaced by values unique to each request (so no answer comes from a cache).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import time
from collections import Counter
from collections.abc import Callable
from urllib.parse import urlsplit

import numpy as np


def request_factory(url: str, body: str | None, headers: list[str]) -> Callable[[int], bytes]:
    """A function of the request's sequence number giving the raw request bytes."""
    parts = urlsplit(url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    method = "POST" if body is not None else "GET"
    head = f"{method} {path} HTTP/1.1\r\nHost: {parts.netloc}\r\nConnection: keep-alive\r\n"
    head += "".join(f"{h.strip()}\r\n" for h in headers)
    if body is None:
        raw = (head + "\r\n").encode()
        return lambda _: raw
    head += "Content-Type: application/json\r\n"

    def make(seq: int) -> bytes:
        # Distinct values per request: RSI in [20, 80), ADX in [10, 50), both with 6 decimals.
        text = body.replace("%RSI%", f"{20 + (seq * 7919 % 600_000) / 10_000:.6f}")
        text = text.replace("%ADX%", f"{10 + (seq * 104_729 % 400_000) / 10_000:.6f}").encode()
        return (head + f"Content-Length: {len(text)}\r\n\r\n").encode() + text

    return make


async def read_response(reader: asyncio.StreamReader) -> int:
    """Reads one response (Content-Length or chunked body); returns its status code."""
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    lower = head.lower()
    at = lower.find(b"\r\ncontent-length:")
    if at >= 0:
        end = lower.index(b"\r\n", at + 2)
        await reader.readexactly(int(lower[at + 17 : end]))
    elif b"transfer-encoding: chunked" in lower:
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            await reader.readexactly(size + 2)
            if size == 0:
                break
    return status


async def _connection(
    host: str, port: int, make: Callable[[int], bytes], seq: list[int], clock: dict[str, float],
    latencies: list[float], statuses: Counter[int],
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        while (now := time.perf_counter()) < clock["end"]:
            seq[0] += 1
            request = make(seq[0])
            start = time.perf_counter()
            writer.write(request)
            try:
                status = await asyncio.wait_for(read_response(reader), timeout=clock["timeout"])
            except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                if now >= clock["measure_from"]:
                    statuses[0] += 1  # 0: no answer within the timeout, or the connection broke
                writer.close()
                reader, writer = await asyncio.open_connection(host, port)
                continue
            seq[1] += 1
            if now >= clock["measure_from"]:
                latencies.append(time.perf_counter() - start)
                statuses[status] += 1
    finally:
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def run_load(
    url: str, concurrency: int, duration: float, warmup: float = 2.0, body: str | None = None,
    headers: list[str] | None = None, timeout: float = 10.0, latencies_out: str | None = None,
) -> dict[str, float | int | dict[str, int]]:
    """Drive `url` with `concurrency` connections for `warmup` + `duration` seconds; the measured figures (and
    every measured latency in ms, as a NumPy .npy file, when `latencies_out` names one)."""
    parts = urlsplit(url)
    make = request_factory(url, body, headers or [])
    start = time.perf_counter()
    clock = {"measure_from": start + warmup, "end": start + warmup + duration, "timeout": timeout}
    latencies: list[float] = []
    statuses: Counter[int] = Counter()
    seq = [0, 0]  # requests sent, answers received (warm-up included)
    await asyncio.gather(*(
        _connection(parts.hostname or "127.0.0.1", parts.port or 80, make, seq, clock, latencies, statuses)
        for _ in range(concurrency)
    ))
    measured = max(time.perf_counter() - clock["measure_from"], 1e-9)
    ms = np.asarray(latencies) * 1000.0 if latencies else np.zeros(1)
    p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
    ok = statuses.get(200, 0)
    if latencies_out is not None:
        np.save(latencies_out, ms if latencies else np.zeros(0))
    return {
        "concurrency": concurrency, "requests": len(latencies), "total_requests": seq[1],
        "errors": sum(statuses.values()) - ok,
        "statuses": {str(k): v for k, v in sorted(statuses.items())}, "seconds": round(measured, 2),
        "rps": ok / measured, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99, "max_ms": float(ms.max()),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--concurrency", type=int, default=1)
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of load before measuring")
    parser.add_argument("--body", help="JSON body template (POST); %%RSI%% and %%ADX%% vary per request")
    parser.add_argument("--header", action="append", default=[], help="'Name: value', repeatable")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds before a request counts as failed")
    parser.add_argument("--latencies", help="write every measured latency (ms) to this .npy file")
    args = parser.parse_args()
    try:
        from uvloop import new_event_loop as loop_factory
    except ImportError:  # plain asyncio: slower, still correct
        loop_factory = None
    with asyncio.Runner(loop_factory=loop_factory) as runner:
        result = runner.run(run_load(args.url, args.concurrency, args.duration, args.warmup, args.body,
                                     args.header, args.timeout, args.latencies))
    print(json.dumps(result))


if __name__ == "__main__":
    main()
