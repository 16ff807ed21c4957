"""aicash's handle on Feast: the store for the settings, apply, materialize and the point-in-time training join.

The configuration follows `settings.mode`: `feature_store.local.yaml` or `feature_store.cluster.yaml` beside this
file, with their `${...}` variables filled from the settings (`feast_env`), exactly as Feast's own loader fills
them from the environment (so `eval "$(aicash features env)"; feast apply` reads the same configuration).
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Literal
from urllib.parse import unquote, urlsplit

import numpy as np
import pandas as pd
import yaml
from sqlalchemy.engine import make_url

from aicash.db.engine import engine_for
from aicash.feature_tables import (
    PG_SCHEMA,
    FeatureInputError,
    OfflineTables,
    SeriesFeatures,
    candle_span,
    check_range,
    ensure_offline_tables,
    series_features,
    utc,
    write_offline_tables,
)
from aicash.indicators import INDICATOR_COLUMNS
from aicash.settings import Settings

if TYPE_CHECKING:
    from feast import FeatureStore
    from feast.repo_config import RepoConfig

FEATURES_DIR = Path(__file__).resolve().parent
CONFIG_FILES = {
    "local": FEATURES_DIR / "feature_store.local.yaml",
    "cluster": FEATURES_DIR / "feature_store.cluster.yaml",
    "cluster-redis": FEATURES_DIR / "feature_store.cluster-redis.yaml",
}
FEATURE_VIEWS = ("technical_indicators", "indicator_window")
INDICATORS_VIEW = "technical_indicators"  # the view training sets join point in time
# `training_frame(join="auto")` leaves the join to Feast up to this many (entity row, feature row) pairs summed over
# series; Feast's file store builds all of them (about 2.5 us each here, plus ~2 s of its own set-up).
FEAST_JOIN_MAX_PAIRS = 1_000_000
Join = Literal["auto", "feast", "asof"]
JOINS: tuple[Join, ...] = ("auto", "feast", "asof")
ENTITY_DF_COLUMNS = ("symbol", "timeframe", "event_timestamp")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# (step, done, total): "indicators" per series, then "offline tables", then "materialize <view>" per view.
Progress = Callable[[str, int, int], None]
_VARIABLE = re.compile(r"\$(\w+|\{[^}]*\})")
log = logging.getLogger(__name__)


class NotAppliedError(ValueError):
    """The feature repository is not in the registry yet."""


@dataclass(frozen=True)
class ApplyResult:
    """What `apply` registered and removed."""

    registry: str
    applied: list[str]
    removed: list[str]


@dataclass(frozen=True)
class MaterializeResult:
    """What `materialize` did: the range, the offline tables written, the online rows per feature view."""

    start: datetime
    end: datetime
    offline: OfflineTables
    views: dict[str, int]  # feature view -> entities (symbol, timeframe) written to the online store
    up_to_date: bool = False


def config_name(settings: Settings) -> str:
    """`local`, `cluster` (everything in PostgreSQL) or `cluster-redis` (online store in Redis, registry in S3)."""
    if settings.mode == "cluster" and settings.feast_online_store == "redis":
        return "cluster-redis"
    return settings.mode


def config_file(settings: Settings) -> Path:
    """The feature_store YAML file of the settings' mode."""
    return CONFIG_FILES[config_name(settings)]


def redis_connection_string(redis_url: str) -> str:
    """REDIS_URL (redis://[:password@]host:port[/db], rediss:// for TLS) as Feast's `host:port,db=N,...` string."""
    parts = urlsplit(redis_url)
    fields = [f"{parts.hostname}:{parts.port or 6379}", f"db={parts.path.strip('/') or 0}"]
    if parts.password:
        fields.append(f"password={unquote(parts.password)}")
    if parts.scheme == "rediss":
        fields.append("ssl=true")
    return ",".join(fields)


def feast_env(settings: Settings) -> dict[str, str]:
    """The `${...}` variables the mode's YAML file references, derived from the settings."""
    if settings.mode == "local":
        return {"AICASH_HOME": str(settings.aicash_home)}
    url = make_url(settings.sqlalchemy_url)
    query = {k: v if isinstance(v, str) else v[0] for k, v in url.query.items()}
    env = {
        "AICASH_PG_HOST": url.host or query.get("host", "localhost"),
        "AICASH_PG_PORT": str(url.port or query.get("port", 5432)),
        "AICASH_PG_DATABASE": url.database or "postgres",
        "AICASH_PG_USER": url.username or "postgres",
        "AICASH_PG_PASSWORD": url.password or "",
        "AICASH_PG_SSLMODE": query.get("sslmode", "prefer"),
        "AICASH_FEAST_REGISTRY_URL": url.set(drivername="postgresql+psycopg").render_as_string(hide_password=False),
    }
    if config_name(settings) == "cluster-redis" and settings.redis_url is not None:
        env["AICASH_S3_BUCKET"] = settings.s3_bucket
        env["AICASH_REDIS_CONNECTION"] = redis_connection_string(settings.redis_url.get_secret_value())
    return env


