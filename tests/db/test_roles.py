"""The migrations' roles on a real PostgreSQL: for each role, through a login in it, every operation on every table
is tried; what the role may do works and the rest is refused with InsufficientPrivilege. Also DDL, the audit log's
append-only rule, row-level security on keys, Feast's tables and the migration on many databases of one server.

`pytest tests/db/test_roles.py -s -k matrix` prints the matrix as tested (docs/security.md has it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from aicash.db import migrate
from aicash.db.engine import make_engine
from tests.support.roles import attempt, login_url, psycopg_dsn

ROLES = ("aicash_serving", "aicash_training", "aicash_monitoring", "aicash_readonly")
OPERATIONS = ("SELECT", "INSERT", "UPDATE", "DELETE", "TRUNCATE")
NOW = "now()"
# A valid new row of each table, as SQL literals (prediction 2 has no outcome yet: the outcome row refers to it).
ROWS: dict[str, dict[str, str]] = {
    "market_candles": {"symbol": "'GBPUSD'", "timeframe": "'1h'", "ts": NOW, "open": "1", "high": "1", "low": "1",
                       "close": "1", "volume": "1"},
    "ingested_objects": {"bucket": "'b'", "key": "'k2'", "etag": "'e'", "size": "1", "rows": "1", "ingested_at": NOW},
    "ml_models": {"name": "'signal-lstm'", "version": "'v-new'", "status": "'candidate'", "traffic_percentage": "0",
                  "metrics": "'{}'", "reasons": "'{}'", "created_at": NOW, "updated_at": NOW},
    "training_runs": {"pipeline": "'lstm-training'", "status": "'running'", "params": "'{}'", "started_at": NOW},
    "predictions": {"request_id": "'r-new'", "symbol": "'EURUSD'", "request": "'{}'", "features": "'{}'",
                    "output": "'{}'", "model_version": "'v1'", "latency_ms": "1", "created_at": NOW},
    "trades": {"symbol": "'EURUSD'", "side": "'BUY'", "entry_time": NOW, "entry_price": "1", "quantity": "1",
               "entry_features": "'{}'", "source": "'import'"},
    "signal_weights": {"version": "99", "weights": "'{}'", "source": "'test'", "metrics": "'{}'", "created_at": NOW},
    "api_keys": {"name": "'new'", "key_hash": "'h-new'", "prefix": "'aic_new'", "is_admin": "false",
                 "created_at": NOW},
    "audit_log": {"at": NOW, "actor": "'test'", "action": "'test.entry'", "details": "'{}'"},
    "prediction_outcomes": {"prediction_id": "2", "model_version": "'v1'", "symbol": "'EURUSD'", "timeframe": "'1h'",
                            "signal": "'BUY'", "confidence": "0.6", "predicted_at": NOW, "horizon_bars": "4",
                            "entry_ts": NOW, "exit_ts": NOW, "entry_close": "1", "exit_close": "1",
                            "realized_return": "0", "realized_signal": "'HOLD'", "correct": "false",
                            "traded": "true", "evaluated_at": NOW},
    "live_metrics": {"model_version": "'v1'", "day": "current_date + 1", "decisions": "1", "correct": "1",
                     "accuracy": "1", "trades": "1", "wins": "1", "updated_at": NOW},
    "drift_reports": {"created_at": NOW, "model_version": "'v1'", "window_start": NOW, "window_end": NOW,
                      "current_rows": "1", "reference_rows": "1", "drift_share_threshold": "0.25",
                      "drifted_share": "0", "detected": "false", "scores": "'{}'", "location": "'x'",
                      "emailed": "false"},
    "experiments": {"pipeline": "'model-search'", "series": "'[]'", "timeframe": "'1h'", "space": "'{}'",
                    "sampler": "'random'", "trials": "1", "selected_trial": "1", "family": "'linear'",
                    "params": "'{}'", "search": "'{}'", "reasons": "'[]'", "created_at": NOW},
    "experiment_trials": {"experiment_id": "1", "number": "2", "family": "'gru'", "params": "'{}'",
                          "selected": "false"},
    "alembic_version": {"version_num": "'other'"},
}
UPDATED = {"ml_models": "status", "training_runs": "status", "drift_reports": "emailed", "api_keys": "revoked_at",
           "experiments": "model_version", "experiment_trials": "selected",
           "audit_log": "details", "alembic_version": "version_num"}

A = frozenset(OPERATIONS) - {"TRUNCATE"}
# What each role may do to each table (SELECT: every column; column grants are checked in COLUMNS). Anything else
# must be refused. Nobody gets TRUNCATE; audit_log gets no UPDATE or DELETE from anyone.
EXPECTED: dict[str, dict[str, frozenset[str]]] = {
    "aicash_serving": {"ml_models": frozenset({"SELECT"}), "api_keys": frozenset({"SELECT"}),
                       "signal_weights": frozenset({"SELECT"}), "predictions": frozenset({"INSERT"}),
                       "audit_log": frozenset({"INSERT"}), "alembic_version": frozenset({"SELECT"})},
    "aicash_training": {"market_candles": frozenset({"SELECT"}), "trades": frozenset({"SELECT"}),
                        "ml_models": frozenset({"SELECT", "INSERT", "UPDATE"}),
                        "training_runs": frozenset({"SELECT", "INSERT", "UPDATE"}),
                        "signal_weights": frozenset({"SELECT", "INSERT"}),
                        "audit_log": frozenset({"SELECT", "INSERT"}), "alembic_version": frozenset({"SELECT"}),
                        "experiments": frozenset({"SELECT", "INSERT", "UPDATE"}),
                        "experiment_trials": frozenset({"SELECT", "INSERT", "UPDATE"})},
    "aicash_monitoring": {"predictions": frozenset({"SELECT"}),
                          "prediction_outcomes": frozenset({"SELECT", "INSERT"}),
                          "live_metrics": frozenset({"SELECT", "INSERT", "DELETE"}),
                          "drift_reports": frozenset({"SELECT", "INSERT", "UPDATE"}),
                          "market_candles": frozenset({"SELECT"}), "ml_models": frozenset({"SELECT", "UPDATE"}),
                          "training_runs": frozenset({"SELECT", "INSERT", "UPDATE"}),
                          "signal_weights": frozenset({"SELECT"}), "audit_log": frozenset({"SELECT", "INSERT"}),
                          "alembic_version": frozenset({"SELECT"})},
    "aicash_readonly": {table: frozenset({"SELECT"}) for table in ROWS if table not in {"api_keys", "audit_log"}},
}
# Column grants: (role, table, columns, allowed).
COLUMNS = [
    ("aicash_readonly", "api_keys", "id, name, prefix, is_admin, created_at, revoked_at", True),
    ("aicash_readonly", "api_keys", "key_hash", False),
    ("aicash_readonly", "audit_log", "id, at, actor, action, target", True),
    ("aicash_readonly", "audit_log", "details", False),
    ("aicash_serving", "predictions", "id, request_id, created_at", True),
    ("aicash_serving", "predictions", "features", False),
    ("aicash_serving", "audit_log", "id", True),
    ("aicash_serving", "audit_log", "actor, details", False),
]


def _database(server_url: str) -> str:
    name = f"aicash_roles_{uuid.uuid4().hex[:10]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _drop(url: str) -> None:
    admin = create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{make_url(url).database}" WITH (FORCE)'))
    admin.dispose()


def _insert(table: str, row: dict[str, str]) -> str:
    return f"INSERT INTO {table} ({', '.join(row)}) VALUES ({', '.join(row.values())})"  # noqa: S608 - constants


def _seed(url: str) -> None:
    """As the owner: two predictions (one with an outcome), a model, an experiment, an active and a revoked key, an
    admin.call entry with no status yet, and a Feast table made after the migration."""
    engine = make_engine(url)
    migrate.upgrade(engine)
    with engine.begin() as conn:
        for request_id in ("r1", "r2"):
            conn.execute(text(_insert("predictions", {**ROWS["predictions"], "request_id": f"'{request_id}'"})))
        conn.execute(text(_insert("prediction_outcomes", {**ROWS["prediction_outcomes"], "prediction_id": "1"})))
        conn.execute(text(_insert("ml_models", {**ROWS["ml_models"], "version": "'v1'"})))
        conn.execute(text(_insert("experiments", ROWS["experiments"])))  # experiment 1: the new trial's parent
        conn.execute(text(_insert("api_keys", {**ROWS["api_keys"], "name": "'live'", "key_hash": "'h1'"})))
        conn.execute(text(_insert("api_keys", {**ROWS["api_keys"], "name": "'gone'", "key_hash": "'h2'",
                                                "revoked_at": NOW})))
        conn.execute(text(_insert("audit_log", {**ROWS["audit_log"], "action": "'admin.call'",
                                                 "details": """'{"status": null}'"""})))
        conn.execute(text("CREATE TABLE feast.aicash_probe_view (entity_key bytea, value bytea)"))
        conn.execute(text("INSERT INTO feast.aicash_probe_view VALUES ('k', 'v')"))
    engine.dispose()


@pytest.fixture(scope="module")
def prepared(postgres_url: str) -> Iterator[dict[str, str]]:
    """A migrated, seeded database and, per role, the URL of a login in it."""
    url = _database(postgres_url)
    try:
        _seed(url)
        yield {"owner": url, **{role: login_url(url, role) for role in ROLES}}
    finally:
        _drop(url)


def statements(table: str) -> dict[str, str]:
    column = UPDATED.get(table, next(iter(ROWS[table])))
    fixed = {"status": "'archived'", "emailed": "true", "revoked_at": NOW, "details": "'{}'", "version_num": "'x'",
             "model_version": "'v1'", "selected": "true"}
    value = fixed[column] if column in fixed else ROWS[table][column]
    return {
        "SELECT": f"SELECT * FROM {table} LIMIT 1",  # noqa: S608 - constants
        "INSERT": _insert(table, ROWS[table]),
        "UPDATE": f"UPDATE {table} SET {column} = {value} WHERE false",  # noqa: S608
        "DELETE": f"DELETE FROM {table} WHERE false",  # noqa: S608
        "TRUNCATE": f"TRUNCATE {table}",
    }


def matrix_as_tested(prepared: dict[str, str]) -> dict[str, dict[str, frozenset[str]]]:
    return {role: {table: frozenset(op for op, sql in statements(table).items() if attempt(prepared[role], sql))
                   for table in ROWS} for role in ROLES}


def render(matrix: dict[str, dict[str, frozenset[str]]]) -> str:
    """The matrix as a Markdown table: S I U D T, '-' where refused."""
    head = "| table | " + " | ".join(f"`{r}`" for r in ROLES) + " |"
    lines = [head, "|---" * (len(ROLES) + 1) + "|"]
    for table in ROWS:
        cells = ["".join(op[0] if op in matrix[r][table] else "-" for op in OPERATIONS) for r in ROLES]
        lines.append(f"| `{table}` | " + " | ".join(f"`{c}`" for c in cells) + " |")
    return "\n".join(lines)


def test_matrix_of_privileges(prepared: dict[str, str]) -> None:
    matrix = matrix_as_tested(prepared)
    print("\n" + render(matrix))  # noqa: T201 - the matrix as tested, for docs/security.md
    expected = {role: {table: EXPECTED[role].get(table, frozenset()) for table in ROWS} for role in ROLES}
    assert matrix == expected
    assert all("TRUNCATE" not in ops and not {"UPDATE", "DELETE"} & matrix[role]["audit_log"]
               for role in ROLES for ops in matrix[role].values())


@pytest.mark.parametrize(("role", "table", "columns", "allowed"), COLUMNS)
def test_column_grants(prepared: dict[str, str], role: str, table: str, columns: str, allowed: bool) -> None:
    assert attempt(prepared[role], f"SELECT {columns} FROM {table}") is allowed  # noqa: S608


@pytest.mark.parametrize("role", ROLES)
def test_no_ddl_outside_features(prepared: dict[str, str], role: str) -> None:
    url = prepared[role]
    assert not attempt(url, "CREATE TABLE public.mine (x int)")
    assert not attempt(url, "ALTER TABLE ml_models ADD COLUMN mine int")
    assert not attempt(url, "DROP TABLE audit_log")
    assert not attempt(url, "CREATE INDEX ix_mine ON predictions (symbol)")
    # Feast's point-in-time join uploads its entity rows as a table of schema feast: training only
    assert attempt(url, "CREATE TABLE feast.feast_entity_df_test (x int)") is (role == "aicash_training")
    assert not attempt(url, "DROP TABLE feast.aicash_probe_view")


@pytest.mark.parametrize("role", ROLES)
def test_feast_tables_made_after_the_migration(prepared: dict[str, str], role: str) -> None:
    """Training writes the rows of Feast's tables (offline tables, online store, registry), never their definition;
    serving and readonly read them."""
    url = prepared[role]
    assert attempt(url, "SELECT * FROM feast.aicash_probe_view") is (role != "aicash_monitoring")
    writer = role == "aicash_training"
    for statement in ("INSERT INTO feast.aicash_probe_view VALUES ('k2', 'v2')",
                      "UPDATE feast.aicash_probe_view SET value = 'w' WHERE entity_key = 'k'",
                      "DELETE FROM feast.aicash_probe_view WHERE entity_key = 'k'",
                      "TRUNCATE feast.aicash_probe_view"):
        assert attempt(url, statement) is writer, statement
    for statement in ("ALTER TABLE feast.aicash_probe_view ADD COLUMN mine int",
                      "CREATE INDEX ix_mine ON feast.aicash_probe_view (entity_key)",
                      "DROP TABLE feast.aicash_probe_view"):
        assert not attempt(url, statement), statement


def _count(url: str, query: str) -> int:
    with psycopg.connect(psycopg_dsn(url)) as conn:
        return int(conn.execute(query).fetchone()[0])  # type: ignore[arg-type, index]


def test_serving_sees_only_keys_not_revoked(prepared: dict[str, str]) -> None:
    assert _count(prepared["aicash_serving"], "SELECT count(*) FROM api_keys WHERE name = 'gone'") == 0
    assert _count(prepared["aicash_serving"], "SELECT count(*) FROM api_keys WHERE name = 'live'") == 1
    assert _count(prepared["aicash_readonly"], "SELECT count(*) FROM api_keys") == 2  # every row, no hashes
    assert _count(prepared["owner"], "SELECT count(*) FROM api_keys") == 2  # the owner bypasses RLS (no FORCE)


def test_an_admin_call_status_is_filled_in_once_and_only_by_serving(prepared: dict[str, str]) -> None:
    call = "SELECT aicash_admin_call_status(1, 200)"
    assert [attempt(prepared[role], call) for role in ROLES] == [True, False, False, False]
    with psycopg.connect(psycopg_dsn(prepared["aicash_serving"])) as conn:
        conn.execute("SELECT aicash_admin_call_status(1, 200)")
        conn.execute("SELECT aicash_admin_call_status(1, 500)")  # a second time changes nothing
        conn.commit()
    assert _count(prepared["owner"], "SELECT (details->>'status')::int FROM audit_log WHERE id = 1") == 200


def test_roles_on_many_databases_of_one_server(postgres_url: str) -> None:
    """Roles are server-wide, grants per database: a second database migrates (the roles exist already), and taking
    one database back to base revokes its grants but leaves the roles the other still uses."""
    first, second = _database(postgres_url), _database(postgres_url)
    try:
        for url in (first, second):
            migrate.upgrade(make_engine(url))
        engine = make_engine(first)
        migrate.downgrade(engine, "0003_ingest_ledger")
        with engine.connect() as conn:
            granted = conn.execute(text("SELECT count(*) FROM information_schema.role_table_grants "
                                        "WHERE grantee LIKE 'aicash\\_%'")).scalar()
            roles = conn.execute(text("SELECT count(*) FROM pg_roles WHERE rolname = ANY(:r)"),
                                 {"r": list(ROLES)}).scalar()
        assert granted == 0 and roles == len(ROLES)
        assert attempt(login_url(second, "aicash_serving"), "SELECT * FROM ml_models")
        migrate.upgrade(engine)  # and back up again, the roles already there
        assert attempt(login_url(first, "aicash_serving"), "SELECT * FROM ml_models")
        engine.dispose()
    finally:
        _drop(first)
        _drop(second)


def test_sqlite_has_no_roles(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """On SQLite the migration does nothing: same tables, and up and down work."""
    engine = make_engine(f"sqlite:///{tmp_path / 'a.db'}")
    migrate.upgrade(engine)
    migrate.downgrade(engine, "0003_ingest_ledger")
    migrate.upgrade(engine)
    assert migrate.current_revision(engine) == migrate.head_revision()
    engine.dispose()
