"""Model families behind one protocol: each fits, saves and serves the probabilities it computed in memory."""

from __future__ import annotations

import json

import numpy as np
import pydantic
import pytest
import torch

from aicash.training import TrainingConfig, load_model, train_and_evaluate
from aicash.training.artifact_files import FEATURES_FILE, GBM_MODEL_FILE, family_files
from aicash.training.artifacts import ArtifactError
from aicash.training.config import FAMILY_PARAMETERS
from aicash.training.dataset import build_samples
from aicash.training.families import make_learner
from aicash.training.network import TCNClassifier
from aicash.training.trainer import EpochProgress
from aicash.training.walk_forward import MODEL_KEY
from tests.support.training import TINY

FAMILIES = ("lstm", "gru", "tcn", "linear", "lightgbm")
FIT, VAL, TEST = np.arange(0, 300), np.arange(310, 380), np.arange(390, 450)


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_trains_saves_and_serves_its_own_probabilities(family, synth, tmp_path):
    config = TINY.model_copy(update={"family": family})
    result = train_and_evaluate(synth, config)
    paths = result.save(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(family_files(family)) == sorted(paths)
    spec = json.loads((tmp_path / FEATURES_FILE).read_text())
    metrics = json.loads((tmp_path / "metrics.json").read_text())
    assert spec["family"] == metrics["family"] == result.family == family
    search = metrics["search"]
    assert search["trials"] == search["selected_trial"] == 1 and search["experiment_id"] is None
    assert search["family"] == family and set(search["params"]) == set(FAMILY_PARAMETERS[family])
    assert search["deflated_sharpe"]["n_trials"] == 1 and search["pbo"] is None
    assert MODEL_KEY in result.equity.columns and result.model_metrics.samples > 0

    model = load_model(tmp_path)
    raw = build_samples(synth, config).windows(np.arange(0, 400, 3))
    served = model.predict_proba(raw)
    assert model.family == family and model.window_bars == config.window_bars
    assert served.shape == (len(raw), 3) and np.allclose(served.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(served, result.predict_proba(raw), atol=1e-5)
    assert np.allclose(model.predict_proba(raw[:1]), served[:1], atol=1e-5)  # a batch of one
    with pytest.raises(ValueError, match=r"shape \(batch, 8, 16\)"):
        model.predict_proba(raw[:, :4])


def test_lightgbm_is_deterministic_for_a_seed_and_reports_progress(synth):
    samples = build_samples(synth, TINY)
    config = TINY.model_copy(update={"family": "lightgbm", "feature_fraction": 0.5, "n_estimators": 60})
    events: list[EpochProgress] = []
    learner = make_learner(config, progress=events.append, stage="unit")
    report = learner.fit(samples, FIT, VAL)
    again = make_learner(config)
    again.fit(samples, FIT, VAL)
    other = make_learner(config.model_copy(update={"seed": 8}))
    other.fit(samples, FIT, VAL)
    a = learner.predict_proba(samples, TEST)
    assert np.array_equal(a, again.predict_proba(samples, TEST))
    assert not np.allclose(a, other.predict_proba(samples, TEST))
    assert 1 <= report.best_epoch <= report.epochs <= 60
    assert events and events[-1].epoch == report.epochs and events[-1].best_epoch == report.best_epoch
    assert report.best_val_loss <= events[-1].val_loss
    assert "[unit] epoch" in str(events[0]) and "/60" in str(events[0])


def test_an_unknown_family_is_refused_naming_the_field_and_the_choices():
    with pytest.raises(pydantic.ValidationError, match=r"family\n.*'lstm', 'gru', 'tcn', 'linear' or 'lightgbm'"):
        TrainingConfig(family="xgboost")
    assert all(set(params) <= set(TrainingConfig.model_fields) for params in FAMILY_PARAMETERS.values())
    assert set(FAMILY_PARAMETERS) == set(FAMILIES)


def test_a_folder_without_family_is_an_lstm_and_a_lightgbm_folder_needs_its_booster(synth, tmp_path):
    lstm = train_and_evaluate(synth, TINY.model_copy(update={"n_folds": 1, "max_epochs": 1}))
    lstm.save(tmp_path / "old")
    spec_path = tmp_path / "old" / FEATURES_FILE
    spec = json.loads(spec_path.read_text())
    del spec["family"]
    spec_path.write_text(json.dumps(spec))
    raw = build_samples(synth, TINY).windows(np.arange(20))
    old = load_model(tmp_path / "old")
    assert old.family == "lstm" and np.allclose(old.predict_proba(raw), lstm.predict_proba(raw), atol=1e-5)

    gbm = train_and_evaluate(synth, TINY.model_copy(update={"n_folds": 1, "family": "lightgbm"}))
    gbm.save(tmp_path / "gbm")
    (tmp_path / "gbm" / GBM_MODEL_FILE).unlink()
    with pytest.raises(ArtifactError, match=r"lacks \['model.lgb.txt'\]"):
        load_model(tmp_path / "gbm")
    with pytest.raises(TypeError, match="lightgbm model has no torch network"):
        _ = gbm.network


def test_the_tcn_is_causal_and_the_linear_family_reads_only_the_decision_bar(synth):
    torch.manual_seed(0)
    tcn = TCNClassifier(n_features=4, channels=6, num_layers=3, kernel_size=3, dropout=0.0).eval()
    x = torch.randn(2, 4, 12)
    later = x.clone()
    later[:, :, 9:] += 5.0  # change bars 9.. only
    with torch.no_grad():
        before, after = tcn.levels(x), tcn.levels(later)
    assert torch.allclose(before[:, :, :9], after[:, :, :9]) and not torch.allclose(before[:, :, 9:], after[:, :, 9:])

    samples = build_samples(synth, TINY)
    linear = make_learner(TINY.model_copy(update={"family": "linear"}))
    linear.fit(samples, FIT, VAL)
    raw = samples.windows(TEST)
    earlier_changed = raw.copy()
    earlier_changed[:, :-1, :] *= np.float32(1.01)
    assert np.allclose(linear.predict_windows(raw), linear.predict_windows(earlier_changed), atol=1e-6)


def test_progress_names_the_stage_of_every_family_fit(synth):
    events: list[EpochProgress] = []
    train_and_evaluate(synth, TINY.model_copy(update={"family": "lightgbm", "n_folds": 2}), progress=events.append)
    assert {e.stage for e in events} == {"fold 1/2", "fold 2/2", "final"}
