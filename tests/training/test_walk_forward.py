import numpy as np
import pytest

from aicash.training.dataset import build_samples
from aicash.training.walk_forward import final_split, walk_forward_folds
from tests.support.training import TINY


@pytest.mark.parametrize("max_train_samples", [None, 150])
def test_folds_never_test_on_data_before_or_overlapping_their_training(synth, max_train_samples):
    config = TINY.model_copy(update={"n_folds": 4, "horizon_bars": 3, "max_train_samples": max_train_samples})
    samples = build_samples(synth, config)
    folds = walk_forward_folds(samples, config)
    assert [f.number for f in folds] == [1, 2, 3, 4]
    bar = np.timedelta64(1, "h")
    for fold in folds:
        test_start = samples.ts[fold.test].min()
        # every training label is known before the first test bar: a purge gap of `horizon` bars
        assert samples.label_end_ts[fold.train].max() < test_start
        assert samples.ts[fold.train].max() <= test_start - config.horizon_bars * bar
        # the early-stopping block follows the fitted samples, purged the same way, and precedes the test
        assert samples.label_end_ts[fold.fit].max() < samples.ts[fold.validation].min()
        assert set(fold.fit) | set(fold.validation) <= set(fold.train)
        assert not set(fold.fit) & set(fold.validation)
        if max_train_samples:
            assert len(fold.train) <= max_train_samples
    # test blocks are consecutive, disjoint, in time order, and cover the timeline after the first history
    tests = np.concatenate([f.test for f in folds])
    assert len(np.unique(tests)) == len(tests) and (np.diff(samples.ts[tests].astype(np.int64)) >= 0).all()
    stamps = np.unique(samples.ts)
    assert samples.ts[tests].min() == stamps[int(len(stamps) * config.first_test_fraction)]
    assert samples.ts[tests].max() == stamps[-1]
    if max_train_samples is None:  # expanding: each fold learns from more history
        assert all(len(a.train) < len(b.train) for a, b in zip(folds, folds[1:], strict=False))


def test_final_split_uses_the_latest_block_for_early_stopping_only(synth):
    samples = build_samples(synth, TINY)
    final = final_split(samples, TINY)
    assert len(final.test) == 0 and len(final.train) == len(samples)
    assert samples.label_end_ts[final.fit].max() < samples.ts[final.validation].min()
    assert samples.ts[final.validation].max() == samples.ts.max()


def test_too_few_bars_for_the_folds_is_refused(synth):
    samples = build_samples(synth.groupby("symbol").head(20), TINY)
    with pytest.raises(ValueError, match="cannot make 30 test blocks: lower n_folds"):
        walk_forward_folds(samples, TINY.model_copy(update={"n_folds": 30}))
