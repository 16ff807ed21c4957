import numpy as np
import pandas as pd
import pytest

from aicash.model_input import MODEL_FEATURES
from aicash.training.dataset import build_samples
from aicash.training.labels import direction_labels, horizon_log_returns
from tests.support.training import TINY


def test_no_window_crosses_series_and_windows_are_the_frames_rows(synth):
    samples = build_samples(synth, TINY)
    assert {k for k, _ in samples.series_keys} == {"SYN001", "SYN002"}
    windows = samples.windows(np.arange(len(samples)))
    assert windows.shape == (len(samples), TINY.window_bars, len(MODEL_FEATURES))
    rows = samples.end_row[:, None] + np.arange(-TINY.window_bars + 1, 1)
    assert (samples.row_series[rows] == samples.series[:, None]).all()
    # every series' first window ends at its window_bars-th row, not earlier (no borrowing from the series before)
    for series in range(len(samples.series_keys)):
        first_row = np.flatnonzero(samples.row_series == series)[0]
        assert samples.end_row[samples.series == series].min() == first_row + TINY.window_bars - 1

    one = synth[synth.symbol == "SYN002"].sort_values("ts").reset_index(drop=True)
    i = np.flatnonzero(samples.series == samples.series_keys.index(("SYN002", "1h")))[10]
    last = one.index[one.ts == pd.Timestamp(samples.ts[i], tz="UTC")][0]
    expected = one.loc[last - TINY.window_bars + 1 : last, list(MODEL_FEATURES)].to_numpy(np.float32)
    assert np.array_equal(samples.windows(np.array([i]))[0], expected)


def test_labels_and_returns_are_those_of_the_window_s_last_bar(synth):
    samples = build_samples(synth, TINY)
    one = synth[synth.symbol == "SYN001"].sort_values("ts").reset_index(drop=True)
    ret = horizon_log_returns(one.close.to_numpy(), TINY.horizon_bars)
    labels = direction_labels(ret, one.volatility_20.to_numpy(), TINY.horizon_bars, TINY.flat_threshold)
    mine = samples.series == samples.series_keys.index(("SYN001", "1h"))
    pos = one.set_index("ts").index.get_indexer(pd.DatetimeIndex(samples.ts[mine], tz="UTC"))
    assert np.array_equal(samples.label[mine], labels[pos])
    assert np.allclose(samples.horizon_return[mine], ret[pos])
    # the label reads the bar `horizon` bars later; the last `horizon` bars have no sample
    assert (samples.label_end_ts[mine] == one.ts.to_numpy("datetime64[ns]")[pos + TINY.horizon_bars]).all()
    assert pos.max() == len(one) - 1 - TINY.horizon_bars


def test_samples_are_in_time_order(synth):
    samples = build_samples(synth, TINY)
    assert (np.diff(samples.ts.astype(np.int64)) >= 0).all()


def test_a_missing_value_removes_every_window_that_contains_it(synth):
    broken = synth.sort_values(["symbol", "ts"]).reset_index(drop=True)
    broken.loc[100, "rsi_value"] = np.nan
    samples = build_samples(broken, TINY)
    assert np.isfinite(samples.windows(np.arange(len(samples)))).all()
    assert len(samples) == len(build_samples(synth, TINY)) - TINY.window_bars


def test_missing_columns_and_duplicate_bars_are_refused(synth):
    with pytest.raises(ValueError, match="lacks columns \\['close'\\]"):
        build_samples(synth.drop(columns="close"), TINY)
    with pytest.raises(ValueError, match="duplicate time stamps"):
        build_samples(pd.concat([synth, synth.iloc[:1]]), TINY)
