"""Commands that guess right (`aicash.cli.series`): `--timeframe` left out is the one timeframe a symbol has candles
in (with several, exit 2 listing them), and `pipeline run` refuses missing or too short series with exit 2 before
anything is recorded or started."""

from __future__ import annotations

import numpy as np
import pandas as pd
from sqlalchemy import select
from typer.testing import CliRunner

from aicash.cli.main import app
from aicash.cli.series import minimum_bars
from aicash.db.engine import make_engine
from aicash.db.models import TrainingRun
from aicash.indicators import with_indicators
from aicash.market.synth import synth_symbol
from aicash.training.config import TrainingConfig
from aicash.training.dataset import build_samples
from aicash.training.walk_forward import walk_forward_folds


def aicash(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, list(args))


def training_runs(home) -> list[str]:  # type: ignore[no-untyped-def]
    engine = make_engine(f"sqlite:///{home / 'aicash.db'}")
    with engine.connect() as conn:
        rows = list(conn.execute(select(TrainingRun.status)).scalars())
    engine.dispose()
    return rows


def test_the_one_stored_timeframe_is_the_default_and_several_are_listed(clean_env) -> None:  # type: ignore[no-untyped-def]
    assert aicash("data", "synth", "--symbols", "1", "--bars", "300", "--timeframe", "1d").exit_code == 0
    shown = aicash("data", "indicators", "SYN001")
    assert shown.exit_code == 0, shown.output
    assert "SYN001 1d:" in shown.output
    assert aicash("data", "synth", "--symbols", "1", "--bars", "300", "--timeframe", "4h").exit_code == 0
    both = aicash("data", "indicators", "SYN001")
    assert both.exit_code == 2
    assert "SYN001: 1d, 4h" in both.stderr and "--timeframe" in both.stderr
    assert aicash("data", "indicators", "SYN001", "--timeframe", "4h").exit_code == 0


def test_pipeline_run_refuses_a_missing_series_before_anything_starts(clean_env) -> None:  # type: ignore[no-untyped-def]
    assert aicash("data", "synth", "--symbols", "1", "--bars", "300", "--timeframe", "1d").exit_code == 0
    missing = aicash("pipeline", "run", "lstm-training", "--symbol", "SYN001", "--timeframe", "1h")
    assert missing.exit_code == 2
    assert "no 1h candles for SYN001 (it has 1d: pass --timeframe)" in missing.stderr
    unknown = aicash("pipeline", "run", "lstm-training", "--symbol", "GBPUSD")
    assert unknown.exit_code == 2 and "no 1h candles for GBPUSD" in unknown.stderr and "aicash data" in unknown.stderr
    assert training_runs(clean_env / "home") == []  # nothing recorded, nothing started


def test_pipeline_run_refuses_a_series_too_short_for_the_folds(clean_env) -> None:  # type: ignore[no-untyped-def]
    assert aicash("data", "synth", "--symbols", "1", "--bars", "120", "--timeframe", "1d").exit_code == 0
    short = aicash("pipeline", "run", "lstm-training", "--symbol", "SYN001")  # the 1d series, by default
    assert short.exit_code == 2
    needed = minimum_bars(TrainingConfig())
    assert f"SYN001 1d has 120 bars; training needs at least {needed}" in short.stderr
    assert "n_folds" in short.stderr
    assert training_runs(clean_env / "home") == []


def test_the_minimum_makes_every_walk_forward_fold() -> None:
    """At `minimum_bars`, every fold of the default config (and of a longer one) has fit, validation and test
    samples: the trainer's own error for an empty fold cannot happen on a series the CLI let through."""
    for config in (TrainingConfig(), TrainingConfig(n_folds=10, window_bars=32, horizon_bars=8)):
        candles = synth_symbol(minimum_bars(config), np.random.default_rng(0),
                               pd.Timestamp("2020-01-01", tz="UTC"), pd.Timedelta("1d"))
        frame = with_indicators(candles.assign(symbol="SYN", timeframe="1d"))
        folds = walk_forward_folds(build_samples(frame, config), config)
        assert len(folds) == config.n_folds
        assert all(len(f.fit) and len(f.validation) and len(f.test) for f in folds)
