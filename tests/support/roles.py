"""Logins in the migrations' roles for tests: one per role and server, made through `aicash.db.logins` (what
`aicash db grant-logins` runs), and URLs that connect to a given database as them."""

from __future__ import annotations

import psycopg
from psycopg import errors
from sqlalchemy import create_engine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError

from aicash.db.logins import Login, grant_login

PASSWORD = "test-login-Pa55%word"  # noqa: S105 - a test login's password; '%' checks it travels as itself


def login_name(role: str) -> str:
    return f"aicash_test_{role.removeprefix('aicash_')}_login"


def login_url(database_url: str, role: str) -> str:
    """The URL of `database_url`'s database as this server's test login in `role` (created when missing)."""
    login = Login(login_name(role), PASSWORD, role)
    engine = create_engine(database_url)
    try:
        try:
            grant_login(engine, login)
        except DBAPIError:  # another test created the same server-wide login at the same moment: it exists now
            grant_login(engine, login)
    finally:
        engine.dispose()
    return make_url(database_url).set(username=login.user, password=PASSWORD).render_as_string(hide_password=False)


def psycopg_dsn(url: str) -> str:
    """A SQLAlchemy PostgreSQL URL as psycopg connects to it."""
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def attempt(url: str, statement: str) -> bool:
    """Whether `statement` runs as the login of `url` (in a transaction rolled back afterwards); False when refused
    for privileges."""
    with psycopg.connect(psycopg_dsn(url)) as conn:
        try:
            conn.execute(statement)  # type: ignore[arg-type]
        except errors.InsufficientPrivilege:
            return False
        finally:
            conn.rollback()
    return True