def cli_env(settings: Settings) -> dict[str, str]:
    """Environment for Feast's own CLI: the YAML variables, the file to use, the repository folder, and the
    settings that `repo.py` reads (AICASH_HOME, DATABASE_URL)."""
    env = {"AICASH_HOME": str(settings.aicash_home), **feast_env(settings)}
    if settings.database_url is not None:
        env["DATABASE_URL"] = settings.database_url.get_secret_value()
    env.update(_feast_s3_env(settings))
    env["FEAST_FS_YAML_FILE_PATH"] = str(config_file(settings))
    env["FEATURE_REPO_DIR_ENV_VAR"] = str(FEATURES_DIR)  # Feast's name for `feast --chdir`
    return env


def _feast_s3_env(settings: Settings) -> dict[str, str]:
    """FEAST_S3_ENDPOINT_URL for the S3 registry of `cluster-redis` (Feast reads it from the environment only)."""
    if settings.s3_endpoint_url and config_name(settings) == "cluster-redis":
        return {"FEAST_S3_ENDPOINT_URL": settings.s3_endpoint_url}
    return {}


def render_config(settings: Settings) -> str:
    """The mode's YAML text with its variables filled (os.path.expandvars semantics: unknown ones stay)."""
    values = feast_env(settings)

    def fill(match: re.Match[str]) -> str:
        name = match.group(1).strip("{}")
        return values.get(name, match.group(0))

    return _VARIABLE.sub(fill, config_file(settings).read_text())


def repo_config(settings: Settings) -> RepoConfig:
    """The Feast configuration of the settings' mode, validated by Feast's own `RepoConfig`."""
    from feast.repo_config import RepoConfig

    config = RepoConfig(**yaml.safe_load(render_config(settings)))
    config.repo_path = FEATURES_DIR
    return config


def get_store(settings: Settings) -> FeatureStore:
    """The Feast `FeatureStore` for `settings.mode` (local files or PostgreSQL), ready to read or write."""
    from feast import FeatureStore

    _prepare_storage(settings)
    os.environ.update(_feast_s3_env(settings))
    return FeatureStore(repo_path=str(FEATURES_DIR), config=repo_config(settings))


def _prepare_storage(settings: Settings) -> None:
    """Local: the folder of the registry and online store. Cluster: schema `feast`, which the SQL registry needs
    before it creates its tables there (checked first: serving needs no CREATE privilege once it exists).
    Cluster with Redis: nothing, so that the store opens while PostgreSQL is down."""
    if settings.mode == "local":
        (settings.aicash_home / "features").mkdir(parents=True, exist_ok=True)
        return
    if config_name(settings) == "cluster-redis":
        return
    engine = engine_for(settings)
    try:
        with engine.begin() as conn:
            query = "SELECT 1 FROM pg_namespace WHERE nspname = %(name)s"
            found = conn.exec_driver_sql(query, {"name": PG_SCHEMA}).scalar()
            if found is None:
                conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")
    finally:
        engine.dispose()


def apply(settings: Settings) -> ApplyResult:
    """Register the definitions of `features/repo.py` (and drop objects no longer defined), creating the online
    tables, and empty offline tables when none exist yet. Idempotent, like `feast apply`."""
    from features.repo import build

    engine = engine_for(settings)
    try:
        ensure_offline_tables(engine, settings.aicash_home)
    finally:
        engine.dispose()
    store = get_store(settings)
    objects = build(settings).objects()
    stale = _stale_objects(store, {(type(o).__name__, o.name) for o in objects})
    with _quiet():
        store.apply(objects, objects_to_delete=stale, partial=not stale)
    return ApplyResult(
        registry="sql (schema feast)" if config_name(settings) == "cluster" else str(store.config.registry.path),
        applied=[f"{type(o).__name__} {o.name}" for o in objects],
        removed=[f"{type(o).__name__} {o.name}" for o in stale],
    )


def _stale_objects(store: FeatureStore, defined: set[tuple[str, str]]) -> list:  # type: ignore[type-arg]
    registered = [
        *store.list_feature_services(),
        *store.list_feature_views(),
        *store.list_entities(),
        *store.list_data_sources(),
    ]
    return [o for o in registered if (type(o).__name__, o.name) not in defined]


