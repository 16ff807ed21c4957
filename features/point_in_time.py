"""Feast's point-in-time join, done with `pandas.merge_asof` on the offline data Feast itself reads.

Feast 0.67's file (dask) offline store merges every entity row with every feature row of its entity before it
filters by time and TTL, so its cost grows with (entity rows x feature rows) per series; its PostgreSQL store's
query is no better in practice. The join it computes is simple to state: each entity row gets the feature row of
the same join keys with the latest timestamp t such that `entity_ts - ttl <= t <= entity_ts` (no lower bound
when the view has no TTL), or no value (NaN) when there is none. A backward `merge_asof` by join keys, with the
TTL as (inclusive) tolerance and exact matches allowed, is that same rule in O(n log n). Feast's own contrib Ray
and MongoDB offline stores use merge_asof the same way. tests/features/test_point_in_time.py checks it against
`get_historical_features` on both offline stores.

The feature rows are read as the view's batch source declares them: a `FileSource`'s Parquet file(s) or a
`PostgreSQLSource`'s table or query, its timestamp field and field mapping; only the rows that can match (the
entities' join keys, timestamps in [first entity time - TTL, last entity time]) are read.
"""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv
import pyarrow.dataset as ds

if TYPE_CHECKING:
    from feast import FeatureView
    from feast.data_source import DataSource
    from sqlalchemy import Engine

ENTITY_TIMESTAMP = "event_timestamp"  # the entity_df column Feast takes as the row's time
_TS = "__aicash_ts"
_SERIES = "__aicash_series"
_ROW = "__aicash_row"
_MATCH = "__aicash_match"
_STAMP = "datetime64[ns, UTC]"


@dataclass(frozen=True)
class ViewSpec:
    """What of a Feast `FeatureView` the point-in-time join uses."""

    name: str
    join_keys: tuple[str, ...]
    features: tuple[str, ...]
    ttl: timedelta | None  # None: no TTL (Feast's ttl of 0 or unset): any earlier row is in reach
    source: DataSource

    @classmethod
    def of(cls, view: FeatureView, features: list[str] | tuple[str, ...]) -> ViewSpec:
        """The spec of `features` of a registered view; join keys as Feast's stores derive them."""
        keys = tuple(view.projection.join_key_map.get(c.name, c.name) for c in view.entity_columns)
        unknown = sorted(set(features) - {f.name for f in view.features})
        if unknown:
            raise ValueError(f"feature view {view.name} has no features {unknown}")
        if view.batch_source is None:
            raise ValueError(f"feature view {view.name} has no batch source to read")
        ttl = view.ttl if view.ttl and view.ttl.total_seconds() != 0 else None
        return cls(view.name, keys, tuple(features), ttl, view.batch_source)


Bounds = tuple[datetime | None, datetime]


def reach(spec: ViewSpec, entities: pd.DataFrame) -> Bounds | None:
    """[first entity time - TTL, last entity time], whole microseconds outwards (the offline tables' precision):
    where a feature row must lie to match any entity row. None for no entity row; no lower bound without a TTL."""
    if entities.empty:
        return None
    stamps = entities[ENTITY_TIMESTAMP]
    low = (stamps.min() - spec.ttl).floor("us").to_pydatetime() if spec.ttl is not None else None
    return low, stamps.max().floor("us").to_pydatetime()


def read_feature_rows(
    spec: ViewSpec, entities: pd.DataFrame, repo_path: str, engine: Engine | None = None
) -> pd.DataFrame:
    """The view's offline rows that can match `entities` (join keys + `event_timestamp` in UTC): columns
    join keys, `__aicash_ts` (UTC, ns) and the features, in the source's order. `engine` is the database of a
    `PostgreSQLSource` (the one the offline store's configuration points to)."""
    from feast import FileSource
    from feast.infra.offline_stores.contrib.postgres_offline_store.postgres_source import PostgreSQLSource

    source = spec.source
    if source.created_timestamp_column:
        raise ValueError(f"{spec.name}: a created_timestamp_column changes Feast's join; use Feast's own join")
    bounds = reach(spec, entities)
    to_source = {v: k for k, v in (source.field_mapping or {}).items()}
    columns = [*spec.join_keys, *spec.features]
    names = {to_source.get(c, c): c for c in columns}
    names[source.timestamp_field] = _TS
    key_values = {to_source.get(k, k): entities[k].dropna().unique().tolist() for k in spec.join_keys}
    if bounds is None or not all(key_values.values()):
        table = pa.table({name: pa.array([], pa.float64()) for name in names})
    elif isinstance(source, FileSource):
        table = _read_file(source, repo_path, list(names), key_values, bounds)
    elif isinstance(source, PostgreSQLSource):
        if engine is None:
            raise ValueError(f"{spec.name}: reading a PostgreSQLSource needs the database engine")
        table = _read_postgres(source, engine, list(names), key_values, bounds)
    else:
        raise TypeError(f"{spec.name}: no point-in-time reader for {type(source).__name__}")
    rows = table.rename_columns([names[c] for c in table.column_names]).to_pandas()
    rows[_TS] = pd.to_datetime(rows[_TS], utc=True).astype(_STAMP)
    return rows[[*spec.join_keys, _TS, *spec.features]]


