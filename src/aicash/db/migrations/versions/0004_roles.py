"""roles: least privilege for each workload (PostgreSQL only; SQLite has no roles, so nothing happens there)

Revision ID: 0004_roles
Revises: 0003_ingest_ledger
Create Date: 2026-12-07

Four NOLOGIN roles, granted per database (a role is server-wide, its grants live in each database), so that many
databases on one server each grant them what their own tables need:

- aicash_serving: reads models, keys (only those not revoked: row-level security), weights and features; inserts
  predictions and audit entries; fills in the status of its own `admin.call` entries through one function.
- aicash_training: reads market data, trades and features; writes models, training runs (experiments are recorded as
  training runs), signal weights and audit entries; writes the rows of Feast's tables in schema feast (offline
  tables, online store, registry: DML only, the tables stay the owner's); may create its scratch tables there
  (Feast's point-in-time join uploads the entity rows as a table there and drops it).
- aicash_monitoring: reads predictions, outcomes, candles, models and runs; writes outcomes, live metrics, drift
  reports; records the runs it submits and their KFP outcomes; the canary judge changes a model's traffic.
- aicash_readonly: reads everything except `api_keys.key_hash` and `audit_log.details` (column grants).

DDL stays with the owner (the login that runs the migrations). `audit_log` is append-only for every role.
Workloads log in as members of these roles (`aicash db grant-logins`, run by the migrations Job).
"""

from __future__ import annotations

from alembic import op
from sqlalchemy import text

revision = '0004_roles'
down_revision = '0003_ingest_ledger'
branch_labels = None
depends_on = None

ROLES = ("aicash_serving", "aicash_training", "aicash_monitoring", "aicash_readonly")
FEAST_SCHEMA = "feast"
STATUS_FUNCTION = "aicash_admin_call_status"

# role -> (table, privileges): a privilege with columns, e.g. "SELECT (id)", is a column grant.
GRANTS: dict[str, list[tuple[str, str]]] = {
    "aicash_serving": [
        ("alembic_version", "SELECT"),
        ("ml_models", "SELECT"),
        ("api_keys", "SELECT"),
        ("signal_weights", "SELECT"),
        ("predictions", "INSERT"),
        # INSERT ... RETURNING id (SQLAlchemy, one row), and the prediction log's check of a repeated request id
        ("predictions", "SELECT (id, request_id, created_at)"),
        ("audit_log", "INSERT"),
        ("audit_log", "SELECT (id)"),  # INSERT ... RETURNING id: the admin.call entry's id
    ],
    "aicash_training": [
        ("alembic_version", "SELECT"),
        ("market_candles", "SELECT"),
        ("trades", "SELECT"),
        ("ml_models", "SELECT, INSERT, UPDATE"),
        ("training_runs", "SELECT, INSERT, UPDATE"),
        ("signal_weights", "SELECT, INSERT"),
        ("audit_log", "SELECT, INSERT"),  # rollback replays the promotions from the audit log
    ],
    "aicash_monitoring": [
        ("alembic_version", "SELECT"),
        ("predictions", "SELECT"),
        ("prediction_outcomes", "SELECT, INSERT"),
        ("live_metrics", "SELECT, INSERT, DELETE"),  # a day's figures are replaced (deleted, inserted)
        ("drift_reports", "SELECT, INSERT, UPDATE"),
        ("market_candles", "SELECT"),  # the realized move after each prediction
        ("ml_models", "SELECT"),
        ("ml_models", "UPDATE (status, traffic_percentage, updated_at)"),  # the canary judge
        ("training_runs", "SELECT, INSERT"),  # drift --retrain records the run it submits
        ("training_runs", "UPDATE (status, error, finished_at, model_version, params)"),  # KFP outcomes
        ("signal_weights", "SELECT"),
        ("audit_log", "SELECT, INSERT"),  # the canary judge reads when the canary started
    ],
    "aicash_readonly": [
        ("alembic_version", "SELECT"),
        ("market_candles", "SELECT"),
        ("ingested_objects", "SELECT"),
        ("ml_models", "SELECT"),
        ("training_runs", "SELECT"),
        ("predictions", "SELECT"),
        ("trades", "SELECT"),
        ("signal_weights", "SELECT"),
        ("api_keys", "SELECT (id, name, prefix, is_admin, created_at, revoked_at)"),  # not key_hash
        ("audit_log", "SELECT (id, at, actor, action, target)"),  # not details
        ("prediction_outcomes", "SELECT"),
        ("live_metrics", "SELECT"),
        ("drift_reports", "SELECT"),
    ],
}
FEAST_READERS = ("aicash_serving", "aicash_training", "aicash_readonly")
# The training pipeline's first step rewrites the offline tables (TRUNCATE + COPY), upserts the online store and
# records materialization intervals in the registry: rows only, never the tables' definitions.
FEAST_WRITER = "aicash_training"
FEAST_WRITES = "INSERT, UPDATE, DELETE, TRUNCATE"

CREATE_ROLE = """
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{role}') THEN
        CREATE ROLE {role} NOLOGIN;
    END IF;
EXCEPTION WHEN duplicate_object OR unique_violation THEN
    NULL;  -- another database's migration created it at the same moment
END
$$
"""

# Drops a role only when nothing on the server refers to it any more: no privilege or object in any database
# (pg_shdepend) and no member but the login running this (which PostgreSQL 16 makes a member of what it creates).
DROP_UNUSED_ROLE = """
DO $$
DECLARE
    target oid := (SELECT oid FROM pg_roles WHERE rolname = '{role}');
BEGIN
    IF target IS NOT NULL
       AND NOT EXISTS (SELECT 1 FROM pg_shdepend WHERE refclassid = 'pg_authid'::regclass AND refobjid = target)
       AND NOT EXISTS (SELECT 1 FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member
                       WHERE m.roleid = target AND r.rolname <> current_user) THEN
        DROP ROLE {role};
    END IF;
END
$$
"""

