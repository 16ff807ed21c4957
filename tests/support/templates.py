"""Prepared homes on either database, made once per session and copied for each service that changes them.

A SQLite home is a folder (its database inside); a PostgreSQL home is a folder and a database of the test server in
cluster mode, copied with `CREATE DATABASE ... TEMPLATE` (tables, Feast's registry and online store, keys at once).
Fixtures that serve a home take `DATABASES` as their parameters, so the same tests run on both.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url

from tests.support.cluster_service import cluster_home
from tests.support.postgres import create_database, drop_database
from tests.support.roles import login_url
from tests.support.service import Template, home_database_url

DATABASES = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def template_of(request: pytest.FixtureRequest) -> Template:
    """The session template (tests/conftest.py: `template`, `pg_template`) of a fixture or test parametrised with
    `DATABASES`."""
    return request.getfixturevalue("pg_template" if request.param == "postgresql" else "template")


def prepare_pg_template(home: Path, server_url: str) -> Template:
    """A home in cluster mode on a new database of the server at `server_url`, prepared as `prepare_template` does."""
    database_url = create_database(server_url)
    _, production, canary = cluster_home(home, database_url)
    _disconnect(database_url)
    return Template(home, production, canary, database_url)


def copy_template(template: Template, dest: Path) -> Template:
    """The template's folder copied to `dest` and, in cluster mode, its database copied to a new one."""
    shutil.copytree(template.home, dest)
    if is_sqlite(template.database_url):
        return Template(dest, template.production, template.canary, home_database_url(dest))
    _disconnect(template.database_url)  # a template database cannot be copied while anyone is connected to it
    copied = create_database(template.database_url, template=make_url(template.database_url).database)
    return Template(dest, template.production, template.canary, copied)


def is_sqlite(url: str) -> bool:
    return url.startswith("sqlite")


def served_env(template: Template) -> dict[str, str]:
    """What a service on the home needs on top of `service_env`: the database, when it is not the home's SQLite. On
    PostgreSQL the service logs in as in the cluster: DATABASE_URL a login in aicash_serving, ADMIN_DATABASE_URL (its
    admin operations) one in aicash_training; the template's URL stays the owner's, for the tests' own checks."""
    if is_sqlite(template.database_url):
        return {}
    return {"DATABASE_URL": login_url(template.database_url, "aicash_serving"),
            "ADMIN_DATABASE_URL": login_url(template.database_url, "aicash_training")}


def drop_copy(template: Template) -> None:
    """Drop a copy's PostgreSQL database (a SQLite copy goes with its temporary folder)."""
    if not is_sqlite(template.database_url):
        drop_database(template.database_url)


def _disconnect(database_url: str) -> None:
    """End the sessions still open on a database (this process's Feast registry, pooled connections)."""
    name = make_url(database_url).database
    admin = create_engine(make_url(database_url).set(database="postgres"), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                          "WHERE datname = :name AND pid <> pg_backend_pid()"), {"name": name})
    admin.dispose()
