"""API keys (hash only, revocation within 1 s), rate limits, cache, canary routing."""

from __future__ import annotations

import time

import pytest
from sqlalchemy import select

from aicash.db.models import ApiKey, AuditLog
from aicash.serving.cache import TTLCache
from aicash.serving.keys import ApiKeyError, KeyVerifier, create_key, hash_key, revoke_key
from aicash.serving.ratelimit import RateLimiter
from aicash.serving.routing import bucket_of, route


def refused_after(verifiers: list[KeyVerifier], key: str, limit: float = 1.0) -> float:
    """Seconds until every verifier refuses `key`, polled; fails once `limit` has passed."""
    start = time.monotonic()
    while any(v.verify(key) is not None for v in verifiers):
        assert time.monotonic() - start < limit, f"the key still passes after {limit} s"
        time.sleep(0.01)
    return time.monotonic() - start


def test_only_the_hash_is_stored_and_revocation_holds_within_a_second(engine) -> None:  # type: ignore[no-untyped-def]
    key = create_key(engine, "frontend")
    admin = create_key(engine, "ops", admin=True)
    with engine.connect() as conn:
        stored = conn.execute(select(ApiKey.key_hash, ApiKey.prefix)).all()
        actions = conn.execute(select(AuditLog.action)).scalars().all()
    assert {h for h, _ in stored} == {hash_key(key), hash_key(admin)}
    assert all(key not in (h + p) or p == key[:10] for h, p in stored)
    assert "key.create" in actions

    verifier, other_replica = KeyVerifier(engine), KeyVerifier(engine)
    try:
        assert verifier.verify(key).name == "frontend" and not verifier.verify(key).is_admin
        assert other_replica.verify(admin).is_admin
        assert verifier.verify("aic_wrong") is None and verifier.verify(None) is None
        revoke_key(engine, "frontend")
        assert refused_after([verifier, other_replica], key) < 1.0
    finally:
        verifier.close()
        other_replica.close()
    with pytest.raises(ApiKeyError, match="no active key"):
        revoke_key(engine, "frontend")
    with pytest.raises(ApiKeyError, match="already exists"):
        create_key(engine, "ops")
    with pytest.raises(ApiKeyError, match="NAME"):
        create_key(engine, "bad name!")


def test_keys_cli(cli) -> None:  # type: ignore[no-untyped-def]
    made = cli("keys", "create", "web")
    assert made.exit_code == 0 and "aic_" in made.stdout
    assert cli("keys", "create", "web").exit_code == 2
    listing = cli("keys", "list")
    assert "web" in listing.stdout and made.stdout.strip().split()[-1] not in listing.stdout
    assert cli("keys", "revoke", "web").exit_code == 0
    assert cli("keys", "revoke", "web").exit_code == 2


def test_rate_limiter_allows_burst_then_asks_to_wait() -> None:
    limiter = RateLimiter(rate_per_minute=60, burst=3)
    assert [limiter.acquire("k") for _ in range(3)] == [0.0, 0.0, 0.0]
    wait = limiter.acquire("k")
    assert 0.5 < wait <= 1.0
    assert limiter.acquire("other") == 0.0


def test_cache_expires_and_evicts() -> None:
    cache: TTLCache[int] = TTLCache(ttl_seconds=0.2, max_entries=2)
    cache.put("a", 1)
    cache.put("b", 2)
    assert cache.get("a") == 1
    cache.put("c", 3)  # evicts b, the least recently used
    assert cache.get("b") is None and cache.get("c") == 3
    time.sleep(0.25)
    assert cache.get("a") is None


def test_cache_drops_expired_entries_as_new_ones_arrive() -> None:
    cache: TTLCache[int] = TTLCache(ttl_seconds=0.2)
    for i in range(100):
        cache.put(f"old-{i}", i)
    assert len(cache) == 100
    time.sleep(0.25)
    cache.put("new", 1)  # the 100 expired ones go with it, though nobody asked for them again
    assert len(cache) == 1 and cache.get("new") == 1


def test_routing_is_deterministic_and_proportional() -> None:
    split = [("v2-canary", 10.0), ("v1", 90.0)]
    ids = [f"req-{i}" for i in range(20_000)]
    first = [route(i, split) for i in ids]
    assert first == [route(i, split) for i in ids]
    share = first.count("v2-canary") / len(ids)
    assert 0.09 < share < 0.11
    assert all(0 <= bucket_of(i) < 100 for i in ids[:100])
    assert route("x", [("v1", 100.0)]) == "v1"
    with pytest.raises(LookupError):
        route("x", [])