def refresh_offline_tables(
    settings: Settings, end: datetime | None = None, progress: Progress | None = None
) -> OfflineTables:
    """Rewrite the offline tables from `market_candles`: every bar's indicators, and each series' window as of
    `end` (default: its last bar). `materialize` does this first; training calls it when candles are newer."""
    return _refresh(settings, end, progress)[0]


def _refresh(
    settings: Settings, end: datetime | None, progress: Progress | None
) -> tuple[OfflineTables, list[SeriesFeatures]]:
    engine = engine_for(settings)
    try:
        on_series = (lambda done, total: progress("indicators", done, total)) if progress else None
        series = series_features(engine, end, on_series)
        if progress:
            progress("offline tables", 0, 1)
        written = write_offline_tables(engine, settings.aicash_home, series)
        if progress:
            progress("offline tables", 1, 1)
        return written, series
    finally:
        engine.dispose()


def _entities_in_range(series: list[SeriesFeatures], start: datetime, end: datetime) -> dict[str, int]:
    """Online rows each view gets: series with a bar (indicators) or a window end within [start, end]."""
    lo, hi = utc(start), utc(end)
    bars = sum(bool(((s.indicators["ts"] >= lo) & (s.indicators["ts"] <= hi)).any()) for s in series)
    windows = sum(s.window_end is not None and lo <= s.window_end <= hi for s in series)
    return {"technical_indicators": bars, "indicator_window": windows}


def materialize(
    settings: Settings,
    start: datetime | None = None,
    end: datetime | None = None,
    incremental: bool = False,
    progress: Progress | None = None,
) -> MaterializeResult:
    """Refresh the offline tables from the candles, then load the online store through Feast's `materialize`.

    Without a range: every bar (the online store gets each series' latest bar). With `start`/`end`: bars in that
    range; the online store then holds each series' last bar at or before `end`, and the window ending there.
    `incremental`: from where each feature view's last materialization ended up to the newest candle.
    Raises `FeatureInputError` for an inverted or empty range, `NotAppliedError` before `apply`.
    """
    if incremental and (start is not None or end is not None):
        raise FeatureInputError("--incremental continues from the last materialization: give no --start/--end")
    check_range(start, end)
    engine = engine_for(settings)
    try:
        _, last = candle_span(engine, start, end)
    finally:
        engine.dispose()
    store = get_store(settings)
    views = _registered_views(store)
    begin = utc(start).to_pydatetime() if start is not None else EPOCH
    finish = (utc(end) if end is not None else last).to_pydatetime()
    starts = {name: begin for name in FEATURE_VIEWS}
    if incremental:
        starts = {name: views[name].most_recent_end_time or EPOCH for name in FEATURE_VIEWS}
        if all(utc(s) >= utc(finish) for s in starts.values()):
            offline = OfflineTables(series=0, rows=0, windows=0, first=None, last=None)
            return MaterializeResult(min(starts.values()), finish, offline, dict.fromkeys(FEATURE_VIEWS, 0), True)
    offline, series = _refresh(settings, finish, progress)
    for done, name in enumerate(FEATURE_VIEWS):
        if progress:
            progress(f"materialize {name}", done, len(FEATURE_VIEWS))
        with _quiet():
            store.materialize(start_date=starts[name], end_date=finish, feature_views=[name])
    if progress:
        progress(f"materialize {FEATURE_VIEWS[-1]}", len(FEATURE_VIEWS), len(FEATURE_VIEWS))
    counts = {name: _entities_in_range(series, starts[name], finish)[name] for name in FEATURE_VIEWS}
    shown_start = min(starts.values())
    if offline.first is not None:
        shown_start = max(shown_start, offline.first.to_pydatetime())  # not 1970 when materializing everything
    return MaterializeResult(shown_start, finish, offline, counts)


def _registered_views(store: FeatureStore) -> dict:  # type: ignore[type-arg]
    views = {v.name: v for v in store.list_feature_views(allow_cache=False)}
    missing = [name for name in FEATURE_VIEWS if name not in views]
    if missing:
        raise NotAppliedError(
            f"feature views {', '.join(missing)} are not registered: run `aicash features apply` first"
        )
    return views


