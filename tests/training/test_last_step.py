"""`load_model(folder, last_step=True)`: a recurrent model answers windows whose earlier bars it has seen by the last
step from their kept state, with the full model's probabilities; everything else goes to the full model."""

from __future__ import annotations

import logging

import numpy as np
import pytest

from aicash.model_input import MODEL_FEATURES
from aicash.serving.runtime import FeatureSnapshot, LoadedModel, SignalRuntime
from aicash.serving.schemas import PredictRequest
from aicash.signals.rule import SIGNALS
from aicash.training import last_step as ls
from aicash.training import load_model, train_and_evaluate
from bentos.wiring import serving_model
from tests.support.training import TINY

CONFIG = TINY.model_copy(update={"n_folds": 1, "max_epochs": 1})
ANCHOR = MODEL_FEATURES.index("ema_50")
SHAPES = {"lstm": {"family": "lstm"}, "lstm-2-layers": {"family": "lstm", "num_layers": 2},
          "gru-2-layers": {"family": "gru", "num_layers": 2}}


@pytest.fixture(scope="module")
def folders(synth, tmp_path_factory):
    """Tiny trained artifact folders: an LSTM of one and of two layers, a GRU of two, a TCN and a LightGBM model."""
    out = {}
    for name, update in (*SHAPES.items(), ("tcn", {"family": "tcn"}), ("lightgbm", {"family": "lightgbm"})):
        out[name] = tmp_path_factory.mktemp(name)
        train_and_evaluate(synth, CONFIG.model_copy(update=update)).save(out[name])
    return out


def other_latest_bars(windows: np.ndarray, shift: int = 5) -> np.ndarray:
    """The same prefixes and anchors with another window's latest bar (what requests for one series look like)."""
    return ls.other_latest_bars(windows, ANCHOR, shift)


@pytest.mark.parametrize("shape", SHAPES)
def test_the_last_step_gives_the_full_models_probabilities(shape, folders, real_windows):
    full = load_model(folders[shape], runtime="onnxruntime")
    scripted = load_model(folders[shape])
    served = load_model(folders[shape], runtime="onnxruntime", last_step=True)
    model = served.predict_windows
    assert isinstance(model, ls.LastStepModel) and served.last_step and served.runtime == "onnxruntime"
    assert not full.last_step and model.hits == model.misses == 0  # the check's probe left nothing behind
    # first sighting: the full model answers, bit for bit
    assert np.array_equal(served.predict_proba(real_windows), full.predict_proba(real_windows))
    assert (model.hits, model.misses) == (0, len(real_windows))
    # second sighting: each prefix's state is computed and kept; then other latest bars on the same prefixes
    for batch in (real_windows, other_latest_bars(real_windows), other_latest_bars(real_windows, 7)[:1]):
        got, want = served.predict_proba(batch), scripted.predict_proba(batch)
        assert got.shape == want.shape == (len(batch), 3) and got.dtype == np.float32
        assert np.max(np.abs(got - want)) <= 1e-5
    assert model.hits == 2 * len(real_windows) + 1 and model.misses == len(real_windows)


def test_a_new_anchor_or_a_non_finite_latest_bar_takes_the_full_model(folders, real_windows):
    served = load_model(folders["lstm"], runtime="onnxruntime", last_step=True)
    full = load_model(folders["lstm"], runtime="onnxruntime")
    model = served.predict_windows
    served.predict_proba(real_windows)
    served.predict_proba(real_windows)  # every prefix kept
    moved = real_windows.copy()
    moved[:, -1, ANCHOR] *= 1.001  # the request gives ema_50: the whole window's trend feature changes
    broken = other_latest_bars(real_windows)
    broken[:, -1, MODEL_FEATURES.index("rsi_value")] = np.nan
    for batch in (moved, broken):
        hits = model.hits
        assert np.array_equal(served.predict_proba(batch), full.predict_proba(batch))
        assert model.hits == hits


