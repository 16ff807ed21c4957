"""Fault injection with real components: the object store down during a promotion, corrupted or truncated
artifacts, a registration whose database write fails, and SIGTERM under load."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select

from aicash.db import migrate
from aicash.db.engine import make_engine
from aicash.db.models import MLModel, Prediction
from aicash.model_input import MODEL_NAME
from aicash.registry import ArtifactError, register_model, store_for
from aicash.registry import promote as promote_version
from aicash.serving.runtime import SignalRuntime
from aicash.serving.schemas import PredictRequest
from aicash.settings import load_settings
from aicash.training.artifact_files import FEATURES_FILE, model_files
from tests.support.net import free_port
from tests.support.service import copy_home, create_keys, start_service, stop_service
from tests.support.templates import DATABASES, copy_template, drop_copy, served_env

REQUEST = PredictRequest(symbol="EURUSD")


class MotoS3:
    """An S3 API (moto) on a fixed 127.0.0.1 port that can be stopped and started again; moto keeps the objects
    in this process's memory, so they are there again after a restart, as a real outage would leave them."""

    def __init__(self) -> None:
        self.port = free_port()
        self.server = None

    def start(self) -> None:
        from moto.server import ThreadedMotoServer

        self.server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self.server.start()

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop()
            self.server = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


@pytest.fixture
def registry_env(template, tmp_path: Path, monkeypatch: pytest.MonkeyPatch):  # type: ignore[no-untyped-def]
    """Settings on a copy of the prepared home (its Feast online store) with an empty registry database."""
    home = copy_home(template, tmp_path / "home")
    for name in ("DATABASE_URL", "USE_S3_STORAGE", "S3_BUCKET", "S3_ENDPOINT_URL", "MODEL_VERSION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AICASH_HOME", str(home))
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'registry.db'}")
    monkeypatch.setenv("FEAST_USAGE", "False")
    monkeypatch.chdir(tmp_path)
    return home


@pytest.fixture
def moto(registry_env, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoS3]:  # type: ignore[no-untyped-def]
    import boto3

    for key, value in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                       "AWS_DEFAULT_REGION": "us-east-1", "AWS_EC2_METADATA_DISABLED": "true",
                       "AWS_MAX_ATTEMPTS": "2"}.items():
        monkeypatch.setenv(key, value)
    server = MotoS3()
    server.start()
    boto3.client("s3", endpoint_url=server.url).create_bucket(Bucket="aicash-faults")
    monkeypatch.setenv("USE_S3_STORAGE", "true")
    monkeypatch.setenv("S3_BUCKET", "aicash-faults")
    monkeypatch.setenv("S3_ENDPOINT_URL", server.url)
    try:
        yield server
    finally:
        server.stop()


def runtime_over_registry(settings, engine) -> SignalRuntime:  # type: ignore[no-untyped-def]
    """The service's runtime with its real parts (registry loader, Feast reader), reloading every 0.2 s."""
    from bentos.wiring import OnlineFeatureReader, RegistryModels

    return SignalRuntime(read_features=OnlineFeatureReader(settings), load_models=RegistryModels(settings, engine),
                         read_weights=dict, reload_seconds=0.2)


def register_two(settings, engine, home: Path) -> tuple[str, str]:  # type: ignore[no-untyped-def]
    versions = []
    for seed in (1, 2):
        record = register_model(engine, store_for(settings), name=MODEL_NAME, version=f"v-fault-{seed}",
                                artifacts_dir=home / f"artifacts-{seed}", metrics={}, approved=True, reasons=[],
                                actor="test")
        versions.append(record.version)
    promote_version(engine, versions[0], 100, actor="test")
    return versions[0], versions[1]


def read_family(folder: Path) -> str:
    """The model family an artifact folder names (an LSTM when it names none)."""
    return str(json.loads((folder / FEATURES_FILE).read_text()).get("family", "lstm"))


def wait_for(predicate, seconds: float) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.1)
    return predicate()


