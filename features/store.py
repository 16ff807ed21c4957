"""aicash's handle on Feast: the store for the settings, apply and materialize.

Which configuration the store gets comes from `features.config`; the point-in-time training join is in
`features.training_join`.
"""

from __future__ import annotations

import contextlib
import copy
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

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
from aicash.settings import Settings
from features.config import FEATURES_DIR, config_name, repo_config

if TYPE_CHECKING:
    from feast import FeatureStore

FEATURE_VIEWS = ("technical_indicators", "indicator_window")
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

# (step, done, total): "indicators" per series, then "offline tables", then "materialize <view>" per view.
Progress = Callable[[str, int, int], None]


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


def get_store(settings: Settings) -> FeatureStore:
    """The Feast `FeatureStore` for `settings.mode` (local files or PostgreSQL), ready to read or write."""
    from feast import FeatureStore

    _prepare_storage(settings)
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
    with engine_for(settings).begin() as conn:
        query = "SELECT 1 FROM pg_namespace WHERE nspname = %(name)s"
        found = conn.exec_driver_sql(query, {"name": PG_SCHEMA}).scalar()
        if found is None:
            conn.exec_driver_sql(f"CREATE SCHEMA IF NOT EXISTS {PG_SCHEMA}")


def apply(settings: Settings) -> ApplyResult:
    """Register the definitions of `features/repo.py` (and drop objects no longer defined), creating the online
    tables, and empty offline tables when none exist yet. Idempotent, like `feast apply`."""
    from features.repo import build

    ensure_offline_tables(engine_for(settings), settings.aicash_home)
    store = get_store(settings)
    objects = build(settings).objects()
    stale = _stale_objects(store, {(type(o).__name__, o.name) for o in objects})
    if stale or not _all_registered(store, objects):  # unchanged: nothing to do, and no DDL (training may run it)
        with quiet():
            store.apply(objects, objects_to_delete=stale, partial=not stale)
    return ApplyResult(
        registry="sql (schema feast)" if config_name(settings) == "cluster" else str(store.config.registry.path),
        applied=[f"{type(o).__name__} {o.name}" for o in objects],
        removed=[f"{type(o).__name__} {o.name}" for o in stale],
    )


def _all_registered(store: FeatureStore, objects: list) -> bool:  # type: ignore[type-arg]
    """Every object registered exactly as defined, aside from what Feast adds to a feature view (materialization
    intervals, entity columns inferred at apply). Feast's own apply would re-run its CREATE ... IF NOT EXISTS on the
    online tables, which only their owner may."""
    registered = {(type(o).__name__, o.name): o for o in [
        *store.list_feature_services(), *store.list_feature_views(), *store.list_entities(),
        *store.list_data_sources()]}
    for defined in objects:
        found = copy.copy(registered.get((type(defined).__name__, defined.name)))
        if hasattr(found, "materialization_intervals"):
            found.materialization_intervals = defined.materialization_intervals
            found.entity_columns = found.entity_columns if defined.entity_columns else []
        if found is None or found != defined:
            return False
    return True


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
    on_series = (lambda done, total: progress("indicators", done, total)) if progress else None
    series = series_features(engine, end, on_series)
    if progress:
        progress("offline tables", 0, 1)
    written = write_offline_tables(engine, settings.aicash_home, series)
    if progress:
        progress("offline tables", 1, 1)
    return written, series


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
    _, last = candle_span(engine_for(settings), start, end)
    store = get_store(settings)
    views = registered_views(store)
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
        with quiet():
            store.materialize(start_date=starts[name], end_date=finish, feature_views=[name])
    if progress:
        progress(f"materialize {FEATURE_VIEWS[-1]}", len(FEATURE_VIEWS), len(FEATURE_VIEWS))
    counts = {name: _entities_in_range(series, starts[name], finish)[name] for name in FEATURE_VIEWS}
    shown_start = min(starts.values())
    if offline.first is not None:
        shown_start = max(shown_start, offline.first.to_pydatetime())  # not 1970 when materializing everything
    return MaterializeResult(shown_start, finish, offline, counts)


def registered_views(store: FeatureStore) -> dict:  # type: ignore[type-arg]
    """aicash's feature views as registered (name -> FeatureView), read fresh from the registry; raises
    `NotAppliedError` when one is missing."""
    views = {v.name: v for v in store.list_feature_views(allow_cache=False)}
    missing = [name for name in FEATURE_VIEWS if name not in views]
    if missing:
        raise NotAppliedError(
            f"feature views {', '.join(missing)} are not registered: run `aicash features apply` first"
        )
    return views


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Feast prints progress of its own (colored lines, tqdm bars); aicash shows its own progress instead."""
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        yield
