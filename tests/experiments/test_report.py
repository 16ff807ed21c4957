"""The search report: one self-contained page with the trials' Sharpe ratios against the expected maximum under no
skill, the winner's equity against the baselines, the leaderboard, the evidence and the gate."""

from __future__ import annotations

import base64
import re

import pytest

from aicash.experiments import render_search_report
from aicash.experiments.report import annualisation, ranked
from tests.support.experiments import EXPECTED_MAX, make_equity, make_search, make_trials

GATE = {"approved": False, "reasons": ["deflated Sharpe ratio 0.61 < 0.95 (4 trials)"],
        "passed": ["passed: directional accuracy of traded signals 58.0% >= 55%"]}


def images(page: str) -> list[bytes]:
    return [base64.b64decode(b) for b in re.findall(r"src='data:image/png;base64,([^']+)'", page)]


def test_the_report_has_every_piece() -> None:
    experiment = {"id": 5, "series": ["EURUSD"], "timeframe": "1h", "sampler": "random", "seed": 7,
                  "search": make_search()}
    page = render_search_report(experiment, make_trials(), make_equity(), GATE)
    assert page.startswith("<!doctype html>") and "http" not in page  # self-contained
    pngs = images(page)
    assert len(pngs) == 2 and all(png.startswith(b"\x89PNG") for png in pngs)  # Sharpe histogram, equity
    assert f"{EXPECTED_MAX:.4g} per bar" in page
    # the winner's 2.5 annualised is 0.05 per bar: the line sits at 0.0312 x 50 = 1.56 annualised
    assert "= 1.56 annualised" in page
    assert "a <b>lightgbm</b> with num_leaves=15" in page
    assert "REJECTED" in page and "deflated Sharpe ratio 0.61 &lt; 0.95" in page and "directional accuracy" in page
    assert "0.97" in page and "12870" in page  # DSR, PBO splits
    board = page[page.index("Leaderboard"):]
    rows = re.findall(r"<tr(?: class='selected')?><td>(\d+)</td><td>(\w+)</td>", board)
    assert rows == [("3", "lightgbm"), ("1", "gru"), ("2", "gru"), ("4", "lightgbm")]  # by Sharpe, none last
    assert "<tr class='selected'><td>3</td>" in board and board.count("winner") == 1
    assert len(page) < 1_000_000


def test_without_equity_gate_or_pbo_it_says_so() -> None:
    search = {**make_search(trials=1), "pbo": None}
    trials = [{**make_trials()[2], "number": 1}]
    page = render_search_report({"search": {**search, "selected_trial": 1}}, trials, None, None)
    assert "No equity curves recorded" in page and "Not decided yet" in page
    assert "not computed (fewer than 2 trials)" in page and len(images(page)) == 1


def test_the_stored_decision_stands_in_for_the_gate() -> None:
    experiment = {"search": make_search(), "decision": "approved", "reasons": [], "model_version": "v7"}
    assert "APPROVED</span> as v7" in render_search_report(experiment, make_trials(), None, None)


@pytest.mark.parametrize(("experiment", "search", "factor"), [
    ({"bars_per_year": 6400}, {}, 80.0),                       # recorded
    ({}, make_search(), 50.0),                                  # winner: 2.5 annualised / 0.05 per bar
    ({"timeframe": "4h"}, {"deflated_sharpe": None}, 1560 ** 0.5),  # 24 x 5 x 52 / 4 bars a year
    ({"timeframe": "tick"}, {}, None),
])
def test_annualisation(experiment: dict, search: dict, factor: float | None) -> None:  # type: ignore[type-arg]
    found, _ = annualisation(make_trials(), search, experiment)
    assert found == (None if factor is None else pytest.approx(factor))


def test_ranked_puts_trials_without_a_sharpe_last() -> None:
    assert [t["number"] for t in ranked(make_trials())] == [3, 1, 2, 4]
