"""Prepared homes on either database, made once per session and copied for each service that changes them.

A SQLite home is a folder (its database inside); a PostgreSQL home is a folder and a database of the test server in
cluster mode, copied with `CREATE DATABASE ... TEMPLATE` (tables, Feast's registry and online store, keys at once).
Fixtures that serve a home take `DATABASES` as their parameters, so the same tests run on both.
"""

from __future__ import annotations

import shutil
import uuid
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.cluster_service import cluster_home
from tests.support.service import Template, home_database_url

DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def template_of(request: pytest.FixtureRequest) -> Template:
    """The session template (tests/conftest.py: `template`, `pg_template`) of a fixture or test parametrised with
    `DATABASES`."""
    return request.getfixturevalue("pg_template" if request.param == "postgresql" else "template")


def prepare_pg_template(home: Path, server_url: str) -> Template:
    """A home in cluster mode on a new database of the server at `server_url`, prepared as `prepare_template` does."""
    database_url = _create_database(server_url)
    _, production, canary = cluster_home(home, database_url)
    _disconnect(database_url)
    return Template(home, production, canary, database_url)


def copy_template(template: Template, dest: Path) -> Template:
    """The template's folder copied to `dest` and, in cluster mode, its database copied to a new one."""
    shutil.copytree(template.home, dest)
    if is_sqlite(template.database_url):
        return Template(dest, template.production, template.canary, home_database_url(dest))
    return Template(dest, template.production, template.canary, _create_database(template.database_url, template))


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def served_env(template: Template) -> dict[str, str]:
    """What a service on the home needs on top of `service_env`: the database, when it is not the home's SQLite."""
    return {} if is_sqlite(template.database_url) else {"DATABASE_URL": template.database_url}


def drop_copy(template: Template) -> None:
    """Drop a copy's PostgreSQL database (a SQLite copy goes with its temporary folder)."""
    if is_sqlite(template.database_url):
        return
    name = make_url(template.database_url).database
    admin = _admin(template.database_url)
    with admin.connect() as conn:
        conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


def _admin(url: str):  # type: ignore[no-untyped-def]
    return create_engine(make_url(url).set(database="postgres"), isolation_level="AUTOCOMMIT")


def _create_database(server_url: str, template: Template | None = None) -> str:
    name = f"aicash_test_{uuid.uuid4().hex[:12]}"
    source = f' TEMPLATE "{make_url(template.database_url).database}"' if template else ""
    if template is not None:
        _disconnect(server_url)
    admin = _admin(server_url)
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"{source}'))
    admin.dispose()
    return make_url(server_url).set(database=name).render_as_string(hide_password=False)


def _disconnect(database_url: str) -> None:
    """End the sessions still open on a database (this process's Feast registry, pooled connections): a template
    database cannot be copied while anyone is connected to it."""
    name = make_url(database_url).database
    admin = _admin(database_url)
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
    admin.dispose()