def test_object_store_down_during_a_promotion(registry_env, moto, caplog) -> None:  # type: ignore[no-untyped-def]
    """S3 goes down, then v2 is promoted: the runtime keeps serving v1 and keeps retrying; when S3 is back, v2 is
    loaded (verified) and served without a restart."""
    settings = load_settings()
    engine = make_engine(settings.sqlalchemy_url)
    migrate.upgrade(engine)
    v1, v2 = register_two(settings, engine, registry_env)
    runtime = runtime_over_registry(settings, engine)
    try:
        assert runtime.split() == [(v1, 100.0)] and runtime.predict(REQUEST).model_version == v1
        moto.stop()
        promote_version(engine, v2, 100, actor="test")
        assert runtime.reload() is False  # the download fails ...
        assert runtime.split() == [(v1, 100.0)]  # ... and the current model stays
        answers = [runtime.predict(PredictRequest(symbol="EURUSD", request_id=f"down-{i}")) for i in range(20)]
        assert {a.model_version for a in answers} == {v1}
        failures_before = caplog.text.count("registry reload failed")
        time.sleep(1.0)  # the background loop keeps retrying while the store is down
        assert caplog.text.count("registry reload failed") > failures_before
        moto.start()
        assert wait_for(lambda: runtime.split() == [(v2, 100.0)], 15), runtime.split()
        assert runtime.predict(PredictRequest(symbol="EURUSD", request_id="after")).model_version == v2
    finally:
        runtime.close()
        engine.dispose()


def _flip(data: bytes) -> bytes:
    return data[:100] + bytes([data[100] ^ 0xFF]) + data[101:]