def test_a_batch_of_kept_and_new_prefixes_keeps_its_order(folders, real_windows):
    served = load_model(folders["gru-2-layers"], runtime="onnxruntime", last_step=True)
    scripted = load_model(folders["gru-2-layers"])
    half = real_windows[::2]
    served.predict_proba(half)
    served.predict_proba(half)  # the even windows' prefixes are kept, the odd ones never seen
    batch = other_latest_bars(real_windows)
    hits = served.predict_windows.hits
    assert np.max(np.abs(served.predict_proba(batch) - scripted.predict_proba(batch))) <= 1e-5
    assert served.predict_windows.hits - hits == len(half)


def test_kept_states_and_seen_prefixes_are_bounded(folders, real_windows, monkeypatch):
    monkeypatch.setattr(ls, "MAX_STATES", 3)
    served = load_model(folders["lstm"], runtime="onnxruntime", last_step=True)
    model = served.predict_windows
    monkeypatch.setattr(ls, "MAX_SEEN", 5)
    served.predict_proba(real_windows)
    assert len(model._seen) == 5  # the five newest first sightings
    model.clear()
    monkeypatch.setattr(ls, "MAX_SEEN", 100)
    for _ in range(2):
        served.predict_proba(real_windows)
    assert len(model._states) == 3 and not model._seen
    hits = model.hits
    served.predict_proba(other_latest_bars(real_windows)[-3:])  # the three newest prefixes are the ones kept
    assert model.hits - hits == 3


def test_other_families_and_the_default_load_serve_the_full_window(folders):
    for name in ("tcn", "lightgbm"):
        model = load_model(folders[name], runtime="onnxruntime", last_step=True)
        assert not model.last_step and not isinstance(model.predict_windows, ls.LastStepModel)
    assert not load_model(folders["lstm"], runtime="onnxruntime").last_step


def test_a_failed_check_serves_the_full_model_with_a_warning(folders, real_windows, monkeypatch, caplog):
    def off_by_a_bit(self, x, state):  # a last step that is wrong by more than the tolerance
        return [p + 1e-4 * (i - 1) for i, p in enumerate(step(self, x, state))]

    step = ls.LastStepModel._step
    monkeypatch.setattr(ls.LastStepModel, "_step", off_by_a_bit)
    with caplog.at_level(logging.WARNING, logger="aicash.training.artifacts"):
        model = load_model(folders["lstm"], runtime="onnxruntime", last_step=True)
    assert not model.last_step and model.runtime == "onnxruntime"
    assert "runs the full window for every request" in caplog.text and "differ by" in caplog.text


def test_the_runtime_answers_repeated_requests_by_the_last_step(folders, real_windows):
    """The runtime over a model loaded as the service loads it: a series' requests with other indicator values
    are answered by the last step from the second on, each with TorchScript's probabilities of its merged window."""
    served, scripted = serving_model(folders["lstm-2-layers"]), load_model(folders["lstm-2-layers"])
    window = real_windows[3]
    snapshot = FeatureSnapshot(indicators=dict(zip(MODEL_FEATURES, window[-1].tolist(), strict=True)), window=window)
    runtime = SignalRuntime(read_features=lambda symbol, timeframe: snapshot,
                            load_models=lambda: [LoadedModel("v1", "production", 100.0, served)], read_weights=dict,
                            cache_ttl_seconds=60, reload_seconds=3600)
    try:
        for rsi in np.linspace(20.0, 80.0, 6):
            request = PredictRequest.model_validate({"symbol": "EURUSD", "indicators": {"rsi_value": rsi}})
            answer = runtime.predict(request)
            merged = window.copy()
            merged[-1, MODEL_FEATURES.index("rsi_value")] = rsi
            expected = scripted.predict_proba(merged[None])[0]
            assert [answer.probabilities[c] for c in SIGNALS] == pytest.approx(expected.tolist(), abs=1e-5)
    finally:
        runtime.close()
    assert served.predict_windows.hits == 5 and served.predict_windows.misses == 1
