import numpy as np
import pytest
import torch

from aicash.training.dataset import build_samples
from aicash.training.trainer import EpochProgress, Trainer
from tests.support.training import TINY

FIT, VAL, TEST = np.arange(0, 300), np.arange(310, 380), np.arange(390, 450)


def _probabilities(samples, config):
    trainer = Trainer(config)
    report = trainer.fit(samples, FIT, VAL)
    return trainer.predict_proba(samples, TEST), report


def test_same_seed_same_probabilities_other_seed_other_model(synth):
    samples = build_samples(synth, TINY)
    a, _ = _probabilities(samples, TINY)
    b, _ = _probabilities(samples, TINY)
    c, _ = _probabilities(samples, TINY.model_copy(update={"seed": 8}))
    assert a.shape == (len(TEST), 3) and np.allclose(a.sum(axis=1), 1.0, atol=1e-5)
    assert np.array_equal(a, b)
    assert not np.allclose(a, c)


def test_runtime_settings_are_restored_after_fitting(synth):
    samples = build_samples(synth, TINY)
    threads = torch.get_num_threads()
    _probabilities(samples, TINY.model_copy(update={"max_epochs": 1}))
    assert torch.get_num_threads() == threads and not torch.are_deterministic_algorithms_enabled()


def test_early_stopping_stops_and_keeps_the_best_epoch(synth):
    samples = build_samples(synth, TINY)
    events: list[EpochProgress] = []
    config = TINY.model_copy(update={"max_epochs": 60, "patience": 2, "learning_rate": 0.05, "hidden_size": 32})
    trainer = Trainer(config, progress=events.append, stage="unit")
    report = trainer.fit(samples, FIT, VAL)  # random-walk labels: validation loss soon stops improving
    assert report.stopped_early and report.epochs < 60
    assert report.epochs == report.best_epoch + config.patience
    assert [e.epoch for e in events] == list(range(1, report.epochs + 1))
    best = min(events, key=lambda e: e.val_loss)
    assert best.epoch == report.best_epoch and report.best_val_loss == pytest.approx(best.val_loss)
    assert "[unit] epoch 1/60" in str(events[0])
    # the kept weights are the best epoch's: re-scoring the validation block gives its loss
    with torch.no_grad():
        logits = trainer.network(torch.from_numpy(samples.windows(VAL)))
    loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(samples.label[VAL]))
    assert float(loss) == pytest.approx(report.best_val_loss, rel=1e-5)
    assert report.samples_seen == report.epochs * len(FIT) and report.samples_per_second > 0


def test_fitting_without_validation_samples_says_what_to_change(synth):
    samples = build_samples(synth, TINY)
    with pytest.raises(ValueError, match="0 validation samples; need more bars"):
        Trainer(TINY).fit(samples, FIT, VAL[:0])


def test_console_progress_prints_one_line_per_epoch_and_marks_improvements():
    import io

    from rich.console import Console

    from aicash.training import console_progress

    buffer = io.StringIO()
    report = console_progress(Console(file=buffer, width=200, color_system=None))
    report(EpochProgress("fold 1/5", 1, 15, 1.05, 0.99, 0.51, 1, 0.1))
    report(EpochProgress("fold 1/5", 2, 15, 1.01, 1.02, 0.50, 1, 0.1))
    lines = buffer.getvalue().splitlines()
    assert lines[0].startswith("* [fold 1/5] epoch 1/15 train_loss=1.0500 val_loss=0.9900")
    assert lines[1].startswith("  [fold 1/5] epoch 2/15") and "best=1" in lines[1]
