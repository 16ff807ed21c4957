"""Keys and secrets: hashes only, constant-time comparison, revocation within 1 s on every replica, no key or
secret in any log, output or table."""

from __future__ import annotations

import hashlib
import hmac
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from sqlalchemy import MetaData, select
from sqlalchemy import text as sql

from aicash.db.engine import make_engine
from aicash.db.models import ApiKey
from aicash.serving import keys as keys_module
from aicash.serving.keys import KeyVerifier, create_key, revoke_key
from aicash.serving.schemas import EXAMPLE_INPUT
from aicash.settings import Settings
from tests.support.polling import seconds_until
from tests.support.service import AWS_SECRET, SMTP_PASSWORD, home_database_url

REPO = Path(__file__).resolve().parents[2]
AICASH = str(Path(sys.executable).parent / "aicash")


def every_value(engine) -> str:  # type: ignore[no-untyped-def]
    """Every cell of every table, as text."""
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        return "\n".join(repr(row) for table in meta.sorted_tables for row in conn.execute(select(table)))


def test_only_a_hash_and_a_short_prefix_are_stored(engine) -> None:  # type: ignore[no-untyped-def]
    key = create_key(engine, "frontend")
    with engine.connect() as conn:
        row = conn.execute(select(ApiKey.key_hash, ApiKey.prefix)).one()
    assert row.key_hash == hashlib.sha256(key.encode()).hexdigest() and row.prefix == key[:10]
    assert key not in every_value(engine) and key[10:20] not in every_value(engine)


