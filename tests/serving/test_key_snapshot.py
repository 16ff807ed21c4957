"""The key snapshot: what `aicash keys` publishes, and how keys are verified from it while the database is down."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aicash.db.engine import make_engine
from aicash.registry import LocalArtifactStore, S3ArtifactStore
from aicash.serving.key_snapshot import SNAPSHOT_KEY, KeySnapshot, publish_key_snapshot
from aicash.serving.keys import KeysUnavailableError, KeyVerifier, create_key, hash_key, list_keys, revoke_key
from tests.support.net import free_port


def _unreachable_engine():  # type: ignore[no-untyped-def]
    """An engine on a loopback port nothing listens on: every connection is refused."""
    return make_engine(f"postgresql://aicash:pw@127.0.0.1:{free_port()}/aicash?connect_timeout=2")


def test_the_snapshot_holds_hashes_of_active_keys_only(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = LocalArtifactStore(tmp_path / "store")
    web, ops, old = (create_key(engine, "web"), create_key(engine, "ops", admin=True), create_key(engine, "old"))
    revoke_key(engine, "old")
    assert publish_key_snapshot(engine, store) == 2
    raw = store.get_document(SNAPSHOT_KEY)
    assert raw is not None and web not in raw.decode() and ops not in raw.decode()
    assert {k["key_hash"] for k in json.loads(raw)["keys"]} == {hash_key(web), hash_key(ops)}

    snapshot = KeySnapshot(store)
    assert snapshot.lookup(hash_key(web)).name == "web" and not snapshot.lookup(hash_key(web)).is_admin
    assert snapshot.lookup(hash_key(ops)).is_admin
    assert snapshot.lookup(hash_key(old)) is None and snapshot.lookup(hash_key("aic_unknown")) is None


def test_keys_are_verified_from_the_snapshot_while_the_database_is_down(engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    store = LocalArtifactStore(tmp_path / "store")
    web, old = create_key(engine, "web"), create_key(engine, "old")
    revoke_key(engine, "old")
    down = _unreachable_engine()
    try:
        without_snapshot = KeyVerifier(down, fallback=KeySnapshot(store).lookup)
        with pytest.raises(KeysUnavailableError, match="no key snapshot"):
            without_snapshot.verify(web)  # nothing published yet: neither accepted nor refused

        publish_key_snapshot(engine, store)
        verifier = KeyVerifier(down, fallback=KeySnapshot(store).lookup)
        assert verifier.verify(web).name == "web"
        assert verifier.verify(old) is None and verifier.verify("aic_" + "x" * 40) is None
    finally:
        down.dispose()


def test_a_damaged_or_unreachable_snapshot_keeps_the_last_copy(engine, tmp_path: Path, aws_env) -> None:  # type: ignore[no-untyped-def]
    store = LocalArtifactStore(tmp_path / "store")
    web = create_key(engine, "web")
    publish_key_snapshot(engine, store)
    snapshot = KeySnapshot(store, max_age_seconds=0)
    assert snapshot.lookup(hash_key(web)).name == "web"
    store.put_document(SNAPSHOT_KEY, b"{not json")
    assert snapshot.lookup(hash_key(web)).name == "web"  # read again (max age 0), damaged: last copy kept

    unreachable = S3ArtifactStore("aicash-keys", "http://127.0.0.1:9")  # nothing listens on port 9
    with pytest.raises(KeysUnavailableError):
        KeySnapshot(unreachable).lookup(hash_key(web))


def test_keys_cli_publishes_the_snapshot(cli, settings) -> None:  # type: ignore[no-untyped-def]
    store = LocalArtifactStore(settings.aicash_home / "models")
    made = cli("keys", "create", "web")
    key = made.stdout.strip().split()[-1]
    assert KeySnapshot(store).lookup(hash_key(key)).name == "web"
    assert cli("keys", "revoke", "web").exit_code == 0
    assert KeySnapshot(store).lookup(hash_key(key)) is None


def test_keys_cli_warns_when_the_snapshot_cannot_be_written(cli, engine, monkeypatch, aws_env) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("USE_S3_STORAGE", "true")
    monkeypatch.setenv("S3_BUCKET", "aicash-keys")
    monkeypatch.setenv("S3_ENDPOINT_URL", "http://127.0.0.1:9")  # nothing listens there
    made = cli("keys", "create", "web")
    assert made.exit_code == 0 and "aic_" in made.stdout  # the key is made: the database is the source of truth
    said = " ".join(made.stdout.split())  # rich wraps long lines
    assert "warning: the key snapshot (keys/api-keys.json in the artifact store) was not updated" in said
    assert [k.name for k in list_keys(engine)] == ["web"]
