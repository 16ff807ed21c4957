"""The served home logs in as the cluster does: on PostgreSQL the service's DATABASE_URL is a login in
aicash_serving and its admin operations' ADMIN_DATABASE_URL one in aicash_training (migration 0004_roles); on SQLite
there are no roles and the service uses the home's file."""

from __future__ import annotations

import time

from sqlalchemy import select
from sqlalchemy.engine import make_url

from aicash.db.engine import make_engine
from aicash.db.models import AuditLog
from tests.support.roles import login_name


def test_the_service_and_its_admin_operations_log_in_as_their_roles(service) -> None:  # type: ignore[no-untyped-def]
    if service.database_url.startswith("sqlite"):
        assert "DATABASE_URL" not in service.env and "ADMIN_DATABASE_URL" not in service.env
    else:
        assert make_url(service.env["DATABASE_URL"]).username == login_name("aicash_serving")
        assert make_url(service.env["ADMIN_DATABASE_URL"]).username == login_name("aicash_training")
    answer = service.get("/training-status", key=service.admin_key)  # read as the admin login
    assert answer.status_code == 200, answer.text
    engine = make_engine(service.database_url)  # the owner
    deadline, status = time.monotonic() + 10, None
    while status is None and time.monotonic() < deadline:  # filled in before the answer's last byte
        with engine.connect() as conn:
            entry = conn.execute(select(AuditLog.details).where(AuditLog.action == "admin.call",
                                                                AuditLog.target == "/training-status")
                                 .order_by(AuditLog.id.desc()).limit(1)).scalar()
        status = (entry or {}).get("status")
        time.sleep(0.1)
    engine.dispose()
    assert status == 200  # on PostgreSQL through aicash_admin_call_status: the role has no UPDATE on audit_log
