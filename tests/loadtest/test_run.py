"""`make loadtest`'s orchestration end to end on a prepared home, briefly: the service starts, Locust runs, the
table, HTML report and CSVs appear, the targets are evaluated, and the service and the key are gone afterwards."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from aicash.db.engine import make_engine
from aicash.db.models import ApiKey
from loadtest import run
from tests.support.net import listening
from tests.support.service import use_home


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_short_load_test_reports_and_cleans_up(served_home: Path, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    use_home(monkeypatch, served_home)
    reports, port = tmp_path / "reports", run.free_port()
    code = run.main(["--duration", "5", "--users", "4", "--port", str(port), "--reports", str(reports)])
    out = capsys.readouterr().out

    checks = run.evaluate(reports / "locust_stats.csv")
    assert code == (0 if all(c.met for c in checks) else 1), out  # the exit code is the targets' verdict
    assert {c.endpoint for c in checks} == {"/predict", "/health", "/weights"}
    predict = next(c for c in checks if c.endpoint == "/predict")
    assert predict.requests > 20 and predict.failures == 0, out  # the key works, the rate limit is lifted
    assert "Locust load test" in out and "4 users for 5 s" in out and "report.html" in out
    assert all(endpoint in out for endpoint in ("/predict", "/health", "/weights")), out
    assert (reports / "report.html").read_text().lower().count("locust") > 0
    for suffix in ("stats", "stats_history", "failures"):
        assert (reports / f"locust_{suffix}.csv").exists()
    # Targets are evaluated: impossible ones fail, generous ones pass, on the same figures.
    assert not any(c.met for c in run.evaluate(reports / "locust_stats.csv", dict.fromkeys(run.TARGETS_P95_MS, 0.0)))
    assert all(c.met for c in run.evaluate(reports / "locust_stats.csv", dict.fromkeys(run.TARGETS_P95_MS, 1e9)))

    assert not listening(port)  # the service is stopped
    engine = make_engine(f"sqlite:///{served_home / 'aicash.db'}")
    with engine.connect() as conn:
        keys = conn.execute(select(ApiKey.name, ApiKey.revoked_at).where(ApiKey.name.like("loadtest-%"))).all()
    engine.dispose()
    assert keys and all(revoked is not None for _, revoked in keys)  # the run's key is revoked


def test_without_a_production_model_it_says_so_and_exits_2(tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    use_home(monkeypatch, tmp_path / "empty-home")
    assert run.main(["--duration", "1"]) == 2
    out = capsys.readouterr().out
    assert "nothing to load-test" in out and "make demo" in out
    assert not (tmp_path / "empty-home").exists()  # nothing was created in the user's home