DAMAGE = {
    "one byte flipped": lambda p: p.write_bytes(_flip(p.read_bytes())),
    "truncated": lambda p: p.write_bytes(p.read_bytes()[: p.stat().st_size // 2]),
    "emptied": lambda p: p.write_bytes(b""),
    "deleted": lambda p: p.unlink(),
}


@pytest.mark.parametrize("damage", list(DAMAGE))
def test_a_damaged_artifact_is_refused_and_the_current_model_stays(registry_env, damage, caplog) -> None:  # type: ignore[no-untyped-def]
    settings = load_settings()
    engine = make_engine(settings.sqlalchemy_url)
    migrate.upgrade(engine)
    v1, v2 = register_two(settings, engine, registry_env)
    runtime = runtime_over_registry(settings, engine)
    try:
        assert runtime.split() == [(v1, 100.0)]
        stored = registry_env / "models" / MODEL_NAME / v2
        model_file = model_files(read_family(stored))[-1]  # v2 is the template's LightGBM canary: its booster
        DAMAGE[damage](stored / model_file)
        promote_version(engine, v2, 100, actor="test")
        assert runtime.reload() is False
        assert runtime.split() == [(v1, 100.0)] and runtime.predict(REQUEST).model_version == v1
        assert "registry reload failed" in caplog.text
        assert any(word in caplog.text for word in (model_file, "integrity", "SHA-256", "missing"))
        assert not (runtime.load_models.cache_dir / v2 / model_file).exists()  # nothing half-downloaded in place
    finally:
        runtime.close()
        engine.dispose()


@pytest.mark.parametrize("store_kind", ["local", "s3"])
def test_a_failed_registration_leaves_no_artifacts(registry_env, request, store_kind, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The artifacts are uploaded, then the database write fails: the upload is removed, no row remains."""
    if store_kind == "s3":
        request.getfixturevalue("moto")
    import aicash.registry.lifecycle as lifecycle

    settings = load_settings()
    engine = make_engine(settings.sqlalchemy_url)
    migrate.upgrade(engine)
    real_scope, calls = lifecycle.session_scope, Counter()

    def failing_scope(eng):  # type: ignore[no-untyped-def]
        calls["n"] += 1
        if calls["n"] == 2:  # the first checks the version is new; the second records it
            raise RuntimeError("database connection lost")
        return real_scope(eng)

    monkeypatch.setattr(lifecycle, "session_scope", failing_scope)
    store = store_for(settings)
    with pytest.raises(RuntimeError, match="connection lost"):
        register_model(engine, store, name=MODEL_NAME, version="v-half", artifacts_dir=registry_env / "artifacts-1",
                       metrics={}, approved=True, reasons=[], actor="test")
    monkeypatch.setattr(lifecycle, "session_scope", real_scope)
    with pytest.raises(ArtifactError):
        store.download(MODEL_NAME, "v-half", Path(registry_env) / "download", expected_sha256="0" * 64)
    with engine.connect() as conn:
        assert conn.execute(select(func.count()).select_from(MLModel)).scalar_one() == 0
    engine.dispose()


# -- SIGTERM under load --------------------------------------------------------------------------------------
async def load_until_refused(url: str, key: str, stop_after: float, on_start):  # type: ignore[no-untyped-def]
    """16 concurrent clients send predictions until the server refuses connections; returns the request ids
    answered 200, the ids whose connection closed without an answer, and a count of every outcome."""
    answered: list[str] = []
    unanswered: list[str] = []
    outcomes: Counter[str] = Counter()
    started = time.monotonic()
    signalled = asyncio.Event()

    async def client(worker: int) -> None:
        async with httpx.AsyncClient(base_url=url, headers={"X-API-Key": key}, timeout=30) as http:
            for i in range(100_000):
                if time.monotonic() - started > stop_after + 60:
                    return
                request_id = f"term-{worker}-{i}-{uuid.uuid4().hex[:6]}"
                sent_after = signalled.is_set()
                try:
                    r = await http.post("/predict", json={"symbol": "EURUSD", "request_id": request_id})
                except httpx.ConnectError:
                    outcomes["refused after shutdown" if signalled.is_set() else "refused early"] += 1
                    return
                except httpx.HTTPError as exc:
                    outcomes[type(exc).__name__ + (" sent after SIGTERM" if sent_after else " in flight")] += 1
                    unanswered.append(request_id)
                    if signalled.is_set():
                        return
                    continue
                outcomes[str(r.status_code)] += 1
                if r.status_code == 200:
                    answered.append(request_id)
                elif signalled.is_set() and r.status_code == 503:
                    return

    async def trigger() -> None:
        await asyncio.sleep(stop_after)
        on_start()
        signalled.set()

    await asyncio.gather(trigger(), *(client(w) for w in range(16)))
    return answered, unanswered, outcomes


@pytest.mark.parametrize("database", DATABASES)
def test_sigterm_under_load_finishes_requests_and_flushes_the_log(request, database: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """SIGTERM to the server (as Kubernetes sends it) while 16 clients keep sending: every request in flight gets
    its answer, every answered prediction is in the database after exit (the buffered log is flushed), and a
    request sent after the signal is refused or its keep-alive connection closed, never processed unanswered.
    On SQLite and on PostgreSQL in cluster mode."""
    copy = copy_template(request.getfixturevalue("pg_template" if database == "postgresql" else "template"),
                         tmp_path / "home")
    keys = create_keys(copy.home, {"frontend": False}, database_url=copy.database_url)
    running = start_service(copy.home, served_env(copy))
    try:
        answered, unanswered, outcomes = asyncio.run(load_until_refused(
            running.url, keys["frontend"], 3.0, lambda: os.kill(running.proc.pid, signal.SIGTERM)))
        code = running.proc.wait(60)
    finally:
        stop_service(running)
    log = running.log_text()
    engine = make_engine(copy.database_url)
    with engine.connect() as conn:
        logged = {r for (r,) in conn.execute(select(Prediction.request_id).where(Prediction.request_id.like("term-%")))}
    engine.dispose()
    drop_copy(copy)
    print(f"SIGTERM under load ({database}): {len(answered)} answered, outcomes {dict(outcomes)}, exit code {code}, "
          f"{len(logged)} rows logged")
    assert len(answered) > 100, outcomes
    assert set(answered) <= logged, f"{len(set(answered) - logged)} answered predictions missing from the log"
    in_flight_broken = {k: n for k, n in outcomes.items() if "in flight" in k or "early" in k}
    assert not in_flight_broken, f"requests in flight broken by the shutdown: {in_flight_broken}"
    assert not set(unanswered) & logged, "a request was processed but its answer never sent"
    assert set(outcomes) <= {"200", "503", "refused after shutdown", "ReadError sent after SIGTERM",
                             "RemoteProtocolError sent after SIGTERM"}, outcomes
    assert "Completed cleanup hook: flush_prediction_log" in log
    shutil.rmtree(copy.home / "bentoml", ignore_errors=True)