def test_the_stored_hash_is_compared_in_constant_time(engine, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """A key not among the active keys the verifier holds in memory is looked up in the database by its (public)
    prefix, and the presented key's hash is compared with each stored hash under it by `hmac.compare_digest`: a
    wrong key with a right prefix is refused by that comparison, not by an SQL equality on the hash. A key held in
    memory is found by a dict lookup on its SHA-256 (see `KeyVerifier.verify` for why that leaks nothing)."""
    verifier = KeyVerifier(engine, refresh_seconds=3600)  # started before the key exists: not in memory
    key = create_key(engine, "frontend")
    calls, real = [], hmac.compare_digest

    def spy(a: bytes, b: bytes) -> bool:
        calls.append((a, b))
        return real(a, b)

    def sha(text: str) -> bytes:
        return hashlib.sha256(text.encode()).hexdigest().encode()

    monkeypatch.setattr(keys_module.hmac, "compare_digest", spy)
    try:
        assert verifier.verify(key).name == "frontend"
        assert calls == [(sha(key), sha(key))]
        wrong = key[:-1] + ("A" if key[-1] != "A" else "B")
        calls.clear()
        assert verifier.verify(wrong) is None
        assert calls == [(sha(key), sha(wrong))]  # the stored hash against the wrong key's, in constant time
        calls.clear()
        assert verifier.verify(key).name == "frontend" and calls == []  # now held in memory
    finally:
        verifier.close()


def test_keys_sharing_a_prefix_each_verify_as_their_own(engine) -> None:  # type: ignore[no-untyped-def]
    """Keys made before the comparison changed have the same form (`aic_` + 43 characters, prefix its first 10):
    they pass unchanged. Two keys with one prefix (6 random characters: rare, not impossible) are told apart."""
    from aicash.db.engine import session_scope

    from_database = KeyVerifier(engine, refresh_seconds=3600)  # started before the keys: they are not in memory
    key = create_key(engine, "frontend")
    twin = key[:10] + "Z" * (len(key) - 10)  # a row as an older release would have written it
    with session_scope(engine) as session:
        session.add(ApiKey(name="twin", key_hash=hashlib.sha256(twin.encode()).hexdigest(), prefix=twin[:10]))
    from_memory = KeyVerifier(engine)
    try:
        for verifier in (from_database, from_memory):
            assert verifier.verify(key).name == "frontend" and verifier.verify(twin).name == "twin"
            assert verifier.verify(key[:10] + "Y" * (len(key) - 10)) is None
        revoke_key(engine, "twin")
        seconds_until(lambda: from_memory.verify(twin) is None)
        assert from_memory.verify(key).name == "frontend"
    finally:
        from_database.close()
        from_memory.close()


def test_a_revoked_key_fails_within_a_second_on_every_replica(db_url: str, engine) -> None:  # type: ignore[no-untyped-def]
    """Two replicas (two verifiers, each with its own engine and keys in memory) on one database; one key revoked
    by `revoke_key`, one by plain SQL (nothing tells the replicas: they read the table)."""
    key, other = create_key(engine, "frontend"), create_key(engine, "batch")
    replicas = [KeyVerifier(make_engine(db_url)) for _ in range(2)]
    try:
        assert all(r.verify(k) is not None for r in replicas for k in (key, other))  # both hold them in memory
        revoke_key(engine, "frontend")
        assert seconds_until(lambda: all(r.verify(key) is None for r in replicas)) < 1.0
        with engine.begin() as conn:
            conn.execute(sql("UPDATE api_keys SET revoked_at = CURRENT_TIMESTAMP WHERE name = 'batch'"))
        assert seconds_until(lambda: all(r.verify(other) is None for r in replicas)) < 1.0
    finally:
        for replica in replicas:
            replica.close()
            replica.engine.dispose()


def test_revocation_over_http_holds_within_a_second(admin_service) -> None:  # type: ignore[no-untyped-def]
    env = admin_service.env
    created = subprocess.run([AICASH, "keys", "create", "short-lived"], capture_output=True, text=True, env=env,
                             cwd=REPO, timeout=60)
    key = re.search(r"aic_[A-Za-z0-9_-]{20,}", created.stdout).group(0)
    headers = {"X-API-Key": key}
    assert httpx.post(admin_service.url + "/predict", json=EXAMPLE_INPUT, headers=headers).status_code == 200
    subprocess.run([AICASH, "keys", "revoke", "short-lived"], check=True, env=env, cwd=REPO, timeout=60,
                   capture_output=True)
    seconds_until(lambda: httpx.post(admin_service.url + "/predict", json=EXAMPLE_INPUT,
                                     headers=headers).status_code == 401)


def forms(secret: str) -> set[str]:
    """A secret as it could leak: raw, URL-encoded, and its longest half (a truncated print)."""
    return {secret, quote(secret, safe=""), secret[: max(8, len(secret) // 2)]}


def test_no_key_or_secret_in_logs_outputs_or_the_database(admin_service) -> None:  # type: ignore[no-untyped-def]
    """Use every key (and a wrong one), run the read-only CLI commands, then scan the service log, their output
    and every table of the database for the plain keys and the service's secret settings."""
    wrong = "aic_" + "W" * 43
    for key in [*admin_service.keys.values(), wrong]:
        for path in ("/predict", "/training-status", "/models/rollback"):
            httpx.post(admin_service.url + path, json=EXAMPLE_INPUT, headers={"X-API-Key": key}, timeout=30)
        httpx.get(admin_service.url + "/weights", headers={"Authorization": f"Bearer {key}"}, timeout=30)
    outputs = []
    for command in (["keys", "list"], ["config", "show"], ["models", "list"], ["db", "current"]):
        done = subprocess.run([AICASH, *command], capture_output=True, text=True, env=admin_service.env, cwd=REPO,
                              timeout=120)
        assert done.returncode == 0, done.stderr
        outputs.append(done.stdout + done.stderr)
    engine = make_engine(home_database_url(admin_service.log_path.parent))
    tables = every_value(engine)
    engine.dispose()
    places = {"service log": admin_service.log_text(), "CLI output": "\n".join(outputs), "database": tables}
    assert "frontend" in tables and "admin.call" in tables  # the scan reads real content
    for secret in [*admin_service.keys.values(), wrong, SMTP_PASSWORD, AWS_SECRET]:
        for where, text in places.items():
            leaked = [form for form in forms(secret) if form in text]
            assert not leaked, f"{secret[:6]}... appears in the {where}"


def test_config_show_masks_every_secret(tmp_path: Path) -> None:
    password = "pg-Pa55/word+with@signs"
    env = {k: v for k, v in os.environ.items() if k.upper() not in {n.upper() for n in Settings.model_fields}} | {
        "AICASH_HOME": str(tmp_path), "DATABASE_URL": f"postgresql://aicash:{quote(password, safe='')}@db:5432/aicash",
        "SMTP_PASSWORD": SMTP_PASSWORD, "AWS_ACCESS_KEY_ID": "AKIAEXAMPLEKEYID1234",
        "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
    }
    shown = subprocess.run([AICASH, "config", "show"], capture_output=True, text=True, env=env, cwd=tmp_path,
                           timeout=60)
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout + shown.stderr
    assert "DATABASE_URL" in text and "SMTP_PASSWORD" in text and "****" in text
    for secret in (password, SMTP_PASSWORD, AWS_SECRET, "AKIAEXAMPLEKEYID"):
        assert not [form for form in forms(secret) if form in text], secret


@pytest.fixture(scope="module")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """`aicash infra render` of both stacks, as the CI runs it (secrets are the renderer's stand-ins)."""
    out = tmp_path_factory.mktemp("render")
    for stack in ("dev", "prod"):
        done = subprocess.run([AICASH, "infra", "render", "--stack", stack, "--out", str(out / stack)],
                              capture_output=True, text=True, cwd=REPO, timeout=300)
        assert done.returncode == 0, done.stderr
    return {"dev": out / "dev", "prod": out / "prod"}


def test_infra_render_never_shows_a_secret(rendered: dict[str, Path], tmp_path: Path) -> None:
    from infra.render import placeholder, render

    known = {"dbPassword": "db-Pa55/word+with@signs", "smtpPassword": SMTP_PASSWORD,
             "minioPassword": "minio-sekret-2b8e41"}
    render("prod", tmp_path / "prod", root=REPO, secrets=known)  # the same code with known values
    render("dev", tmp_path / "dev", root=REPO, secrets=known)
    texts = {f"{d.name}/{p.name}": p.read_text() for d in [*rendered.values(), tmp_path / "prod", tmp_path / "dev"]
             for p in d.glob("*.yaml")}
    assert any("kind: Secret" in t and "<redacted>" in t for t in texts.values())
    secrets = [*known.values(), *(placeholder(k) for k in known)]
    for name, text in texts.items():
        for secret in secrets:
            assert not [form for form in forms(secret) if form in text], f"{secret[:6]}... in {name}"
