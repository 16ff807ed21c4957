import json
from dataclasses import replace

import numpy as np
import torch

from aicash.model_input import MODEL_FEATURES
from aicash.training.dataset import build_samples
from aicash.training.trainer import Trainer
from aicash.training.transform import CLIP, TRANSFORMS, IndicatorTransform
from tests.support.training import TINY

PRICE_LIKE = [f for f in MODEL_FEATURES if f in TRANSFORMS]


def test_price_like_indicators_become_scale_free(synth):
    samples = build_samples(synth, TINY)
    raw = samples.windows(np.arange(50))
    rescaled = raw.copy()
    cols = [MODEL_FEATURES.index(f) for f in PRICE_LIKE]
    rescaled[:, :, cols] *= 7.0  # the same market at a 7x price level
    transform = IndicatorTransform(MODEL_FEATURES)
    with torch.no_grad():
        a = transform.stationary(torch.from_numpy(raw))
        b = transform.stationary(torch.from_numpy(rescaled))
    assert torch.allclose(a, b, atol=1e-5)
    assert torch.all(a[:, -1, MODEL_FEATURES.index("ema_50")] == 0)  # the trend ends at 0 by construction
    assert not torch.allclose(a, torch.from_numpy(raw))


def test_scaler_is_fitted_on_training_windows_only(synth):
    samples = build_samples(synth, TINY)
    fit, val = np.arange(0, 300), np.arange(310, 360)
    trainer = Trainer(TINY.model_copy(update={"max_epochs": 1}))
    trainer.fit(samples, fit, val)
    fitted = trainer.network.transform

    expected = IndicatorTransform(MODEL_FEATURES).fit(samples.windows(fit))
    assert torch.equal(fitted.mean, expected.mean) and torch.equal(fitted.std, expected.std)

    # garbage in every row that no training window reads (validation, later bars, the other series)...
    read_by_training = np.unique(samples.end_row[fit][:, None] + np.arange(-TINY.window_bars + 1, 1))
    unread = np.ones(len(samples.rows), dtype=bool)
    unread[read_by_training] = False
    assert unread[samples.end_row[val]].all()
    spoiled = replace(samples, rows=np.where(unread[:, None], samples.rows * 1000.0, samples.rows))
    again = Trainer(TINY.model_copy(update={"max_epochs": 1}))
    again.fit(spoiled, fit, val)
    assert torch.equal(again.network.transform.mean, fitted.mean)
    assert torch.equal(again.network.transform.std, fitted.std)
    # ...while a scaler fitted on everything would have moved
    everything = IndicatorTransform(MODEL_FEATURES).fit(spoiled.windows(np.arange(len(samples))))
    assert not torch.allclose(everything.std, fitted.std)


def test_standardised_inputs_are_clipped_and_nan_free(synth):
    samples = build_samples(synth, TINY)
    transform = IndicatorTransform(MODEL_FEATURES).fit(samples.windows(np.arange(200)))
    raw = samples.windows(np.arange(5)).copy()
    raw[0, -1, 0] = 1e9
    raw[1, -1, 1] = np.nan
    with torch.no_grad():
        out = transform(torch.from_numpy(raw))
    assert out[0, -1, 0] == CLIP and out[1, -1, 1] == 0.0 and torch.isfinite(out).all()
    described = json.loads(json.dumps(transform.describe()))
    assert described["transforms"]["ema_12"] == "log_ratio_to_ema_50" and len(described["std"]) == len(MODEL_FEATURES)
