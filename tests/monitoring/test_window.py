"""Windows and the logged predictions in one, read back from SQLite and PostgreSQL alike."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from aicash.indicators import INDICATOR_COLUMNS
from aicash.monitoring.window import BadWindowError, Window, count_predictions, load_predictions, parse_duration
from tests.monitoring.conftest import indicator_frame, log_predictions


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


def test_sample_reads_a_seeded_subset_and_counts_the_whole_window(engine) -> None:  # type: ignore[no-untyped-def]
    from aicash.monitoring.window import sample_predictions

    now = datetime.now(UTC)
    log_predictions(engine, indicator_frame(50, seed=1), version="v1", signals=["BUY"] * 30 + ["SELL"] * 20, at=now)
    window = Window.last(timedelta(hours=1), now + timedelta(seconds=1))

    sample = sample_predictions(engine, window, max_rows=20)

    assert sample.total == 50 and sample.signals == {("v1", "BUY"): 30, ("v1", "SELL"): 20}
    assert len(sample.frame) == 20 and sample.frame["id"].is_unique
    assert sample.frame[list(INDICATOR_COLUMNS)].notna().all().all()
    assert sample_predictions(engine, window, max_rows=20).frame["id"].tolist() == sample.frame["id"].tolist()
    assert len(sample_predictions(engine, window, max_rows=100).frame) == 50
