"""`aicash experiments list | show [--html FILE]` and the search line of `aicash models show`, on both databases."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import Engine

from aicash.experiments import link_version
from aicash.registry import register_model, store_for
from tests.cli.test_fast_commands import imported_by
from tests.support.experiments import make_equity, make_search, record
from tests.support.registry import make_artifacts


def test_list(cli, engine: Engine) -> None:  # type: ignore[no-untyped-def]
    empty = cli("experiments", "list")
    assert empty.exit_code == 0 and "no experiments recorded yet" in empty.stdout
    first = record(engine)
    second = record(engine, series=["GBPUSD"], search={**make_search(), "pbo": None})
    link_version(engine, first, "v20261207-1", "approved", [])
    listed = cli("experiments", "list")
    assert listed.exit_code == 0, listed.output
    lines = listed.stdout.splitlines()
    row_first = next(line for line in lines if line.strip().startswith(str(first)))
    row_second = next(line for line in lines if line.strip().startswith(str(second)))
    assert lines.index(row_second) < lines.index(row_first)  # newest first
    for text in ("model-search", "EURUSD 1h", "#3 lightgbm", "2.5", "0.97", "0.2", "v20261207-1", "approved"):
        assert text in row_first, text
    assert "GBPUSD" in row_second and "n/a" in row_second  # no PBO
    limited = cli("experiments", "list", "--limit", "1")
    assert str(second) in limited.stdout and "EURUSD" not in limited.stdout
    assert cli("experiments", "list", "--limit", "0").exit_code == 2


def test_show_and_its_report(cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    experiment_id = record(engine, equity=make_equity())
    link_version(engine, experiment_id, "v20261207-2", "rejected", ["deflated Sharpe ratio 0.61 < 0.95"])
    report = tmp_path / "out" / "search.html"
    shown = cli("experiments", "show", str(experiment_id), "--html", str(report))
    assert shown.exit_code == 0, shown.output
    out = shown.stdout
    for text in ("winner: trial 3 of 4, lightgbm (num_leaves=15)", "deflated Sharpe ratio (DSR): 0.97", "PBO: 0.2",
                 "expected max Sharpe under no skill: 0.0312 per bar", "version: v20261207-2", "decision: rejected",
                 "deflated Sharpe ratio 0.61 < 0.95", "hidden_size=16", "<- selected", "dir. accuracy", "IC"):
        assert text in out, text
    assert out.count("<- selected") == 1
    selected = next(line for line in out.splitlines() if "<- selected" in line)
    assert "lightgbm" in selected and "55.0% (300)" in selected and "30.0%" in selected  # win rate (trades), coverage
    page = report.read_text(encoding="utf-8")
    assert page.count("<img") == 2 and "0.0312" in page and "lightgbm" in page and "REJECTED" in page


def test_show_without_stored_equity_writes_the_rest(cli, engine: Engine, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    experiment_id = record(engine)
    shown = cli("experiments", "show", str(experiment_id), "--html", str(tmp_path / "r.html"))
    assert shown.exit_code == 0 and "decision: not decided yet" in shown.stdout
    page = (tmp_path / "r.html").read_text(encoding="utf-8")
    assert page.count("<img") == 1 and "No equity curves recorded" in page


def test_an_unknown_id_exits_2_naming_it(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("experiments", "show", "77")
    assert result.exit_code == 2 and "no experiment with id 77" in result.stderr


def test_models_show_gives_the_search(cli, engine: Engine, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    for i, (version, metrics) in enumerate([("v-old", {"accuracy": 0.6}),
                                            ("v-search", {"accuracy": 0.6, "search": {**make_search(),
                                                                                       "experiment_id": 3}})]):
        register_model(engine, store_for(settings), version=version, metrics=metrics, approved=True, reasons=[],
                       artifacts_dir=make_artifacts(tmp_path / version, i), actor="pipeline")
    card = cli("models", "show", "v-search")
    assert card.exit_code == 0, card.output
    assert ("search: 4 trial(s), winner trial 3 (lightgbm); deflated Sharpe ratio (DSR) 0.97 (Sharpe 0.05 per bar vs "
            "0.0312 expected by luck); PBO 0.2; experiment 3") in card.stdout
    assert "search: no search recorded" in cli("models", "show", "v-old").stdout


def test_experiments_list_imports_no_heavy_tool(tmp_path: Path) -> None:
    assert imported_by(("experiments", "list"), tmp_path / "home") == {"alembic"}
