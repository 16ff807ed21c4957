"""`-m "not postgres"` selects no test that uses PostgreSQL, and every test it leaves out does (so `-m postgres`
selects exactly those): checked on a real collection of the whole suite in a pytest of its own."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import REPO

# Loaded into the collecting pytest with -p: records what `-m` selected and deselected, and which of those use
# PostgreSQL (a fixture in the closure, or a "postgresql" parameter), and whether they carry the marker.
AUDIT_PLUGIN = '''
import json, os

from tests.support.postgres import uses_postgres

_deselected = []


def _row(item):
    marked = item.get_closest_marker("postgres") is not None
    return {"id": item.nodeid, "postgres": uses_postgres(item), "marked": marked}


def pytest_deselected(items):
    _deselected.extend(items)


def pytest_collection_finish(session):
    with open(os.environ["MARKER_AUDIT_OUT"], "w") as out:
        json.dump({"selected": [_row(i) for i in session.items], "deselected": [_row(i) for i in _deselected]}, out)
'''


@pytest.mark.slow
def test_not_postgres_selects_no_postgresql_test_and_postgres_selects_them_all(tmp_path: Path) -> None:
    (tmp_path / "marker_audit.py").write_text(AUDIT_PLUGIN)
    out = tmp_path / "audit.json"
    env = os.environ | {"MARKER_AUDIT_OUT": str(out),
                        "PYTHONPATH": os.pathsep.join(filter(None, [str(tmp_path), str(REPO),
                                                                    os.environ.get("PYTHONPATH")]))}
    done = subprocess.run(  # noqa: S603
        [sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider", "-p", "marker_audit",
         "-m", "not postgres", "tests"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    audit = json.loads(out.read_text())
    selected, deselected = audit["selected"], audit["deselected"]
    assert selected and deselected
    assert [row["id"] for row in selected if row["postgres"]] == []  # `-m "not postgres"`: no PostgreSQL test
    assert [row["id"] for row in deselected if not row["postgres"]] == []  # `-m postgres`: only PostgreSQL tests
    assert all(row["marked"] for row in deselected)
    ids = {row["id"] for row in deselected}
    for nodeid in ("tests/db/test_migrations.py::test_cluster_mode_refuses_an_unmigrated_database",  # fresh_postgres_db
                   "tests/serving/test_prediction_log.py::"
                   "test_database_down_then_back_loses_nothing_and_duplicates_nothing"):  # stoppable_postgres
        assert nodeid in ids
    assert any(i.endswith("[postgresql]") for i in ids)  # db_url's PostgreSQL parameter
