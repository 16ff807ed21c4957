"""End to end on small data: a learnable market passes the gate, the same market with shuffled labels does not;
the saved artifact serves exactly what the trained network computes."""

import base64
import json
import re

import numpy as np
import pandas as pd
import pytest

from aicash.indicators import INDICATOR_COLUMNS
from aicash.settings import Settings
from aicash.training import EvaluationSummary, evaluate_samples, gate, load_model, train_and_evaluate
from aicash.training.artifact_files import ARTIFACT_FILES
from aicash.training.artifacts import ArtifactError
from aicash.training.dataset import build_samples
from tests.support.training import TINY, predictable_frame

CONFIG = TINY.model_copy(update={"horizon_bars": 1, "max_epochs": 30, "patience": 4, "hidden_size": 16})
SETTINGS = Settings(_env_file=None, min_training_samples=100, min_accuracy=0.55, min_win_rate=0.45)


@pytest.fixture(scope="module")
def learnable():
    """Bar t+1 moves with rsi_value at bar t-1: only a model reading the window's history can know."""
    events = []
    result = train_and_evaluate(predictable_frame(bars=800, lag=1), CONFIG, progress=events.append, settings=SETTINGS)
    return result, events


@pytest.fixture(scope="module")
def saved(learnable, tmp_path_factory):
    folder = tmp_path_factory.mktemp("model")
    learnable[0].save(folder)
    return folder


def test_a_network_that_learns_beats_the_baselines_and_passes_the_gate(learnable):
    result, events = learnable
    assert result.model_metrics.accuracy > 0.7
    for name, m in result.baseline_metrics.items():  # the last bar alone says nothing: chance is 1/3
        assert m.accuracy < 0.45, name
    assert result.decision is not None and result.decision.approved, result.decision
    assert {e.stage for e in events} == {"fold 1/3", "fold 2/3", "fold 3/3", "final"}
    assert result.timings["training_samples_per_second"] > 0
    assert sum(f.test_samples for f in result.folds) == result.model_metrics.samples


def test_leak_check_shuffled_labels_give_chance_accuracy_and_a_rejection():
    samples = build_samples(predictable_frame(bars=800, lag=1), CONFIG)
    order = np.random.default_rng(1).permutation(len(samples))
    shuffled = samples.with_labels(samples.label[order], samples.horizon_return[order])
    result = evaluate_samples(shuffled, CONFIG, settings=SETTINGS)
    assert abs(result.model_metrics.accuracy - 1 / 3) < 0.08
    assert not result.decision.approved
    assert any("out-of-sample directional accuracy of traded signals" in r for r in result.decision.reasons)
    assert any("deflated Sharpe ratio" in r for r in result.decision.reasons)  # no edge beyond luck


def test_the_torchscript_artifact_gives_the_eager_networks_probabilities_on_raw_inputs(learnable, saved):
    result, _ = learnable
    samples = build_samples(predictable_frame(bars=800, lag=1), CONFIG)
    raw = samples.windows(np.arange(0, len(samples), 7))
    model = load_model(saved)
    served = model.predict_proba(raw)
    assert served.shape == (len(raw), 3) and np.allclose(served.sum(axis=1), 1.0, atol=1e-5)
    assert np.allclose(served, result.predict_proba(raw), atol=1e-6)
    assert np.allclose(model.predict_proba(raw[:1]), served[:1], atol=1e-6)  # batch of one
    assert model.classes == ("SELL", "HOLD", "BUY") and model.window_bars == CONFIG.window_bars
    with pytest.raises(ValueError, match=r"shape \(batch, 8, 16\)"):
        model.predict_proba(raw[:, :4])


def test_the_artifact_folder_holds_every_file_and_the_metrics_read_back(learnable, saved):
    result, _ = learnable
    assert sorted(p.name for p in saved.iterdir()) == sorted(ARTIFACT_FILES)
    metrics = json.loads((saved / "metrics.json").read_text(), parse_constant=lambda c: pytest.fail(f"{c} in JSON"))
    assert metrics["gate"]["approved"] is True and len(metrics["folds"]) == 3
    assert metrics["config"]["horizon_bars"] == 1 and metrics["training_samples"] == result.training_samples
    assert gate(EvaluationSummary.from_metrics_json(metrics), SETTINGS) == result.decision
    scaler = json.loads((saved / "scaler.json").read_text())
    assert scaler["mean"] == pytest.approx(result.network.transform.mean.tolist())
    reference = pd.read_parquet(saved / "reference.parquet")
    assert list(reference.columns) == list(INDICATOR_COLUMNS)
    assert len(reference) == min(CONFIG.reference_rows, result.training_samples)


def test_load_model_refuses_a_folder_that_does_not_match(saved, tmp_path):
    with pytest.raises(ArtifactError, match="lacks \\['model.pt', 'features.json'\\]"):
        load_model(tmp_path)
    for name in ("model.pt", "features.json"):
        (tmp_path / name).write_bytes((saved / name).read_bytes())
    spec = json.loads((tmp_path / "features.json").read_text())
    spec["features"] = spec["features"][::-1]
    (tmp_path / "features.json").write_text(json.dumps(spec))
    with pytest.raises(ArtifactError, match="retrain the model"):
        load_model(tmp_path)


def test_the_report_is_self_contained_with_charts_tables_and_the_gate(saved):
    page = (saved / "report.html").read_text()
    assert (saved / "report.html").stat().st_size < 1_000_000
    images = re.findall(r"src='data:image/png;base64,([^']+)'", page)
    assert len(images) == 3 and all(base64.b64decode(i).startswith(b"\x89PNG") for i in images)
    assert "Gate: <span class='ok'>APPROVED</span>" in page
    for heading in ("Out-of-sample figures", "Equity after costs", "Calibration", "Confusion matrix", "Folds"):
        assert heading in page
    assert page.count("<table>") == 5 and "<td>majority</td>" in page and "<td>logistic</td>" in page
    assert "The guide's targets" in page and "<td>average_confidence</td>" in page and "&gt; 70%" in page
    assert "network avg. confidence" in page  # and per fold
    assert "http" not in page.replace("http-equiv", "")  # nothing fetched from elsewhere