# Fills in the status of an `admin.call` entry written before the call ran, once: the only change any role can
# make to an audit entry (SECURITY DEFINER: runs as the owner; roles get EXECUTE, never UPDATE on audit_log).
STATUS_FUNCTION_SQL = f"""
CREATE OR REPLACE FUNCTION {STATUS_FUNCTION}(entry_id bigint, answered integer) RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path FROM CURRENT AS $$
    UPDATE audit_log SET details = jsonb_set(details, '{{status}}', to_jsonb(answered))
    WHERE id = entry_id AND action = 'admin.call' AND details -> 'status' = 'null'::jsonb
$$
"""  # noqa: S608 - constants only


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def _sequences(table: str) -> list[str]:
    """The sequence behind the table's `id`, if it has one."""
    found = op.get_bind().execute(text("SELECT pg_get_serial_sequence(:t, 'id')"), {"t": table}).scalar()
    return [found] if found else []


def _has_id(table: str) -> bool:
    query = ("SELECT 1 FROM information_schema.columns "
             "WHERE table_schema = current_schema() AND table_name = :t AND column_name = 'id'")
    return op.get_bind().execute(text(query), {"t": table}).scalar() is not None


def upgrade() -> None:
    if not _postgresql():
        return  # SQLite: no roles, no grants
    for role in ROLES:
        op.execute(CREATE_ROLE.format(role=role))
    op.execute("REVOKE CREATE ON SCHEMA public FROM PUBLIC")  # PostgreSQL >= 15 already does
    for role in ROLES:
        op.execute(f"GRANT USAGE ON SCHEMA public TO {role}")
        for table, privileges in GRANTS[role]:
            op.execute(f"GRANT {privileges} ON {table} TO {role}")
            if "INSERT" in privileges and _has_id(table):
                for sequence in _sequences(table):
                    op.execute(f"GRANT USAGE ON SEQUENCE {sequence} TO {role}")
    op.execute(STATUS_FUNCTION_SQL)
    op.execute(f"REVOKE ALL ON FUNCTION {STATUS_FUNCTION}(bigint, integer) FROM PUBLIC")
    op.execute(f"GRANT EXECUTE ON FUNCTION {STATUS_FUNCTION}(bigint, integer) TO aicash_serving")
    # Row-level security: serving sees only keys not revoked. The owner bypasses it (no FORCE), so the CLI's
    # `aicash keys` commands are unaffected; readonly sees every row (without the hashes).
    op.execute("ALTER TABLE api_keys ENABLE ROW LEVEL SECURITY")
    op.execute("CREATE POLICY api_keys_serving_active ON api_keys FOR SELECT TO aicash_serving "
               "USING (revoked_at IS NULL)")
    op.execute("CREATE POLICY api_keys_readonly_all ON api_keys FOR SELECT TO aicash_readonly USING (true)")
    # Feast's tables (registry, online and offline store) are created by the owner (`aicash features apply`,
    # `materialize`, which re-creates the offline tables): readable by the roles that read features, now and later.
    op.execute(f"CREATE SCHEMA IF NOT EXISTS {FEAST_SCHEMA}")
    readers = ", ".join(FEAST_READERS)
    op.execute(f"GRANT USAGE ON SCHEMA {FEAST_SCHEMA} TO {readers}")
    op.execute(f"GRANT CREATE ON SCHEMA {FEAST_SCHEMA} TO aicash_training")  # Feast's entity-rows table
    op.execute(f"GRANT SELECT ON ALL TABLES IN SCHEMA {FEAST_SCHEMA} TO {readers}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {FEAST_SCHEMA} GRANT SELECT ON TABLES TO {readers}")
    op.execute(f"GRANT {FEAST_WRITES} ON ALL TABLES IN SCHEMA {FEAST_SCHEMA} TO {FEAST_WRITER}")
    op.execute(f"ALTER DEFAULT PRIVILEGES IN SCHEMA {FEAST_SCHEMA} GRANT {FEAST_WRITES} ON TABLES TO {FEAST_WRITER}")


def downgrade() -> None:
    if not _postgresql():
        return
    readers = ", ".join(FEAST_READERS)
    defaults = f"ALTER DEFAULT PRIVILEGES IN SCHEMA {FEAST_SCHEMA} REVOKE"
    op.execute(f"{defaults} {FEAST_WRITES} ON TABLES FROM {FEAST_WRITER}")
    op.execute(f"{defaults} SELECT ON TABLES FROM {readers}")  # noqa: S608 - constants only
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA {FEAST_SCHEMA} FROM {readers}")
    op.execute(f"REVOKE ALL ON SCHEMA {FEAST_SCHEMA} FROM {readers}")  # the schema stays: Feast's data is in it
    op.execute("DROP POLICY IF EXISTS api_keys_readonly_all ON api_keys")
    op.execute("DROP POLICY IF EXISTS api_keys_serving_active ON api_keys")
    op.execute("ALTER TABLE api_keys DISABLE ROW LEVEL SECURITY")
    op.execute(f"DROP FUNCTION IF EXISTS {STATUS_FUNCTION}(bigint, integer)")
    roles = ", ".join(ROLES)
    op.execute(f"REVOKE ALL ON ALL TABLES IN SCHEMA public FROM {roles}")
    op.execute(f"REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM {roles}")
    op.execute(f"REVOKE ALL ON SCHEMA public FROM {roles}")
    # Roles are server-wide: other databases on the server (or the workloads' logins) may still use them.
    for role in ROLES:
        op.execute(DROP_UNUSED_ROLE.format(role=role))
