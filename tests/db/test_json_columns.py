"""JSON columns are written by orjson (`aicash.db.engine.json_text`): the standard library's documents, faster;
NaN and infinities as null on both databases; what orjson refuses is left to the standard library."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime

import numpy as np
import pytest
from sqlalchemy import select

from aicash.db.engine import json_text
from aicash.db.models import Prediction
from aicash.serving.prediction_log import PredictionLog

PLAIN = [
    {}, [], "text", 0, -7, 1.5, True, None,
    {"nested": {"list": [1, 2.25, "é", None, False], "empty": {}}, "quote\"s": "back\\slash\n"},
    {"rsi_value": 65.12345678901234, "tiny": 5e-324, "big": 1.7976931348623157e308, "neg": -0.0},
]


@pytest.mark.parametrize("value", PLAIN)
def test_plain_values_read_back_as_the_standard_library_writes_them(value: object) -> None:
    assert json.loads(json_text(value)) == json.loads(json.dumps(value)) == value


def test_non_text_keys_become_text_as_the_standard_library_makes_them() -> None:
    value = {7: "a", 2.5: "b", False: "c", None: "d"}
    assert json.loads(json_text(value)) == json.loads(json.dumps(value))


def test_nan_and_infinities_become_null_and_numpy_numbers_are_numbers() -> None:
    value = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "f32": np.float32(0.5), "f64": np.float64(2.0),
             "i64": np.int64(3), "array": np.array([1.0, 2.0])}
    assert json.loads(json_text(value)) == {"nan": None, "inf": None, "ninf": None, "f32": 0.5, "f64": 2.0,
                                            "i64": 3, "array": [1.0, 2.0]}


def test_what_orjson_refuses_is_written_or_refused_as_before() -> None:
    assert json_text({"huge": 2**70}) == json.dumps({"huge": 2**70})  # beyond 64 bits: the standard library
    with pytest.raises(TypeError, match="set"):
        json_text({"a": {1, 2}})


def test_a_logged_row_holding_nan_reaches_the_table_as_null(engine, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """PostgreSQL's JSONB refused the standard library's `NaN` (the row was dead-lettered); SQLite stored a document
    its JSON functions reject. Both now hold null, and every other value as given."""
    plog = PredictionLog(engine, spill_path=tmp_path / "spill.jsonl", interval_seconds=3600)
    features = {"rsi_value": math.nan, "atr_value": np.float32(0.25), "ema_12": 1.0851}
    plog.record({"request_id": "nan-row", "symbol": "EURUSD", "request": {"symbol": "EURUSD"},
                 "features": features, "output": {"confidence": math.inf, "signal": "HOLD"},
                 "model_version": "v1", "latency_ms": 0.5, "created_at": datetime.now(UTC)})
    assert plog.close() and plog.dead_letters == 0
    with engine.connect() as conn:
        row = conn.execute(select(Prediction.features, Prediction.output)
                           .where(Prediction.request_id == "nan-row")).one()
        rsi = conn.execute(select(Prediction.features["rsi_value"].as_float())).scalar_one()
    assert row.features == {"rsi_value": None, "atr_value": 0.25, "ema_12": 1.0851}
    assert row.output == {"confidence": None, "signal": "HOLD"} and rsi is None
