"""Every model family is served: a LightGBM artifact folder loaded as the service loads it, answering requests."""

from __future__ import annotations

import numpy as np
import pytest

from aicash.model_input import MODEL_FEATURES, WINDOW_BARS
from aicash.serving.runtime import FeatureSnapshot, LoadedModel, SignalRuntime
from aicash.serving.schemas import EXAMPLE_INPUT, PredictRequest
from aicash.signals.rule import SIGNALS
from aicash.training import load_model, train_and_evaluate
from tests.support.training import TINY, synth_frame


@pytest.fixture(scope="module")
def lightgbm_folder(tmp_path_factory):  # type: ignore[no-untyped-def]
    frame = synth_frame(bars=300)
    config = TINY.model_copy(update={"family": "lightgbm", "window_bars": WINDOW_BARS, "n_folds": 2})
    result = train_and_evaluate(frame, config)
    folder = tmp_path_factory.mktemp("lightgbm")
    result.save(folder)
    window = frame[frame["symbol"] == "SYN001"][list(MODEL_FEATURES)].tail(WINDOW_BARS).to_numpy(np.float32)
    return folder, result, window


def test_the_runtime_serves_a_lightgbm_model_with_its_training_probabilities(lightgbm_folder) -> None:  # type: ignore[no-untyped-def]
    folder, result, window = lightgbm_folder
    model = load_model(folder)
    assert model.family == "lightgbm"
    snapshot = FeatureSnapshot(indicators=dict(zip(MODEL_FEATURES, window[-1].tolist(), strict=True)), window=window)
    runtime = SignalRuntime(read_features=lambda symbol, timeframe: snapshot,
                            load_models=lambda: [LoadedModel("v1", "production", 100.0, model)], read_weights=dict,
                            cache_ttl_seconds=60, reload_seconds=3600)
    try:
        request = PredictRequest.model_validate(EXAMPLE_INPUT)
        answer = runtime.predict(request)
        merged = window.copy()
        for name, value in request.indicators.model_dump(exclude_none=True).items():
            merged[-1, MODEL_FEATURES.index(name)] = value
        expected = result.predict_proba(merged[None])[0]
        assert [answer.probabilities[c] for c in SIGNALS] == pytest.approx(expected.tolist(), abs=1e-5)
        assert answer.signal in SIGNALS and answer.model_version == "v1"
    finally:
        runtime.close()
