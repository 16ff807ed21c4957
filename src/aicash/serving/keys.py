"""API keys: created once and shown once; only a SHA-256 hash and a short prefix are stored.

A `KeyVerifier` keeps the active keys in memory (SHA-256 digest -> principal), read from `api_keys` when it starts
and re-read by a daemon thread every `refresh_seconds` (0.5 s), so a known key is verified without asking the
database and a revoked key is refused within about 0.5 s (under 1 s) on every replica, whoever revoked it (`aicash
keys revoke` or plain SQL: the thread reads the table, it does not wait for an event). A key not in memory (made a
moment ago, or unknown) is looked up in the database as before: the rows with the key's prefix (not secret: `aicash
keys list` shows it), each stored hash compared with the presented key's hash by `hmac.compare_digest`, so no
comparison on the secret part depends on how much of it matches. If the database is unreachable, the keys in memory
pass while they were read less than `grace_seconds` ago, keys verified in the last `grace_seconds` still pass, and
other keys are checked against the published key snapshot (`aicash.serving.key_snapshot`), so that predictions keep
answering through a database outage, also on a replica that started during it.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, bindparam, select, update
from sqlalchemy.exc import IntegrityError, OperationalError, SQLAlchemyError

from aicash.db.engine import session_scope
from aicash.db.models import ApiKey, AuditLog

KEY_PREFIX = "aic_"
NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PREFIX_LENGTH = 10  # what `prefix` keeps: "aic_" and 6 random characters
# Built once: constructing the select on every request costs ~4x the query itself (measured ~90 of 125 µs).
_BY_PREFIX = select(ApiKey.name, ApiKey.key_hash, ApiKey.is_admin, ApiKey.revoked_at).where(
    ApiKey.prefix == bindparam("prefix")
)
# What the refresh reads: every active key (the serving role's row-level policy shows it no other row anyway).
_ACTIVE = select(ApiKey.key_hash, ApiKey.name, ApiKey.is_admin).where(ApiKey.revoked_at.is_(None))

log = logging.getLogger(__name__)


class ApiKeyError(ValueError):
    """A key name that is invalid, taken or unknown."""


@dataclass(frozen=True)
class Principal:
    """Who is calling: the key's name and whether it may use admin operations."""

    name: str
    is_admin: bool


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def create_key(engine: Engine, name: str, *, admin: bool = False, actor: str = "cli") -> str:
    """A new key for NAME; the plain key is returned once and never stored."""
    if not NAME_PATTERN.fullmatch(name):
        raise ApiKeyError(f"NAME {name[:40]!r} is invalid: use 1-64 letters, digits, '.', '_' or '-'")
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    try:
        with session_scope(engine) as session:
            session.add(ApiKey(name=name, key_hash=hash_key(key), prefix=key[:PREFIX_LENGTH], is_admin=admin))
            session.add(AuditLog(actor=actor, action="key.create", target=name, details={"admin": admin}))
    except IntegrityError:
        raise ApiKeyError(f"a key named {name!r} already exists: revoke it first or pick another NAME") from None
    return key


def revoke_key(engine: Engine, name: str, *, actor: str = "cli") -> None:
    with session_scope(engine) as session:
        done = session.execute(
            update(ApiKey).where(ApiKey.name == name, ApiKey.revoked_at.is_(None)).values(revoked_at=datetime.now(UTC))
        )
        if done.rowcount == 0:  # type: ignore[attr-defined]
            raise ApiKeyError(f"no active key named {name!r}: see `aicash keys list`")
        session.add(AuditLog(actor=actor, action="key.revoke", target=name, details={}))


def list_keys(engine: Engine) -> list[ApiKey]:
    with session_scope(engine) as session:
        return list(session.scalars(select(ApiKey).order_by(ApiKey.created_at)))


class KeysUnavailableError(RuntimeError):
    """The database cannot be reached and the key was not verified recently: it can be neither accepted nor
    refused (the caller answers 503, not 401)."""


