"""FEAST_ONLINE_STORE=redis: the online store in a real Redis, the registry in the bucket (moto over HTTP), the
offline store in PostgreSQL; reading online features then needs nothing from PostgreSQL."""

from __future__ import annotations

import boto3
import pandas as pd
import pytest
import redis
from sqlalchemy import inspect

from aicash.db import migrate
from aicash.db.engine import make_engine
from aicash.market.ingest import ingest_frame
from aicash.settings import load_settings
from features import online, store
from tests.support.features import FIRST_BARS
from tests.support.net import free_port


@pytest.fixture
def redis_env(monkeypatch, fresh_postgres_db, redis_url, s3_bucket, moto_endpoint, tmp_path):  # type: ignore[no-untyped-def]
    """Cluster settings with the Redis online store; returns the values set."""
    values = {"AICASH_HOME": str(tmp_path / "home"), "DATABASE_URL": fresh_postgres_db, "USE_S3_STORAGE": "true",
              "S3_BUCKET": s3_bucket, "S3_ENDPOINT_URL": moto_endpoint, "FEAST_ONLINE_STORE": "redis",
              "REDIS_URL": redis_url, "FEAST_USAGE": "False"}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("FEAST_S3_ENDPOINT_URL", raising=False)  # the registry's endpoint comes from S3_ENDPOINT_URL
    monkeypatch.chdir(tmp_path)
    return values


@pytest.mark.postgres
def test_redis_online_store_serves_the_latest_bar_without_postgres(
    redis_env: dict[str, str], series: dict[str, pd.DataFrame], monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = load_settings()
    engine = make_engine(settings.sqlalchemy_url)
    migrate.upgrade(engine)
    for symbol, frame in series.items():
        ingest_frame(engine, frame.iloc[:FIRST_BARS], symbol, "1h")
    applied = store.apply(settings)
    assert applied.registry == f"s3://{settings.s3_bucket}/feast/registry.db"
    objects = boto3.client("s3", endpoint_url=settings.s3_endpoint_url).list_objects_v2(
        Bucket=settings.s3_bucket, Prefix="feast/")
    assert [o["Key"] for o in objects["Contents"]] == ["feast/registry.db"]
    result = store.materialize(settings)
    assert result.views == {"technical_indicators": 2, "indicator_window": 2}

    with redis.Redis.from_url(redis_env["REDIS_URL"]) as client:
        assert client.dbsize() == 2  # one hash per (symbol, timeframe), both views' features as its fields
    assert "aicash_technical_indicators" not in inspect(engine).get_table_names(schema="feast")
    engine.dispose()
    symbol = next(iter(series))
    expected = online.online_features(store.get_store(settings), symbol)
    assert expected.event_timestamp == series[symbol]["ts"].iloc[FIRST_BARS - 1]

    # PostgreSQL out of reach (a port nothing listens on): a new store still opens and reads the same features.
    dead = free_port()
    monkeypatch.setenv("DATABASE_URL", f"postgresql://aicash:pw@127.0.0.1:{dead}/aicash?connect_timeout=2")
    found = online.online_features(store.get_store(load_settings()), symbol)
    assert found.event_timestamp == expected.event_timestamp and found.indicators == expected.indicators
    assert (found.window == expected.window).all()