def _read_file(
    source: DataSource,
    repo_path: str,
    columns: list[str],
    key_values: dict[str, list[object]],
    bounds: Bounds,
) -> pa.Table:
    """Parquet at the source's path (file or folder, as Feast's dask store reads it), filtered while reading."""
    from feast import FileSource

    path = FileSource.get_uri_for_file_path(repo_path=repo_path, uri=source.file_options.uri)  # type: ignore[attr-defined]
    dataset = ds.dataset(path, format="parquet")
    ts = pc.field(source.timestamp_field)
    stamp_type = dataset.schema.field(source.timestamp_field).type
    low, high = (None if b is None else pa.scalar(b, pa.timestamp("us", tz="UTC")).cast(stamp_type) for b in bounds)
    condition = ts <= high if low is None else (ts >= low) & (ts <= high)
    for key, values in key_values.items():
        condition &= pc.field(key).isin(values)
    return dataset.to_table(columns=columns, filter=condition)


def _read_postgres(
    source: DataSource,
    engine: Engine,
    columns: list[str],
    key_values: dict[str, list[object]],
    bounds: Bounds,
) -> pa.Table:
    """The source's table or query, filtered in SQL, streamed out with COPY (CSV) into Arrow."""
    table = source.get_table_query_string()  # type: ignore[attr-defined]
    ts = f'"{source.timestamp_field}"'
    selected = ", ".join(f'"{c}"' for c in columns)
    where = [f"{ts} <= %s", *(f'"{k}" = ANY(%s)' for k in key_values)]
    params: list[object] = [bounds[1], *key_values.values()]
    if bounds[0] is not None:
        where.append(f"{ts} >= %s")
        params.append(bounds[0])
    sql = f"SELECT {selected} FROM {table} AS sub WHERE {' AND '.join(where)}"  # noqa: S608 (names from the registry)
    buffer = io.BytesIO()
    with engine.connect() as conn:
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        cursor.execute("SET LOCAL TIME ZONE 'UTC'")
        with cursor.copy(f"COPY ({sql}) TO STDOUT WITH (FORMAT csv, HEADER true)", params) as copy:
            for chunk in copy:
                buffer.write(chunk)
        cursor.close()
    buffer.seek(0)
    # Join keys stay text (a symbol "1000" is not a number); an empty result still has typed columns.
    types = {source.timestamp_field: pa.timestamp("us", tz="UTC"), **dict.fromkeys(key_values, pa.string())}
    convert = pa_csv.ConvertOptions(column_types=types)
    return pa_csv.read_csv(buffer, convert_options=convert)


def _series_codes(entities: pd.DataFrame, rows: pd.DataFrame, keys: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
    """One integer per distinct join-key tuple, shared by both sides (a single `by` column is cheap for
    merge_asof, several object columns are not)."""
    both = pd.concat([entities[list(keys)], rows[list(keys)]], ignore_index=True)
    codes = both.groupby(list(keys), sort=False, dropna=False, observed=True).ngroup().to_numpy()
    return codes[: len(entities)], codes[len(entities) :]


def join_pairs(entities: pd.DataFrame, rows: pd.DataFrame, keys: tuple[str, ...]) -> int:
    """Entity rows x feature rows, summed over series: the size of the intermediate frame of Feast's file store
    (bounded by the rows in reach), i.e. what its join costs."""
    left, right = _series_codes(entities, rows, keys)
    size = int(max(left.max(initial=-1), right.max(initial=-1))) + 1
    return int(np.bincount(left, minlength=size) @ np.bincount(right, minlength=size))


def asof_join(entities: pd.DataFrame, rows: pd.DataFrame, spec: ViewSpec) -> pd.DataFrame:
    """`spec.features` (float64) for each row of `entities` (join keys + `event_timestamp`, UTC), in its order
    and with its index: the feature row of the same keys with the latest timestamp in [entity time - TTL, entity
    time], else NaN. `rows` as `read_feature_rows` gives them."""
    left_codes, right_codes = _series_codes(entities, rows, spec.join_keys)
    # Only positions go through merge_asof; the feature values are gathered afterwards in one numpy take.
    left = pd.DataFrame(
        {
            _SERIES: left_codes,
            _TS: entities[ENTITY_TIMESTAMP].astype(_STAMP).array,
            _ROW: np.arange(len(entities)),
        }
    )
    right = pd.DataFrame({_SERIES: right_codes, _TS: rows[_TS].astype(_STAMP).array, _MATCH: np.arange(len(rows))})
    merged = pd.merge_asof(
        left.sort_values(_TS, kind="stable"),
        right.sort_values(_TS, kind="stable"),
        on=_TS,
        by=_SERIES,
        direction="backward",
        tolerance=pd.Timedelta(spec.ttl) if spec.ttl is not None else None,
        allow_exact_matches=True,
    )
    match = merged[_MATCH].to_numpy(dtype="float64")  # NaN: nothing in reach
    found = ~np.isnan(match)
    values = np.full((len(entities), len(spec.features)), np.nan)
    features = rows[list(spec.features)].to_numpy(dtype="float64")
    values[merged[_ROW].to_numpy()[found]] = features[match[found].astype(np.int64)]
    return pd.DataFrame(values, index=entities.index, columns=list(spec.features))