def training_frame(settings: Settings, entity_df: pd.DataFrame, join: Join = "auto") -> pd.DataFrame:
    """`entity_df` (symbol, timeframe, event_timestamp in UTC) with `INDICATOR_COLUMNS` joined point-in-time:
    each row gets the indicators of its series' last bar at or before its timestamp and within the view's TTL,
    else NaN; never a later bar. Rows keep `entity_df`'s order and index. Reads the offline tables as of the last
    `materialize` / `refresh_offline_tables`.

    `join` picks who computes it: "feast" is Feast's `get_historical_features`, the reference semantics; "asof"
    is `features.point_in_time` (merge_asof on the same offline rows), the same answer in O(n log n); "auto" uses
    Feast while entity rows x feature rows per series stay within `FEAST_JOIN_MAX_PAIRS` (a few seconds of Feast's
    work), merge_asof beyond. Feast's file store materialises every such pair (EURUSD's 5,000 bars: 25M pairs,
    about a minute; 1M bars: 745 GiB), so whole-history training sets need merge_asof. Feast stays the path where
    it is cheap (ad-hoc and small sets), so both paths keep running in production and in the tests, and
    tests/features/test_point_in_time.py checks that they give the same frame on both offline stores.
    The path taken is logged (logger `features.store`, INFO). Each distinct (symbol, timeframe, timestamp) is
    joined once and copied to its rows: Feast's file store would keep only one of duplicate entity rows.
    """
    from features.point_in_time import ViewSpec, asof_join, join_pairs, read_feature_rows

    if join not in JOINS:
        raise ValueError(f"join must be one of {JOINS}, not {join!r}")
    frame = _entity_rows(entity_df)
    columns = list(ENTITY_DF_COLUMNS)
    of_row = frame.groupby(columns, sort=False, dropna=False, observed=True).ngroup().to_numpy()  # by 1st appearance
    keys = frame[columns].iloc[np.unique(of_row, return_index=True)[1]].reset_index(drop=True)
    store = get_store(settings)
    spec = ViewSpec.of(_registered_views(store)[INDICATORS_VIEW], INDICATOR_COLUMNS)
    values, path, pairs = np.empty((0, len(INDICATOR_COLUMNS))), "none (no entity rows)", "0"
    if len(keys) and join == "feast":
        values, path, pairs = _feast_join(store, keys), "feast", "?"
    elif len(keys):
        engine = engine_for(settings) if settings.mode == "cluster" else None
        try:
            rows = read_feature_rows(spec, keys, str(FEATURES_DIR), engine)
        finally:
            if engine is not None:
                engine.dispose()
        count = join_pairs(keys, rows, spec.join_keys)
        pairs = f"{count:,}"
        if join == "auto" and count <= FEAST_JOIN_MAX_PAIRS:
            values, path = _feast_join(store, keys), "feast"
        else:
            values, path = asof_join(keys, rows, spec).to_numpy(), "merge_asof"
    log.info(
        "point-in-time join of %d entity rows (%d distinct) by %s (join=%s, %s row pairs)",
        len(frame),
        len(keys),
        path,
        join,
        pairs,
    )
    frame[list(INDICATOR_COLUMNS)] = values[of_row]
    frame.index = entity_df.index
    return frame


def _entity_rows(entity_df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `entity_df` with `event_timestamp` in UTC; raises `FeatureInputError` for missing columns or
    times."""
    missing = [c for c in ENTITY_DF_COLUMNS if c not in entity_df.columns]
    if missing:
        raise FeatureInputError(f"entity_df lacks columns {missing}: it needs {list(ENTITY_DF_COLUMNS)}")
    frame = entity_df.copy()
    stamps = pd.to_datetime(frame["event_timestamp"])
    frame["event_timestamp"] = stamps.dt.tz_localize("UTC") if stamps.dt.tz is None else stamps.dt.tz_convert("UTC")
    if frame["event_timestamp"].isna().any():
        raise FeatureInputError("entity_df has rows without an event_timestamp")
    return frame


def _feast_join(store: FeatureStore, keys: pd.DataFrame) -> np.ndarray:
    """The indicators of each row of `keys` (distinct symbol, timeframe, event_timestamp) by Feast's
    `get_historical_features`, as float64 in `keys`' order."""
    features = [f"{INDICATORS_VIEW}:{c}" for c in INDICATOR_COLUMNS]
    with _quiet():
        joined = store.get_historical_features(
            entity_df=keys.assign(_aicash_key=range(len(keys))), features=features
        ).to_df()
    # Joined back by key: the file (dask) offline store drops rows with no feature value in reach (before a
    # series' first bar, or beyond the TTL) where PostgreSQL keeps them with NULLs; here both give NaN.
    values = joined[["_aicash_key", *INDICATOR_COLUMNS]].set_index("_aicash_key").reindex(range(len(keys)))
    return values.to_numpy(dtype="float64")


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Feast prints progress of its own (colored lines, tqdm bars); aicash shows its own progress instead."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield
