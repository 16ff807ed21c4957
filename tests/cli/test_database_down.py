"""Down is a state, not a crash: with the database unreachable, every command that needs it prints one short error
naming the database (host and port, never the password) and the fix, and exits 2; `aicash db check` is the
connection test."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import DBAPIError

from aicash.db.engine import describe_database, is_unreachable, unreachable_message
from tests.conftest import Cli
from tests.support.net import free_port

PASSWORD = "s3cret-Pa55"  # noqa: S105 - a test's password that must never be printed


@pytest.fixture
def down_url(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """DATABASE_URL: a PostgreSQL URL with a password, on a loopback port where nothing listens."""
    url = f"postgresql://aicash:{PASSWORD}@127.0.0.1:{free_port()}/aicash"
    monkeypatch.setenv("DATABASE_URL", url)
    return url


def assert_one_short_error(result, url: str) -> None:  # type: ignore[no-untyped-def]
    """Exit 2, the database named by host and port, the fix, no password, no traceback, a line or two."""
    where = url.split("@")[1].split("/")[0]  # 127.0.0.1:PORT
    output = result.stdout + result.stderr
    assert result.exit_code == 2, output
    assert "Traceback" not in output and PASSWORD not in output
    assert f"PostgreSQL at {where}/aicash" in result.stderr and "Connection refused" in result.stderr
    assert "Check DATABASE_URL (postgresql://aicash:***@" in result.stderr and "PostgreSQL is running" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and len(output.strip().splitlines()) <= 3, output


# One command of each group that needs the database (config does not; serve --build reads the registry).
COMMANDS = [
    ("db", "current"),
    ("db", "check"),
    ("db", "upgrade"),
    ("data", "list"),
    ("features", "apply"),
    ("models", "list"),
    ("keys", "create", "frontend"),
    ("pipeline", "run", "lstm-training"),
    ("monitor", "outcomes"),
]


@pytest.mark.parametrize("args", COMMANDS, ids=" ".join)
def test_each_group_reports_an_unreachable_database_and_exits_2(down_url: str, args: tuple[str, ...]) -> None:
    assert_one_short_error(Cli()(*args), down_url)


def test_serve_build_reports_it_too(down_url: str, clean_env: Path) -> None:
    (clean_env / "pyproject.toml").write_text("[project]\nname = 'x'\n")  # `--build` runs in the project folder
    (clean_env / "bentos").mkdir()
    (clean_env / "bentos" / "bentofile.yaml").write_text("service: x\n")
    assert_one_short_error(Cli()("serve", "--build"), down_url)


def test_config_needs_no_database_and_masks_the_password(down_url: str) -> None:
    result = Cli()("config", "show")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output and "postgresql://aicash:***@127.0.0.1" in result.output


def test_the_installed_command_prints_one_line(down_url: str) -> None:
    """The real entry point (click's standalone mode), not the test runner: one line on stderr, nothing else."""
    aicash = Path(sys.executable).parent / "aicash"
    done = subprocess.run([str(aicash), "db", "current"], capture_output=True, text=True, timeout=120,  # noqa: S603
                          env=os.environ | {"NO_COLOR": "1"}, check=False)
    assert done.returncode == 2 and done.stdout == "", done
    assert done.stderr.startswith("error: the database is unreachable: PostgreSQL at 127.0.0.1:"), done.stderr
    assert len(done.stderr.splitlines()) == 1 and PASSWORD not in done.stderr


def test_db_check_is_the_connection_test(cli: Cli, db_url: str) -> None:
    result = cli("db", "check")
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"connected to {describe_database(db_url)} in ")
    assert " ms; round trip (SELECT 1) " in lines[0]
    assert lines[1].startswith("schema revision: ") and lines[1].endswith(" (head)")


def test_a_server_that_stops_is_reported_by_socket(stoppable_postgres, clean_env: Path,  # type: ignore[no-untyped-def]
                                                  monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.setenv("DATABASE_URL", stoppable_postgres.url)
    cli = Cli()
    assert cli("db", "upgrade").exit_code == 0
    assert cli("db", "current").exit_code == 0
    stoppable_postgres.stop()
    result = cli("db", "current")
    assert result.exit_code == 2 and "Traceback" not in result.output
    assert f"PostgreSQL at {stoppable_postgres.socket_dir}:" in result.stderr
    stoppable_postgres.start()
    assert cli("db", "check").exit_code == 0  # back: the shared engine reconnects


def test_a_statements_own_error_is_not_an_outage(tmp_path: Path, postgres_url: str) -> None:
    """Only connection errors are an outage; a bad statement surfaces as it is (SQLite and PostgreSQL)."""
    for url in (f"sqlite:///{tmp_path / 'x.db'}", postgres_url):
        engine = create_engine(url)
        with pytest.raises(DBAPIError) as caught, engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table"))
        assert not is_unreachable(caught.value)
        engine.dispose()


def test_the_message_never_shows_the_password(down_url: str) -> None:
    engine = create_engine(down_url)
    with pytest.raises(DBAPIError) as caught:
        engine.connect()
    assert is_unreachable(caught.value)
    message = unreachable_message(caught.value, down_url)
    assert PASSWORD not in message and "***" in message and message.count("\n") == 0
