"""The ledger of object-store files already ingested, keyed by bucket, key and ETag (table `ingested_objects`)."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import Connection, Engine, select
from sqlalchemy.dialects import postgresql, sqlite

from aicash.db.models import IngestedObject


@dataclass(frozen=True)
class ObjectVersion:
    """One version of one object: what the ledger records once its rows are stored."""

    bucket: str
    key: str
    etag: str
    size: int
    rows: int = 0


def processed(engine: Engine, bucket: str, prefix: str) -> set[tuple[str, str]]:
    """(key, etag) of every object version under `prefix` that was ingested before."""
    t = IngestedObject.__table__
    query = select(t.c.key, t.c.etag).where(t.c.bucket == bucket, t.c.key.startswith(prefix, autoescape=True))
    with engine.connect() as conn:
        return {(key, etag) for key, etag in conn.execute(query)}


def record(conn: Connection, versions: list[ObjectVersion]) -> None:
    """Add `versions` inside the caller's transaction (the one that stores their rows); a version already there
    (a concurrent run) is left as it is."""
    if not versions:
        return
    dialect = postgresql if conn.dialect.name == "postgresql" else sqlite
    rows = [{"bucket": v.bucket, "key": v.key, "etag": v.etag, "size": v.size, "rows": v.rows} for v in versions]
    conn.execute(dialect.insert(IngestedObject).on_conflict_do_nothing(), rows)
