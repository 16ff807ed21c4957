"""The workloads' database logins: one LOGIN per workload, a member of the NOLOGIN role the migrations grant.

Each login is described by the URL its workload connects with (`SERVING_DATABASE_URL` and the like, from the
workload's Secret), so the login created is exactly the one the workload uses. Creating is idempotent: an existing
login gets its password set again and joins its role. Runs as the owner (it needs CREATEROLE), after
`aicash db upgrade`: `aicash db grant-logins`. PostgreSQL only.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from dataclasses import dataclass

from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url

ROLES = ("aicash_serving", "aicash_training", "aicash_monitoring", "aicash_readonly")
# Which environment variable names the URL of which role's login.
LOGIN_URL_VARIABLES = {
    "SERVING_DATABASE_URL": "aicash_serving",
    "ADMIN_DATABASE_URL": "aicash_training",  # the inference service's admin operations (a setting of its own)
    "TRAINING_DATABASE_URL": "aicash_training",
    "MONITORING_DATABASE_URL": "aicash_monitoring",
    "READONLY_DATABASE_URL": "aicash_readonly",
}
_NAME = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")


class LoginError(ValueError):
    """A login URL that cannot be used: no user or password, a name that is not a plain identifier, a bad role."""


@dataclass(frozen=True)
class Login:
    """A login (user and password, from its URL) and the role it belongs to."""

    user: str
    password: str
    role: str

    @classmethod
    def from_url(cls, url: str, role: str) -> Login:
        parsed = make_url(url)
        if role not in ROLES:
            raise LoginError(f"{role!r} is not one of {', '.join(ROLES)}")
        if not parsed.username or not _NAME.fullmatch(parsed.username):
            raise LoginError(f"the {role} login's user {parsed.username!r} must be a lower-case identifier")
        if parsed.username in ROLES:
            raise LoginError(f"the {role} login must not be named like a role ({parsed.username})")
        if not parsed.password:
            raise LoginError(f"the {role} login ({parsed.username}) has no password in its URL")
        return cls(parsed.username, str(parsed.password), role)


def logins_from_env(env: Mapping[str, str] | None = None) -> list[Login]:
    """The logins whose URLs are set in the environment (`LOGIN_URL_VARIABLES`), in that order."""
    env = os.environ if env is None else env
    return [Login.from_url(env[name], role) for name, role in LOGIN_URL_VARIABLES.items() if env.get(name)]


def grant_login(engine: Engine, login: Login) -> str:
    """Create the login in its role, or set its password and membership again; returns `created` or `updated`.
    The password travels as a bound literal (`quote_literal` server side), never in a logged statement."""
    with engine.begin() as conn:
        exists = conn.execute(text("SELECT 1 FROM pg_roles WHERE rolname = :u"), {"u": login.user}).scalar()
        verb = "ALTER ROLE" if exists else "CREATE ROLE"
        quoted = text(f"SELECT format('{verb} %I LOGIN PASSWORD %L', CAST(:u AS text), CAST(:p AS text))")
        statement = conn.execute(quoted, {"u": login.user, "p": login.password}).scalar_one()
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute(statement)  # no parameters: a '%' in the password stays itself
        cursor.execute(f'GRANT {login.role} TO "{login.user}"')
        cursor.close()
    return "updated" if exists else "created"
