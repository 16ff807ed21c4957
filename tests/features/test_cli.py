"""`aicash features apply | materialize | show | env` end to end, and bad input exiting 2 with a message."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd

from aicash.indicators import INDICATOR_COLUMNS, with_indicators
from aicash.market.store import load_candles
from aicash.model_input import MODEL_FEATURES, WINDOW_BARS


def test_apply_materialize_show(cli, engine, candles: dict[str, pd.DataFrame]) -> None:  # type: ignore[no-untyped-def]
    applied = cli("features", "apply")
    assert applied.exit_code == 0, applied.stderr
    assert "FeatureView technical_indicators" in applied.stdout and "FeatureService signal_model_v1" in applied.stdout

    done = cli("features", "materialize")
    assert done.exit_code == 0, done.stderr
    assert "materialized technical_indicators: 2 series" in done.stdout
    assert "materialized indicator_window: 2 series" in done.stdout

    shown = cli("features", "show", "syn002", "--window")
    assert shown.exit_code == 0, shown.stderr
    payload = json.loads(shown.stdout)
    expected = with_indicators(load_candles(engine, ["SYN002"], "1h"))
    assert payload["symbol"] == "SYN002" and payload["feature_service"] == "signal_model_v1"
    assert pd.Timestamp(payload["event_timestamp"]) == expected["ts"].iloc[-1]
    assert payload["indicators"] == {c: expected[c].iloc[-1] for c in INDICATOR_COLUMNS}
    assert payload["window"]["shape"] == [WINDOW_BARS, len(MODEL_FEATURES)]
    np.testing.assert_array_equal(
        np.float32(payload["window"]["values"]), expected[list(MODEL_FEATURES)].to_numpy(np.float32)[-WINDOW_BARS:]
    )
    assert "values" not in json.loads(cli("features", "show", "SYN002").stdout)["window"]

    again = cli("features", "materialize", "--incremental")
    assert again.exit_code == 0 and "already up to date" in again.stdout


def test_bad_input_exits_2_with_a_message(cli, candles: dict[str, pd.DataFrame]) -> None:  # type: ignore[no-untyped-def]
    before_apply = cli("features", "materialize")
    assert before_apply.exit_code == 2 and "aicash features apply" in before_apply.stderr
    shown = cli("features", "show", "SYN001")
    assert shown.exit_code == 2 and "aicash features apply" in shown.stderr
    assert cli("features", "apply").exit_code == 0
    cases = {
        ("show", "UNKNOWN"): "unknown symbol UNKNOWN",
        ("show", "SYN001"): "not materialized",
        ("show", "SYN001", "--timeframe", "7h"): "--timeframe '7h' is not supported",
        ("materialize", "--start", "2020-02-01", "--end", "2020-01-01"): "is after --end",
        ("materialize", "--start", "2031-01-01"): "no candles between",
        ("materialize", "--start", "yesterday-ish"): "--start 'yesterday-ish' is not a date/time",
        ("materialize", "--incremental", "--end", "2020-01-05"): "give no --start/--end",
    }
    for args, message in cases.items():
        result = cli("features", *args)
        assert result.exit_code == 2, args
        assert message in result.stderr, (args, result.stderr)
        assert "Traceback" not in result.stderr + result.stdout


def test_env_prints_what_feasts_cli_needs(cli, settings) -> None:  # type: ignore[no-untyped-def]
    result = cli("features", "env")
    assert result.exit_code == 0
    names = {line.split("=", 1)[0].removeprefix("export ") for line in result.stdout.splitlines()}
    assert {"AICASH_HOME", "FEAST_FS_YAML_FILE_PATH", "FEATURE_REPO_DIR_ENV_VAR"} <= names
    if settings.mode == "cluster":
        assert {"DATABASE_URL", "AICASH_PG_HOST", "AICASH_PG_SSLMODE", "AICASH_FEAST_REGISTRY_URL"} <= names
