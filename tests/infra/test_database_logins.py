"""Each workload's own database login, as the stacks render it: one per workload, in the role the migrations grant,
its password a Pulumi secret (redacted in `aicash infra render`), and the migrations Job creating all of them."""

from __future__ import annotations

from typing import Any
from urllib.parse import unquote, urlsplit

from aicash.db.logins import LOGIN_URL_VARIABLES, Login
from infra.database import LOGINS, LOGINS_SECRET, login_password
from infra.policy.rules import pod_spec
from infra.render import manifests
from tests.support.infra import SECRETS, find


def _refs(container: dict[str, Any]) -> dict[str, str]:
    """The container's env variables that come from the logins Secret, and the key each takes."""
    return {e["name"]: e["valueFrom"]["secretKeyRef"]["key"] for e in container.get("env", [])
            if e.get("valueFrom", {}).get("secretKeyRef", {}).get("name") == LOGINS_SECRET}


def test_each_login_is_in_the_role_the_cli_grants() -> None:
    assert {variable: role for variable, (_, role) in LOGINS.items()} == {
        v: r for v, r in LOGIN_URL_VARIABLES.items() if v in LOGINS}
    assert len({login for login, _ in LOGINS.values()}) == len(LOGINS)  # one login per workload


def test_the_logins_secret_holds_each_url_with_a_derived_password(objects: list[dict[str, Any]]) -> None:
    urls = find(objects, "Secret", LOGINS_SECRET, "aicash")["stringData"]
    assert set(urls) == set(LOGINS)
    for variable, (login, role) in LOGINS.items():
        parts = urlsplit(urls[variable])
        assert parts.username == login
        assert unquote(parts.password or "") == login_password(SECRETS["dbPassword"], login) != SECRETS["dbPassword"]
        assert Login.from_url(urls[variable], role).user == login  # what `aicash db grant-logins` accepts


def test_workloads_take_only_their_own_login(objects: list[dict[str, Any]]) -> None:
    [bento] = pod_spec(find(objects, "Deployment", "aicash-inference", "aicash"))["containers"]
    assert _refs(bento) == {"DATABASE_URL": "SERVING_DATABASE_URL", "ADMIN_DATABASE_URL": "ADMIN_DATABASE_URL"}
    for name in ("aicash-drift-report", "aicash-health-check", "aicash-canary-judge"):
        [job] = pod_spec(find(objects, "CronJob", name, "aicash"))["containers"]
        assert _refs(job) == {"DATABASE_URL": "MONITORING_DATABASE_URL"}, name
    migrations = next(o for o in objects if o["kind"] == "Job" and o["metadata"]["name"].startswith("aicash-db-up"))
    [step] = pod_spec(migrations)["containers"]
    assert _refs(step) == {variable: variable for variable in LOGINS}  # the owner creates them all
    assert "aicash db grant-logins" in step["command"][-1]


def test_login_passwords_are_redacted_in_the_render(program) -> None:  # type: ignore[no-untyped-def]
    text = str(manifests(program, redacted=True))
    for login, _ in LOGINS.values():
        assert login_password(SECRETS["dbPassword"], login) not in text
