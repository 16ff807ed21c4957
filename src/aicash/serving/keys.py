"""API keys: created once and shown once; only a SHA-256 hash and a short prefix are stored.

Verification asks the database for the rows with the key's prefix (not secret: `aicash keys list` shows it) and
compares the presented key's hash with each stored hash under it with `hmac.compare_digest`, so no comparison on
the secret part depends on how much of it matches. The database is asked on every request, so a revoked key fails
at once on every replica. If the database is unreachable, keys verified in the last `grace_seconds` still pass,
and other keys are checked against the published key snapshot (`aicash.serving.key_snapshot`), so that
predictions keep answering through a database outage, also on a replica that started during it.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
import threading
import time
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
    """Checks presented keys against the database; during a database outage, against a short grace cache of keys
    verified recently, then against `fallback` (a digest -> principal lookup such as `KeySnapshot.lookup`)."""

    def __init__(
        self, engine: Engine, grace_seconds: float = 300.0,
        fallback: Callable[[str], Principal | None] | None = None,
    ) -> None:
        self.engine = engine
        self.grace_seconds = grace_seconds
        self.fallback = fallback
        self._recent: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def verify(self, key: str | None) -> Principal | None:
        """The key's principal, or None when the key is missing, unknown or revoked; KeysUnavailableError when the
        database is unreachable and the key was not verified in the last `grace_seconds`."""
        if not key or not key.startswith(KEY_PREFIX) or len(key) > 128:
            return None
        digest = hash_key(key)
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
        return principal

    def _from_grace(self, digest: str) -> Principal | None:
        with self._lock:
            hit = self._recent.get(digest)
        if hit and time.monotonic() - hit[1] < self.grace_seconds:
            return hit[0]
        if self.fallback is not None:
            return self.fallback(digest)
        raise KeysUnavailableError("API keys cannot be verified: the database is unreachable; retry shortly")
