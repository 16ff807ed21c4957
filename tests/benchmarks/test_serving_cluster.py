"""The serving benchmark in cluster mode: its home prepared on PostgreSQL and served from there, the database
server's CPU counted beside the service's, and the rows that report it."""

from __future__ import annotations

from pathlib import Path

import httpx
import numpy as np
import pytest
from sqlalchemy import create_engine, func, select, text

from aicash.db.models import Prediction
from benchmarks.bench_serving import (
    DATABASES,
    RATE_LIMIT_BACKENDS,
    cluster_home,
    combined,
    database_backends,
    database_server,
    rows_of,
    service_name,
)
from tests.support.polling import seconds_until
from tests.support.service import start_service, stop_service


def test_one_service_per_database_and_rate_limit_backend(monkeypatch: pytest.MonkeyPatch) -> None:
    names = [service_name(d, b) for d in DATABASES for b in RATE_LIMIT_BACKENDS]
    assert names == ["service", "service-redis", "service-postgres", "service-postgres-redis"]
    monkeypatch.setenv("BENCH_SERVING_DATABASE", "postgresql, sqlite")
    assert database_backends() == ["postgresql", "sqlite"]
    monkeypatch.setenv("BENCH_SERVING_DATABASE", "mysql")
    with pytest.raises(SystemExit, match="sqlite, postgresql or both"):
        database_backends()


def test_a_remote_database_server_is_not_looked_for() -> None:
    assert database_server("postgresql://aicash@db.cluster.internal:5432/aicash") is None


def _round(cpu: float, database: float | None = None) -> dict[str, object]:
    figures: dict[str, object] = {"concurrency": 8, "errors": 0, "statuses": {"200": 100}, "seconds": 1.0,
                                  "rps": 100.0, "total_requests": 100, "cpu_seconds": cpu}
    return figures | ({} if database is None else {"database_cpu_seconds": database})


def test_the_database_servers_cpu_is_reported_per_request(tmp_path: Path) -> None:
    latencies = tmp_path / "latencies.npy"
    np.save(latencies, np.asarray([1.0, 2.0]))
    plain = combined([_round(0.08), _round(0.08)], [latencies, latencies])
    cluster = combined([_round(0.15, 0.03), _round(0.13, 0.01)], [latencies, latencies])
    assert "database_cpu_ms_per_request" not in plain
    assert cluster["database_cpu_ms_per_request"] == pytest.approx(0.04 * 1000 / 200)
    results = {"bare": [plain], "floor": [plain], "service": [plain], "service-postgres": [cluster]}
    rows = {r["benchmark"]: r for r in rows_of(results, (0.1, 0.2), 2)}
    prefix = "BentoML service (cluster mode, PostgreSQL) c=8"
    assert rows[f"{prefix}: database server CPU per request"]["figure"] == pytest.approx(0.2)
    assert rows[f"{prefix}: server CPU per request"]["figure"] == pytest.approx(1.4)
    above = rows["service (cluster mode, PostgreSQL) CPU per request above the floor's, c=8"]
    assert above["figure"] == pytest.approx(0.6) and above["met"] is False
    assert "BentoML service c=8: database server CPU per request" not in rows


@pytest.mark.postgres
def test_the_cluster_home_is_served_from_postgresql(fresh_postgres_db: str, tmp_path: Path) -> None:
    """As the benchmark runs it: the home prepared on the database (registry, keys, Feast's online store there), the
    service started with DATABASE_URL, its prediction log written there by sessions whose CPU is the server's."""
    server = database_server(fresh_postgres_db)
    assert server is not None and "postgres" in server.name()
    home = tmp_path / "cluster"
    key, env = cluster_home(home, fresh_postgres_db)
    running = start_service(home, env=env | {"RATE_LIMIT_BACKEND": "memory"})
    engine = create_engine(fresh_postgres_db)
    try:
        for i in range(20):
            body = {"symbol": "EURUSD", "indicators": {"rsi_value": 30.0 + i}}
            answer = httpx.post(f"{running.url}/predict", json=body, headers={"X-API-Key": key}, timeout=30)
            assert answer.status_code == 200, answer.text

        def logged() -> int:
            with engine.connect() as conn:
                return int(conn.execute(select(func.count()).select_from(Prediction)).scalar_one())

        seconds_until(lambda: logged() == 20, limit=10.0)
        with engine.connect() as conn:  # the service's sessions are the server's children: their CPU is counted
            sessions = set(conn.execute(text(
                "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )).scalars())
        assert sessions and sessions <= {child.pid for child in server.children(recursive=True)}
    finally:
        stop_service(running)
        engine.dispose()
    assert not (home / "aicash.db").exists()  # nothing went to a SQLite file of the home


def test_the_cpu_of_descendants_that_exited_is_counted() -> None:
    """A database server's sessions and autovacuum workers come and go; what they used stays in the count."""
    import subprocess
    import sys

    import psutil

    from benchmarks.bench_serving import _tree_cpu_seconds

    me = psutil.Process()
    before = _tree_cpu_seconds(me)
    burn = "import time\nend = time.process_time() + 0.3\nwhile time.process_time() < end: pass"
    subprocess.run([sys.executable, "-c", burn], check=True)  # noqa: S603 - exits and is waited for
    assert _tree_cpu_seconds(me) - before >= 0.25
