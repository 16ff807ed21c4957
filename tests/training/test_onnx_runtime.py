"""`load_model(folder, runtime="onnxruntime")`: torch families served by ONNX Runtime with TorchScript's
probabilities, and TorchScript whenever the export or its check fails."""

from __future__ import annotations

import logging
import re
import sys

import numpy as np
import pytest

from aicash.model_input import MODEL_FEATURES
from aicash.training import load_model, train_and_evaluate
from aicash.training import onnx_runtime as onnx
from aicash.training.network import TORCH_FAMILIES
from tests.support.training import TINY

CONFIG = TINY.model_copy(update={"n_folds": 1, "max_epochs": 1})


@pytest.fixture(scope="module")
def folders(synth, tmp_path_factory):
    """One tiny trained artifact folder per torch family, and a LightGBM one."""
    out = {}
    for family in (*TORCH_FAMILIES, "lightgbm"):
        out[family] = tmp_path_factory.mktemp(family)
        train_and_evaluate(synth, CONFIG.model_copy(update={"family": family})).save(out[family])
    return out


def random_windows(seed: int = 0) -> np.ndarray:
    """Positive values on mixed scales (a price near 1.1, oscillators up to 100, small returns)."""
    rng = np.random.default_rng(seed)
    n = len(MODEL_FEATURES)
    scale = rng.choice([1e-3, 1.1, 100.0], size=(1, 1, n))
    return (scale * rng.uniform(0.5, 1.5, (32, CONFIG.window_bars, n))).astype(np.float32)


@pytest.mark.parametrize("family", TORCH_FAMILIES)
def test_onnx_runtime_serves_torchscripts_probabilities(family, folders, real_windows):
    scripted = load_model(folders[family])
    served = load_model(folders[family], runtime="onnxruntime")
    assert scripted.runtime == "torchscript" and served.runtime == "onnxruntime" and served.family == family
    ort_model = served.predict_windows
    assert isinstance(ort_model, onnx.OnnxRuntimeModel) and ort_model.max_batch == onnx.MAX_BATCH
    session_only = onnx.OnnxRuntimeModel(ort_model.session)  # every batch in ONNX Runtime
    for windows in (random_windows(), real_windows):
        for batch in (windows[:1], windows):
            want = scripted.predict_proba(batch)
            for got in (served.predict_proba(batch), session_only(batch)):
                assert got.shape == want.shape == (len(batch), 3) and got.dtype == np.float32
                assert np.max(np.abs(got - want)) <= 1e-5
        # up to MAX_BATCH windows run in ONNX Runtime, larger batches in TorchScript (faster there)
        small, large = windows[: onnx.MAX_BATCH], windows[: onnx.MAX_BATCH + 1]
        assert np.array_equal(served.predict_proba(small), session_only(small))
        assert np.array_equal(served.predict_proba(large), scripted.predict_proba(large))


def test_lightgbm_keeps_its_own_path(folders, real_windows):
    model = load_model(folders["lightgbm"], runtime="onnxruntime")
    assert model.family == "lightgbm" and model.runtime == "torchscript"
    assert np.allclose(model.predict_proba(real_windows), load_model(folders["lightgbm"]).predict_proba(real_windows))


def test_a_failed_check_serves_torchscript_with_a_warning(folders, real_windows, monkeypatch, caplog):
    call = onnx.OnnxRuntimeModel.__call__
    monkeypatch.setattr(onnx.OnnxRuntimeModel, "__call__", lambda self, w: call(self, w) + np.float32(2e-5))
    with caplog.at_level(logging.WARNING, logger="aicash.training.artifacts"):
        model = load_model(folders["lstm"], runtime="onnxruntime")
    assert model.runtime == "torchscript" and "serves TorchScript" in caplog.text
    # the 2e-5 added, give or take the runtimes' own difference (at most a few 1e-7: 2.01e-05 in one CI run)
    found = re.search(r"probabilities differ by ([0-9.e+-]+) > 1e-05 on the probe", caplog.text)
    assert found is not None and abs(float(found[1]) - 2e-5) < 1e-6, caplog.text
    # the exporter rewrote a copy: the module that serves still runs under inference_mode
    assert np.array_equal(model.predict_proba(real_windows), load_model(folders["lstm"]).predict_proba(real_windows))


def test_a_broken_export_or_a_missing_onnxruntime_serves_torchscript(folders, real_windows, monkeypatch, caplog):
    def broken(module, example):
        raise RuntimeError("unsupported operator aten::mystery")

    monkeypatch.setattr(onnx, "export_onnx", broken)
    with caplog.at_level(logging.WARNING, logger="aicash.training.artifacts"):
        model = load_model(folders["gru"], runtime="onnxruntime")
    assert model.runtime == "torchscript"
    assert "the ONNX export failed: RuntimeError: unsupported operator" in caplog.text
    assert model.predict_proba(real_windows).shape == (32, 3)
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    assert load_model(folders["tcn"], runtime="onnxruntime").runtime == "torchscript"
    assert "onnxruntime is not installed" in caplog.text


def test_an_unknown_runtime_is_refused(folders):
    with pytest.raises(ValueError, match=r"unknown runtime 'tensorrt'"):
        load_model(folders["linear"], runtime="tensorrt")


def test_the_probe_is_seeded_and_on_the_models_scale(folders):
    import torch

    module = torch.jit.load(str(folders["lstm"] / "model.pt"))
    features = list(load_model(folders["lstm"]).features)
    a = onnx.probe_windows(module, features, CONFIG.window_bars, onnx.PROBE_BATCH)
    assert np.array_equal(a, onnx.probe_windows(module, features, CONFIG.window_bars, onnx.PROBE_BATCH))
    ema_50 = a[:, -1, features.index("ema_50")]
    assert np.allclose(ema_50[: len(onnx.PRICE_LEVELS)], onnx.PRICE_LEVELS, rtol=1e-6)  # several price levels
    assert np.isfinite(a).all() and a.dtype == np.float32
