"""Per-key rate limits: a token bucket per API key, held in each replica's memory or shared by all of them in Redis.

`RATE_LIMIT_BACKEND=memory` (`RateLimiter`): each replica keeps its own buckets, so with N replicas behind a load
balancer a key can reach up to N × `RATE_LIMIT_PER_MINUTE`. `RATE_LIMIT_BACKEND=redis` (`RedisRateLimiter`): a key's
bucket lives in Redis (`REDIS_URL`) and every replica draws from it, so the limit holds for the whole service.

Both are the same token bucket: `RATE_LIMIT_PER_MINUTE` per key on average, bursts up to the same number, so in
any t seconds a key gets at most burst + rate × t requests. In Redis it is stated as GCRA (the generic cell rate
algorithm): one number per key, the bucket's "theoretical arrival time", which a Lua script reads, compares with
Redis's own clock (`TIME`, so the replicas' clocks do not matter) and advances, atomically and in one round trip.
Chosen over a fixed window (INCR + EXPIRE), which lets a key through twice the limit around a window's edge and
can answer Retry-After up to a whole window, and over a sliding log (a sorted set of timestamps), which is exact
per window but keeps up to the limit's count of entries per key and costs more per call; GCRA keeps the memory
limiter's behaviour exactly, so the backend changes only where the bucket is held, not what a key may send.

Redis down (refused, unreachable, slower than `timeout`): the request is decided by this replica's own buckets
instead, the limit is again per replica, nothing is refused for it and nothing fails; a warning is logged once per
outage and `aicash_rate_limit_fallbacks_total` counts every request so decided. Redis is tried again after
`retry_after` seconds (one request then pays at most `timeout`), not on every request.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit

import redis
from prometheus_client import Counter
from redis.backoff import NoBackoff
from redis.commands.core import Script
from redis.retry import Retry

from aicash.settings import Settings

log = logging.getLogger(__name__)

FALLBACKS = Counter(
    "aicash_rate_limit_fallbacks_total",
    "Requests whose rate limit this replica decided alone because Redis did not answer (RATE_LIMIT_BACKEND=redis)",
)

# KEYS[1]: the key's theoretical arrival time (TAT, µs of Redis's clock). ARGV[1]: µs per request (60e6 / the
# per-minute rate); ARGV[2]: the bucket's depth in µs (burst × ARGV[1]). Returns 0 (go on, TAT advanced by one
# request) or the µs to wait. The key expires when the bucket is full again, which is what a missing key means.
_GCRA = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) * 1000000 + tonumber(clock[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]))
if tat == nil or tat < now then tat = now end
local new_tat = tat + interval
local wait = new_tat - now - tonumber(ARGV[2])
if wait > 0 then return math.ceil(wait) end
redis.call('SET', KEYS[1], new_tat, 'PX', math.max(1, math.ceil((new_tat - now) / 1000)))
return 0
"""


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """`rate_per_minute` requests per key on average, with bursts up to `burst`, in this process's memory."""

    def __init__(self, rate_per_minute: float, burst: int | None = None) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = float(burst if burst is not None else max(1, int(rate_per_minute)))
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def acquire(self, key: str) -> float:
        """0.0 when the request may go on, else the seconds to wait before retrying."""
        now = time.monotonic()
        with self._lock:
            bucket = self._buckets.setdefault(key, _Bucket(self.burst, now))
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.updated) * self.rate)
            bucket.updated = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / self.rate if self.rate > 0 else math.inf


class RedisRateLimiter(RateLimiter):
    """The same bucket per key, shared through Redis at `url` by every process using it; while Redis does not
    answer, the inherited in-memory buckets decide (see the module's docstring)."""

    def __init__(self, url: str, rate_per_minute: float, burst: int | None = None, *, timeout: float = 0.1,
                 retry_after: float = 5.0, prefix: str = "aicash:ratelimit:") -> None:
        super().__init__(rate_per_minute, burst)
        self.retry_after = retry_after
        self.prefix = prefix
        self.url, self.timeout = url, timeout
        parts = urlsplit(url)
        self.where = f"{parts.hostname}:{parts.port or 6379}{parts.path or '/0'}"  # for the log: no password
        self._client: redis.Redis | None = None  # connected on first use, so a replica starts while Redis is down
        self._script: Script | None = None
        self._args = (60e6 / rate_per_minute, self.burst * 60e6 / rate_per_minute)
        self._down_until: float | None = None  # monotonic time of the next try while Redis is down, else None
        self._state = threading.Lock()

    def acquire(self, key: str) -> float:
        """0.0 when the request may go on, else the seconds to wait before retrying; never raises for Redis."""
        down_until = self._down_until
        if down_until is not None and time.monotonic() < down_until:
            FALLBACKS.inc()
            return super().acquire(key)
        try:
            script = self._script or self._connect()
            wait_us = script(keys=[self.prefix + key], args=self._args)
        except redis.RedisError as exc:
            self._went_down(exc)
            FALLBACKS.inc()
            return super().acquire(key)
        if down_until is not None:
            with self._state:
                self._down_until = None
            log.info("Redis at %s answers again: rate limits hold across replicas again", self.where)
        return int(wait_us) / 1e6

    def _connect(self) -> Script:
        """One connection, no retries, short timeouts: a request waits at most `timeout` for Redis, once per
        `retry_after` while it is down. One connection (redis-py locks it per command) rather than a pool: the
        middleware calls from one thread, the event loop, and the pool's bookkeeping cost about a third of the
        client's CPU per call here."""
        client = redis.Redis.from_url(self.url, socket_timeout=self.timeout, socket_connect_timeout=self.timeout,
                                      retry=Retry(NoBackoff(), 0), single_connection_client=True, lib_name=None,
                                      lib_version=None)
        self._client, self._script = client, client.register_script(_GCRA)
        return self._script

    def _went_down(self, exc: redis.RedisError) -> None:
        with self._state:
            first = self._down_until is None
            self._down_until = time.monotonic() + self.retry_after
        if first:
            log.warning("Redis at %s did not answer (%s: %s): rate limits are held per replica until it does; "
                        "trying it again every %g s", self.where, type(exc).__name__, exc, self.retry_after)

    def close(self) -> None:
        if self._client is not None:
            self._client.close()


def rate_limiter(settings: Settings) -> RateLimiter:
    """The limiter `RATE_LIMIT_BACKEND` selects, at `RATE_LIMIT_PER_MINUTE` per key."""
    if settings.rate_limit_backend == "redis":
        if settings.redis_url is None:  # the settings refuse this; kept for callers that build Settings by hand
            raise ValueError("RATE_LIMIT_BACKEND=redis needs REDIS_URL")
        return RedisRateLimiter(settings.redis_url.get_secret_value(), settings.rate_limit_per_minute)
    return RateLimiter(settings.rate_limit_per_minute)
