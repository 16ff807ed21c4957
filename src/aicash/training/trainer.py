"""Fitting the signal network: seeding, mini-batches, early stopping on a later validation block, progress."""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import torch
from rich.markup import escape as rich_escape
from torch.nn import functional as F  # noqa: N812

from aicash.training.config import TrainingConfig
from aicash.training.dataset import Samples
from aicash.training.network import SignalNetwork

if TYPE_CHECKING:
    from rich.console import Console

MIN_IMPROVEMENT = 1e-4  # a validation loss must drop by this much to count as better


@dataclass(frozen=True)
class EpochProgress:
    """One finished epoch, reported to the progress callback (KFP logs `str(event)`)."""

    stage: str  # e.g. "fold 2/5" or "final"
    epoch: int
    max_epochs: int
    train_loss: float
    val_loss: float
    val_accuracy: float
    best_epoch: int
    seconds: float

    def __str__(self) -> str:
        return (
            f"[{self.stage}] epoch {self.epoch}/{self.max_epochs} train_loss={self.train_loss:.4f} "
            f"val_loss={self.val_loss:.4f} val_acc={self.val_accuracy:.3f} best={self.best_epoch} "
            f"({self.seconds:.1f}s)"
        )


ProgressCallback = Callable[[EpochProgress], None]


def console_progress(console: Console | None = None) -> ProgressCallback:
    """A callback printing one coloured line per epoch with rich (a KFP component can pass `print` instead)."""
    from rich.console import Console

    out = console or Console()

    def report(event: EpochProgress) -> None:
        mark = "[green]*[/]" if event.best_epoch == event.epoch else " "
        out.print(f"{mark} {rich_escape(str(event))}")

    return report


@dataclass(frozen=True)
class FitReport:
    """How one fit went."""

    train_samples: int
    validation_samples: int
    epochs: int
    best_epoch: int
    best_val_loss: float
    stopped_early: bool
    seconds: float
    samples_seen: int  # training samples passed forward and backward, all epochs

    @property
    def samples_per_second(self) -> float:
        return self.samples_seen / self.seconds if self.seconds > 0 else 0.0


@contextmanager
def torch_runtime(config: TrainingConfig) -> Iterator[None]:
    """Seeded, deterministic torch on `config.torch_threads` threads; restores the thread count and flags after."""
    threads = torch.get_num_threads()
    deterministic = torch.are_deterministic_algorithms_enabled()
    torch.set_num_threads(config.torch_threads)
    torch.use_deterministic_algorithms(True)
    torch.manual_seed(config.seed)
    try:
        yield
    finally:
        torch.set_num_threads(threads)
        torch.use_deterministic_algorithms(deterministic)


@torch.no_grad()
def predict_proba(network: SignalNetwork, windows: np.ndarray, batch_size: int = 4096) -> np.ndarray:
    """Class probabilities (n, 3) of raw windows (n, window, features) with the network in eval mode."""
    network.eval()
    out = [
        torch.softmax(network(torch.from_numpy(np.ascontiguousarray(windows[i : i + batch_size]))), dim=-1)
        for i in range(0, len(windows), batch_size)
    ]
    return torch.cat(out).numpy() if out else np.zeros((0, 3), dtype=np.float32)


class Trainer:
    """Fits a fresh `SignalNetwork` per call; the fitted network is `self.network`."""

    def __init__(self, config: TrainingConfig, progress: ProgressCallback | None = None, stage: str = "train") -> None:
        self.config = config
        self.progress = progress
        self.stage = stage
        self.network: SignalNetwork | None = None

    def fit(self, samples: Samples, train_idx: np.ndarray, val_idx: np.ndarray) -> FitReport:
        """Train on `train_idx`, stop when the loss on `val_idx` (later in time) stops improving, keep the best."""
        if len(train_idx) == 0 or len(val_idx) == 0:
            raise ValueError(
                f"{self.stage}: {len(train_idx)} training and {len(val_idx)} validation samples; "
                "need more bars (or fewer folds / a shorter window)"
            )
        cfg = self.config
        start = time.perf_counter()
        with torch_runtime(cfg):
            network = SignalNetwork.build(samples.features, cfg)
            network.transform.fit(samples.window_chunks(train_idx))  # training windows only
            optimiser = torch.optim.Adam(network.parameters(), lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
            shuffle = torch.Generator().manual_seed(cfg.seed)
            val_x = samples.windows(val_idx)
            val_y = torch.from_numpy(samples.label[val_idx])
            best_loss, best_epoch, best_state, epoch, seen = math.inf, 0, copy.deepcopy(network.state_dict()), 0, 0
            for epoch in range(1, cfg.max_epochs + 1):
                epoch_start = time.perf_counter()
                train_loss = self._epoch(network, optimiser, samples, train_idx, shuffle)
                seen += len(train_idx)
                val_loss, val_acc = _validate(network, val_x, val_y)
                if val_loss < best_loss - MIN_IMPROVEMENT:
                    best_loss, best_epoch, best_state = val_loss, epoch, copy.deepcopy(network.state_dict())
                if self.progress is not None:
                    self.progress(
                        EpochProgress(self.stage, epoch, cfg.max_epochs, train_loss, val_loss, val_acc, best_epoch,
                                      time.perf_counter() - epoch_start)
                    )
                if epoch - best_epoch >= cfg.patience:
                    break
            network.load_state_dict(best_state)
            network.eval()
        self.network = network
        return FitReport(
            train_samples=len(train_idx), validation_samples=len(val_idx), epochs=epoch, best_epoch=best_epoch,
            best_val_loss=best_loss, stopped_early=epoch < cfg.max_epochs, seconds=time.perf_counter() - start,
            samples_seen=seen,
        )

    def _epoch(
        self, network: SignalNetwork, optimiser: torch.optim.Optimizer, samples: Samples, train_idx: np.ndarray,
        shuffle: torch.Generator,
    ) -> float:
        network.train()
        order = train_idx[torch.randperm(len(train_idx), generator=shuffle).numpy()]
        total = 0.0
        for i in range(0, len(order), self.config.batch_size):
            batch = order[i : i + self.config.batch_size]
            x = torch.from_numpy(samples.windows(batch))
            y = torch.from_numpy(samples.label[batch])
            loss = F.cross_entropy(network(x), y)
            optimiser.zero_grad()
            loss.backward()
            torch.nn.utils.clip_grad_norm_(network.parameters(), 1.0)
            optimiser.step()
            total += loss.item() * len(batch)
        return total / len(order)

    def predict_proba(self, samples: Samples, idx: np.ndarray) -> np.ndarray:
        if self.network is None:
            raise RuntimeError("fit the trainer before predicting")
        with torch_runtime(self.config):
            parts = [predict_proba(self.network, w) for w in samples.window_chunks(idx)]
        return np.concatenate(parts) if parts else np.zeros((0, 3), dtype=np.float32)


@torch.no_grad()
def _validate(network: SignalNetwork, windows: np.ndarray, labels: torch.Tensor) -> tuple[float, float]:
    network.eval()
    logits = torch.cat([network(torch.from_numpy(windows[i : i + 4096])) for i in range(0, len(windows), 4096)])
    return float(F.cross_entropy(logits, labels)), float((logits.argmax(dim=1) == labels).float().mean())
