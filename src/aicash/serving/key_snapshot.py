"""The API key snapshot: the active keys' hashes, published to the artifact store beside the models.

The database stays the source of truth (every replica re-reads its active keys every 0.5 s and looks up any key
it does not hold, so a revocation holds on every replica within a second). The snapshot is only read while the
database is unreachable, so that a replica started during a database outage can still tell a valid key from an
invalid one. It holds what the database holds (name, SHA-256 hash, admin flag), never a key; `aicash keys create`
and `aicash keys revoke` rewrite it, and every service rewrites it when it starts with the database up.
"""

from __future__ import annotations

import hmac
import json
import threading
import time
from datetime import UTC, datetime

from sqlalchemy import Engine, select

from aicash.db.engine import session_scope
from aicash.db.models import ApiKey
from aicash.registry.artifacts import ArtifactStore
from aicash.serving.keys import KeysUnavailableError, Principal

SNAPSHOT_KEY = "keys/api-keys.json"
FORMAT = 1


def publish_key_snapshot(engine: Engine, store: ArtifactStore) -> int:
    """Write the active keys' hashes to the store; returns how many keys it holds."""
    with session_scope(engine) as session:
        rows = session.execute(
            select(ApiKey.name, ApiKey.key_hash, ApiKey.is_admin).where(ApiKey.revoked_at.is_(None))
        ).all()
    document = {
        "format": FORMAT,
        "written_at": datetime.now(UTC).isoformat(),
        "keys": [{"name": r.name, "key_hash": r.key_hash, "is_admin": bool(r.is_admin)} for r in rows],
    }
    store.put_document(SNAPSHOT_KEY, json.dumps(document, sort_keys=True).encode())
    return len(rows)


def _parse(raw: bytes) -> dict[str, Principal]:
    document = json.loads(raw)
    if document.get("format") != FORMAT:
        raise ValueError(f"unknown key snapshot format {document.get('format')!r}")
    return {k["key_hash"]: Principal(k["name"], bool(k["is_admin"])) for k in document["keys"]}


class KeySnapshot:
    """The published snapshot, read from the store at most every `max_age_seconds` (every `retry_seconds` while
    it cannot be read); the last copy read stays in use when a refresh fails."""

    def __init__(self, store: ArtifactStore, max_age_seconds: float = 60.0, retry_seconds: float = 5.0) -> None:
        self.store = store
        self.max_age_seconds = max_age_seconds
        self.retry_seconds = retry_seconds
        self._keys: dict[str, Principal] | None = None
        self._next_read = 0.0
        self._lock = threading.Lock()

    def lookup(self, digest: str) -> Principal | None:
        """The principal of the key with SHA-256 `digest`, or None when the snapshot does not hold it;
        KeysUnavailableError when no snapshot could be read."""
        keys = self._current()
        if keys is None:
            raise KeysUnavailableError(
                "API keys cannot be verified: the database is unreachable and no key snapshot could be read; "
                "retry shortly")
        for known, principal in keys.items():
            if hmac.compare_digest(known, digest):
                return principal
        return None

    def _current(self) -> dict[str, Principal] | None:
        with self._lock:
            if time.monotonic() >= self._next_read:
                try:
                    raw = self.store.get_document(SNAPSHOT_KEY)
                    if raw is not None:
                        self._keys = _parse(raw)
                    self._next_read = time.monotonic() + self.max_age_seconds
                except Exception:  # the store is down too, or the document is damaged: keep the last copy
                    self._next_read = time.monotonic() + self.retry_seconds
            return self._keys
