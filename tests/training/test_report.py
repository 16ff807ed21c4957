"""The training report names the gate's measure and shows the search behind the model (trials, DSR, PBO)."""

from aicash.cli.run_view import search_line
from aicash.training.report import _metrics_table, _search_section
from tests.support.evaluation import figures, search_block


def test_the_search_section_gives_trials_dsr_and_pbo() -> None:
    section = _search_section({**search_block(), "selected_trial": 7, "family": "gru"})
    assert "16 trials; selected: trial 7 (gru)" in section
    assert "deflated Sharpe ratio 0.99: Sharpe 0.05 per period over 2931 bars vs SR0 0.03" in section
    assert "probability of backtest overfitting 0.1 over 12870 splits of 16 blocks" in section
    single = _search_section({**search_block(pbo=None, trials=1), "selected_trial": 1, "family": "lstm"})
    assert "1 trial;" in single and "n/a (fewer than 2 trials)" in single
    assert "No search evidence" in _search_section(None)


def test_the_figures_table_names_directional_accuracy_and_ic() -> None:
    table = _metrics_table({"model": figures(), "majority": figures(win_rate=None, trades=0, directional=None)})
    assert "<th>directional accuracy of traded signals</th>" in table and "<th>IC (rank corr." in table
    assert "<td>n/a</td>" in table  # the majority baseline never trades: no directional accuracy


def test_the_run_summary_names_thesearch_block() -> None:
    assert search_line({"search": search_block(dsr=0.4, pbo=0.7)}) == (
        "search: 16 trials, deflated Sharpe ratio 0.400, PBO 0.700")
    assert search_line({"aggregate": {}}) is None
