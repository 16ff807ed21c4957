"""`aicash models show` leads with the model's walk-forward figures, the average confidence among them, beside the
guide's targets (accuracy > 65 %, win rate > 55 %, average confidence > 70 %)."""

from __future__ import annotations

import re
from pathlib import Path

from aicash.db.engine import make_engine
from aicash.registry import register_model, store_for
from tests.support.registry import make_artifacts

MODEL = {"samples": 2931, "accuracy": 0.4719, "trades": 78, "coverage": 0.0266, "win_rate": 0.5872,
         "average_confidence": 0.5012, "sharpe": -0.31}


def test_show_gives_the_average_confidence_against_the_guide_target(cli, env, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(settings.sqlalchemy_url)
    register_model(engine, store_for(settings), version="v1", artifacts_dir=make_artifacts(tmp_path / "v1", 0),
                   metrics={"aggregate": {"model": MODEL, "baselines": {}}}, approved=False,
                   reasons=["accuracy 0.472 < 0.55"], actor="pipeline")
    engine.dispose()

    card = cli("models", "show", "v1")

    assert card.exit_code == 0, card.output
    lines = {re.split(r"\s{2,}|│", line.strip("│ "))[0].strip(): line for line in card.stdout.splitlines()}
    assert "0.5012" in lines["average confidence"] and "> 70%: not met" in lines["average confidence"]
    assert "0.4719" in lines["accuracy"] and "> 65%: not met" in lines["accuracy"]
    assert "0.5872" in lines["win rate"] and "> 55%: met" in lines["win rate"]
    assert "78" in lines["trades"] and "-0.31" in lines["Sharpe after costs"]


def test_show_without_walk_forward_figures_has_no_targets_table(cli, env, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(settings.sqlalchemy_url)
    register_model(engine, store_for(settings), version="v2", artifacts_dir=make_artifacts(tmp_path / "v2", 1),
                   metrics={"accuracy": 0.6}, approved=True, reasons=[], actor="pipeline")
    engine.dispose()
    card = cli("models", "show", "v2")
    assert card.exit_code == 0 and "guide's target" not in card.stdout and "accuracy" in card.stdout
