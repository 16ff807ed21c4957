"""The registry on both databases: register, gate, forced promotion, canary, production, rollback, audit."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
from sqlalchemy import select

from aicash.db.engine import session_scope
from aicash.db.models import AuditLog
from aicash.registry import (
    ArtifactIntegrityError,
    LocalArtifactStore,
    NothingToRollBackError,
    PromotionRefusedError,
    RegistryError,
    S3ArtifactStore,
    UnknownVersionError,
    current_production,
    get_model,
    list_models,
    load_artifacts,
    new_version,
    promote,
    register_model,
    rollback,
    traffic_split,
)
from aicash.registry.versions import VERSION_PATTERN
from tests.support.registry import corrupt, make_artifacts


def register(engine, store, tmp_path: Path, version: str, approved: bool | None = True, reasons=()):  # type: ignore[no-untyped-def]
    folder = make_artifacts(tmp_path / f"art-{version}", seed=int(version[1:]) if version[1:].isdigit() else 0)
    return register_model(engine, store, version=version, artifacts_dir=folder, metrics={"accuracy": 0.61},
                          approved=approved, reasons=list(reasons), actor="test")


def audit(engine) -> list[AuditLog]:  # type: ignore[no-untyped-def]
    with session_scope(engine) as session:
        return list(session.scalars(select(AuditLog).order_by(AuditLog.id)))


@pytest.fixture
def local_store(tmp_path: Path) -> LocalArtifactStore:
    return LocalArtifactStore(tmp_path / "store")


def test_round_trip_on_s3_and_local(engine, tmp_path, moto_endpoint, s3_bucket) -> None:
    for store in (LocalArtifactStore(tmp_path / "store"), S3ArtifactStore(s3_bucket, moto_endpoint)):
        version = new_version(make_artifacts(tmp_path / "a"))
        assert VERSION_PATTERN.fullmatch(version)
        version = version + ("-s3" if isinstance(store, S3ArtifactStore) else "-local")
        record = register_model(engine, store, version=version, artifacts_dir=tmp_path / "a",
                                metrics={"accuracy": 0.6, "log_loss": math.nan}, approved=True, reasons=[],
                                actor="pipeline")
        assert record.status == "approved" and record.metrics == {"accuracy": 0.6, "log_loss": None}
        assert record.artifact_uri == store.uri("signal-lstm", version) and len(record.artifact_sha256 or "") == 64
        dest = load_artifacts(engine, store, version, tmp_path / f"loaded-{version}")
        assert (dest / "model.pt").read_bytes() == (tmp_path / "a" / "model.pt").read_bytes()
        corrupt(store, "signal-lstm", version, "scaler.json", lambda b: b[:-3])
        assert load_artifacts(engine, store, version, dest) == dest  # verified local copy reused, no download
        with pytest.raises(ArtifactIntegrityError, match="scaler.json truncated"):
            load_artifacts(engine, store, version, dest, reuse=False)
        (dest / "model.pt").write_bytes(b"tampered")  # a damaged local copy is downloaded again, and refused
        with pytest.raises(ArtifactIntegrityError, match="scaler.json truncated"):
            load_artifacts(engine, store, version, dest)
    assert [a.action for a in audit(engine)] == ["model.register", "model.register"]


def test_register_records_the_gate_decision(engine, local_store, tmp_path) -> None:
    ok = register(engine, local_store, tmp_path, "v1")
    bad = register(engine, local_store, tmp_path, "v2", approved=False, reasons=["accuracy 0.41 < 0.55"])
    cand = register(engine, local_store, tmp_path, "v3", approved=None)
    assert (ok.status, bad.status, cand.status) == ("approved", "rejected", "candidate")
    assert bad.reasons == ["accuracy 0.41 < 0.55"] and bad.gate_passed is False
    assert [r.version for r in list_models(engine)] == ["v3", "v2", "v1"]
    with pytest.raises(RegistryError, match="already registered"):
        register(engine, local_store, tmp_path, "v1")
    with pytest.raises(RegistryError, match="needs at least one reason"):
        register(engine, local_store, tmp_path, "v4", approved=False)
    assert local_store.list_versions() == [("signal-lstm", v) for v in ("v1", "v2", "v3")]
    with pytest.raises(UnknownVersionError, match="no version 'v9'"):
        get_model(engine, "v9")


def test_a_rejected_version_needs_force_and_a_reason(engine, local_store, tmp_path) -> None:
    register(engine, local_store, tmp_path, "v1", approved=False, reasons=["win rate 0.30 < 0.45"])
    with pytest.raises(PromotionRefusedError, match="rejected by the gate"):
        promote(engine, "v1", 100, actor="ops")
    with pytest.raises(PromotionRefusedError, match="needs force=True and a reason"):
        promote(engine, "v1", 100, force=True, reason="  ", actor="ops")
    assert get_model(engine, "v1").status == "rejected" and current_production(engine) is None

    record = promote(engine, "v1", 100, force=True, reason="only model for the demo", actor="ops")
    assert record.status == "production" and traffic_split(engine) == [("v1", 100.0)]
    entry = audit(engine)[-1]
    assert (entry.actor, entry.action, entry.target) == ("ops", "model.promote", "signal-lstm:v1")
    assert entry.details["forced"] is True and entry.details["reason"] == "only model for the demo"
    assert entry.details["from_status"] == "rejected" and entry.details["to_status"] == "production"


def test_canary_then_full_promotion_archives_the_old_production(engine, local_store, tmp_path) -> None:
    for v in ("v1", "v2", "v3"):
        register(engine, local_store, tmp_path, v)
    with pytest.raises(PromotionRefusedError, match="no production version"):
        promote(engine, "v2", 10, actor="ops")
    promote(engine, "v1", 100, actor="ops")
    canary = promote(engine, "v2", 10, actor="ops")
    assert canary.is_canary and canary.status == "approved" and canary.role == "approved (canary)"
    assert traffic_split(engine) == [("v2", 10.0), ("v1", 90.0)]
    promote(engine, "v3", 25, actor="ops")  # at most one canary: v3 replaces v2
    assert traffic_split(engine) == [("v3", 25.0), ("v1", 75.0)] and get_model(engine, "v2").traffic_percentage == 0
    assert audit(engine)[-1].details["replaced_canary"] == "v2"

    promote(engine, "v3", 100, actor="ops")
    assert (get_model(engine, "v1").status, get_model(engine, "v1").traffic_percentage) == ("archived", 0.0)
    assert current_production(engine).version == "v3" and traffic_split(engine) == [("v3", 100.0)]
    assert audit(engine)[-1].details["archived"] == "v1"
    with pytest.raises(PromotionRefusedError, match="already production"):
        promote(engine, "v3", 100, actor="ops")
    with pytest.raises(PromotionRefusedError, match="outside 0..100"):
        promote(engine, "v2", 101, actor="ops")


def test_ending_a_canary(engine, local_store, tmp_path) -> None:
    for v in ("v1", "v2"):
        register(engine, local_store, tmp_path, v)
    promote(engine, "v1", 100, actor="ops")
    promote(engine, "v2", 20, actor="ops")
    promote(engine, "v2", 0, actor="ops")
    assert traffic_split(engine) == [("v1", 100.0)] and get_model(engine, "v2").status == "approved"
    with pytest.raises(PromotionRefusedError, match="takes no traffic already"):
        promote(engine, "v2", 0, actor="ops")


def test_rollback_restores_each_previous_production(engine, local_store, tmp_path) -> None:
    for v in ("v1", "v2", "v3"):
        register(engine, local_store, tmp_path, v)
    with pytest.raises(NothingToRollBackError, match="no production version"):
        rollback(engine, "ops")
    promote(engine, "v1", 100, actor="ops")
    with pytest.raises(NothingToRollBackError, match="first production version"):
        rollback(engine, "ops")
    promote(engine, "v2", 100, actor="ops")
    promote(engine, "v3", 100, actor="ops")

    assert rollback(engine, "ops", reason="accuracy dropped").version == "v2"
    assert [(r.version, r.status, r.traffic_percentage) for r in list_models(engine)] == [
        ("v3", "archived", 0.0), ("v2", "production", 100.0), ("v1", "archived", 0.0)]
    entry = audit(engine)[-1]
    assert entry.action == "model.rollback" and entry.details["demoted"] == "v3"
    assert entry.details["reason"] == "accuracy dropped"

    assert rollback(engine, "ops").version == "v1"  # a second rollback goes further back, not forth to v3
    with pytest.raises(NothingToRollBackError, match="first production version"):
        rollback(engine, "ops")
    promote(engine, "v3", 100, actor="ops")
    assert rollback(engine, "ops").version == "v1"