class KeyVerifier:
    """Checks presented keys against the active keys held in memory (re-read from the database every
    `refresh_seconds` by a daemon thread), and a key not held there against the database; during a database outage,
    against the keys in memory while they were read less than `grace_seconds` ago, then a short grace cache of keys
    verified recently, then `fallback` (a digest -> principal lookup such as `KeySnapshot.lookup`). `close()` stops
    the thread."""

    def __init__(
        self, engine: Engine, grace_seconds: float = 300.0,
        fallback: Callable[[str], Principal | None] | None = None, refresh_seconds: float = 0.5,
    ) -> None:
        self.engine = engine
        self.grace_seconds = grace_seconds
        self.fallback = fallback
        self.refresh_seconds = refresh_seconds
        self._recent: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()
        # (active keys by digest, monotonic time of the read): replaced whole, never changed in place, so verify()
        # reads it without the lock. Time -inf: never read.
        self._active: tuple[dict[str, Principal], float] = ({}, float("-inf"))
        self._generation = 0  # counts reads, so a lookup's hit never outlives the read that came after it
        self._failing = False
        self._stop = threading.Event()
        self._refresh()
        # the thread holds the verifier weakly: one dropped without close() stops it at its next refresh
        self._thread = threading.Thread(
            target=_refresh_loop, args=(weakref.ref(self), self._stop, refresh_seconds),
            name="aicash-key-refresh", daemon=True,
        )
        self._thread.start()

    def close(self) -> None:
        """Stop the refresh thread (waits for a read under way); calling it again does nothing."""
        self._stop.set()
        if self._thread.is_alive() and self._thread is not threading.current_thread():
            self._thread.join(timeout=max(10.0, 2 * self.refresh_seconds))

    def verify(self, key: str | None) -> Principal | None:
        """The key's principal, or None when the key is missing, unknown or revoked; KeysUnavailableError when the
        database is unreachable, the key was neither read nor verified in the last `grace_seconds`, and there is no
        `fallback` to ask."""
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 128:
            return None
        digest = hash_key(key)
        active, read_at = self._active
        # A dict lookup by the digest, not compare_digest over every stored hash: the lookup's timing depends only
        # on the presented key's SHA-256 (and Python's per-process salted string hash), which a caller cannot steer
        # towards a stored digest, and learning how much of a digest a guess matches gives no key (preimage
        # resistance).
        principal = active.get(digest)
        if principal is not None and time.monotonic() - read_at < self.grace_seconds:
            return principal
        return self._lookup(key, digest)

    def _lookup(self, key: str, digest: str) -> Principal | None:
        """The database path: the rows with the key's prefix, each hash compared in constant time."""
        generation = self._generation
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(_BY_PREFIX, {"prefix": key[:PREFIX_LENGTH]}).all()
        except (OperationalError, SQLAlchemyError):
            return self._from_grace(digest)
        # every row under the prefix is compared (constant time each), not only up to the first match
        matches = [r for r in rows if hmac.compare_digest(r.key_hash.encode(), digest.encode())]
        row = matches[0] if matches else None
        if row is None or row.revoked_at is not None:
            with self._lock:
                self._recent.pop(digest, None)
            return None
        principal = Principal(row.name, bool(row.is_admin))
        with self._lock:
            self._recent[digest] = (principal, time.monotonic())
            if self._generation == generation:  # no read since the query: the next one will confirm it or drop it
                active, read_at = self._active
                self._active = ({**active, digest: principal}, read_at)
        return principal

    def _refresh(self) -> None:
        """Read the active keys; on failure keep the last read (logged once when reads start failing, once when
        they succeed again). Never raises."""
        started = time.monotonic()  # the read is as old as its start: grace counts from there
        try:
            with self.engine.connect() as conn:
                rows = conn.execute(_ACTIVE).all()
            active = {r.key_hash: Principal(r.name, bool(r.is_admin)) for r in rows}
        except Exception as exc:  # the thread must outlive any error: it is reported, and the next read retries
            if not self._failing:
                self._failing = True
                reason = f"{type(exc).__name__}: {next(iter(str(exc).splitlines()), '')[:200]}"
                log.warning("API keys cannot be read from the database (%s); the keys read last pass for %.0f s "
                            "after that read, other keys as during an outage", reason, self.grace_seconds)
            return
        with self._lock:
            self._active = (active, started)
            self._generation += 1
        if self._failing:
            self._failing = False
            log.info("API keys are read from the database again (%d active)", len(active))

    def _from_grace(self, digest: str) -> Principal | None:
        with self._lock:
            hit = self._recent.get(digest)
        if hit and time.monotonic() - hit[1] < self.grace_seconds:
            return hit[0]
        if self.fallback is not None:
            return self.fallback(digest)
        raise KeysUnavailableError("API keys cannot be verified: the database is unreachable; retry shortly")


def _refresh_loop(ref: weakref.ref[KeyVerifier], stop: threading.Event, every: float) -> None:
    """Re-read the active keys every `every` seconds until `stop` is set or the verifier is gone."""
    while not stop.wait(every):
        verifier = ref()
        if verifier is None:
            return
        try:
            verifier._refresh()
        except Exception:  # _refresh catches its own errors; this is the last guard of the thread
            log.exception("refreshing the API keys failed")
        del verifier
