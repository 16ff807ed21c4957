"""Windows and the logged predictions in one, read back from SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aicash.indicators import INDICATOR_COLUMNS
from aicash.monitoring.window import BadWindowError, Window, count_predictions, load_predictions, parse_duration
from tests.support.monitoring import indicator_frame, log_predictions


@pytest.mark.parametrize(("text", "expected"), [
    ("24h", timedelta(hours=24)), ("7d", timedelta(days=7)), ("30m", timedelta(minutes=30)),
    ("2w", timedelta(weeks=2)), (" 1.5h ", timedelta(minutes=90)),
])
def test_parse_duration(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "24", "h", "0h", "-1d", "1y", "yesterday"])
def test_bad_durations_name_the_option(text: str) -> None:
    with pytest.raises(BadWindowError, match="--since .* is not a duration: use a number and a unit m/h/d/w"):
        parse_duration(text)


def test_load_predictions_reads_features_and_answers(engine) -> None:  # type: ignore[no-untyped-def]
    now = datetime.now(UTC)
    features = indicator_frame(30, seed=1)
    log_predictions(engine, features, version="v1", at=now - timedelta(minutes=1), signals=["BUY"] * 30,
                    spacing=timedelta(minutes=1))
    log_predictions(engine, indicator_frame(5, seed=2), version="v0", at=now - timedelta(days=2))

    window = Window.last(timedelta(hours=1), now)
    frame = load_predictions(engine, window)

    assert count_predictions(engine, window) == 30 and len(frame) == 30
    assert list(frame.columns[7:]) == list(INDICATOR_COLUMNS)
    assert set(frame["model_version"]) == {"v1"} and set(frame["signal"]) == {"BUY"}
    assert frame["confidence"].eq(0.6).all() and str(frame["created_at"].dt.tz) == "UTC"
    ordered = frame.sort_values("id")[list(INDICATOR_COLUMNS)].to_numpy()
    assert ordered == pytest.approx(features.to_numpy())
    assert load_predictions(engine, Window.last(timedelta(minutes=1), now - timedelta(hours=3))).empty


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)  # JSONB refuses NaN: no such row on PostgreSQL
def test_a_row_whose_json_holds_nan_is_read_not_fatal(engine) -> None:  # type: ignore[no-untyped-def]
    """Python's json writes NaN, which SQLite's JSON functions (before 3.42) reject as malformed."""
    now = datetime.now(UTC)
    log_predictions(engine, indicator_frame(3, seed=1), version="v1", at=now)
    log_predictions(engine, indicator_frame(1, seed=2).assign(rsi_value=float("nan")), version="v1", at=now)

    frame = load_predictions(engine, Window.last(timedelta(hours=1), now + timedelta(seconds=1)))

    assert len(frame) == 4
    assert frame[list(INDICATOR_COLUMNS)].notna().all(axis=1).tolist() == [True, True, True, False]


def test_the_drift_sample_is_seeded_and_the_figures_cover_the_window() -> None:
    """Evidently gets a seeded uniform sample of a large window; the counts and mean shifts cover every row."""
    from aicash.monitoring.drift import mean_shifts, prepare_frames

    reference = indicator_frame(2000, seed=1)
    current = indicator_frame(5000, seed=2, shift={"rsi_value": 2.0}).assign(
        model_version="v1", signal=["BUY"] * 3000 + ["SELL"] * 2000)
    shares = {"SELL": 0.3, "HOLD": 0.4, "BUY": 0.3}

    ref, cur = prepare_frames(reference, current, shares, "v1", max_current_rows=300)
    again = prepare_frames(reference, current, shares, "v1", max_current_rows=300)[1]

    assert len(ref) == 2000 and len(cur) == 300 and cur.equals(again)
    assert list(cur.columns) == [*INDICATOR_COLUMNS, "signal"]
    assert len(prepare_frames(reference, current, shares, "v1", max_current_rows=5000)[1]) == 5000
    shifts = mean_shifts(reference, current)
    assert shifts["rsi_value"] == pytest.approx(2.0, abs=0.1) and shifts["ema_12"] == pytest.approx(0.0, abs=0.1)
