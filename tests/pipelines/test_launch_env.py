"""The environment of a pipeline's child process (`pipelines.launch.ChildProcess`): the service's admin login."""

from __future__ import annotations

from pathlib import Path

from aicash.settings import Settings
from pipelines.launch import ChildProcess, child_env

SERVING = "postgresql://serving:pw@db/aicash"
ADMIN = "postgresql://training:pw@db/aicash"


def test_the_child_connects_with_the_admin_login(clean_env: Path) -> None:
    settings = Settings(database_url=SERVING, admin_database_url=ADMIN)
    env = child_env(settings, {"DATABASE_URL": SERVING, "PATH": "/bin"})
    assert env == {"DATABASE_URL": ADMIN, "PATH": "/bin"}
    assert ChildProcess(settings).env["DATABASE_URL"] == ADMIN  # what Popen gets


def test_without_an_admin_login_the_child_keeps_the_environment(clean_env: Path) -> None:
    settings = Settings(database_url=SERVING)
    assert child_env(settings, {"DATABASE_URL": SERVING}) == {"DATABASE_URL": SERVING}
    assert "DATABASE_URL" not in child_env(Settings(), {"PATH": "/bin"})
