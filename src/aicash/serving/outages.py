"""Which exceptions mean "a dependency is unreachable" (an outage to wait out) rather than a bug.

Connection and timeout errors of the clients the serving path really goes through: SQLAlchemy and psycopg
(PostgreSQL: registry, keys, Feast's online store), redis (Feast's online store, rate limits), botocore (S3: the
Feast registry, artifacts) and the OS's own. Matched by class name, so the domain package imports none of them;
anything else (a KeyError, a TypeError, ...) is a bug and must surface.
"""

from __future__ import annotations

OUTAGE_CLASSES = frozenset({
    "sqlalchemy.exc.OperationalError",
    "sqlalchemy.exc.InterfaceError",
    "sqlalchemy.exc.DisconnectionError",
    "sqlalchemy.exc.TimeoutError",  # the connection pool's
    "psycopg.OperationalError",  # psycopg_pool.PoolTimeout and psycopg.errors.ConnectionTimeout included
    "psycopg.InterfaceError",
    "psycopg2.OperationalError",
    "psycopg2.InterfaceError",
    "redis.exceptions.ConnectionError",
    "redis.exceptions.TimeoutError",
    "botocore.exceptions.ConnectionError",  # EndpointConnectionError, ConnectTimeoutError included
    "botocore.exceptions.HTTPClientError",  # ReadTimeoutError included
    "builtins.OSError",  # ConnectionError, TimeoutError, socket errors
    "builtins.TimeoutError",
})


def is_outage(exc: BaseException) -> bool:
    """Whether `exc` (or an exception it was raised from) is a connection or timeout error."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        if any(f"{k.__module__}.{k.__qualname__}" in OUTAGE_CLASSES for k in type(current).__mro__):
            return True
        current = current.__cause__
    return False
