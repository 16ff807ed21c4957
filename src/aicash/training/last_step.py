"""Serve a recurrent model (LSTM, GRU) by its last step when a window's first bars were seen before.

A request changes only the latest bar of its window: the earlier bars come from the online store and stay the
same until the next materialization. The network's state after those bars is the same for every such request,
as long as the latest bar's `ema_50` (the anchor the transform divides the whole window by) is the store's too. So
`LastStepModel` keeps, per window prefix and anchor, the recurrent state after the prefix, and answers a window whose
prefix it holds with one recurrent step and the head in NumPy (about a quarter of a full forward pass). A window
seen for the first time goes to the full model; the second time its prefix's state is computed (with torch, from
the served TorchScript module's own weights) and kept. A request that gives `ema_50`, or a latest bar that is not
finite, always takes the full model.

`last_step_model(module, features, window_bars, full)` builds it and checks it against the full model on a seeded
probe (windows seen once, twice, and again with other latest bars) within `TOLERANCE`; it raises
`LastStepUnavailable` naming why when the network is not a plain recurrent classifier or the check fails.
"""

from __future__ import annotations

import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from aicash.training.onnx_runtime import PROBE_BATCH, TOLERANCE, largest_difference, probe_windows
from aicash.training.transform import ANCHOR

RECURRENT = ("lstm", "gru")  # the classifier's child that holds the recurrent layers, by family
MAX_STATES = 256  # prefixes whose state is kept (a few per served series: one per materialized bar and anchor)
MAX_SEEN = 4096  # prefixes seen once, remembered by hash: the second sighting computes the state


class LastStepUnavailable(RuntimeError):
    """The model cannot be served by its last step (not a plain recurrent classifier, or the check failed)."""


@dataclass(frozen=True)
class _Layer:
    """One recurrent layer's weights, as NumPy float32: input-side (gates, in) and hidden-side (gates, hidden)."""

    w_input: np.ndarray
    b_input: np.ndarray
    w_hidden: np.ndarray
    b_hidden: np.ndarray


@dataclass(frozen=True)
class _Transform:
    """`IndicatorTransform` applied to one latest bar (where the anchor's trend is 0 by definition), in Python
    floats: 16 features cost less that way than NumPy's per-call overhead."""

    kinds: tuple[str, ...]  # per feature: "log_ratio", "ratio", "anchor" or "identity"
    mean: tuple[float, ...]
    std: tuple[float, ...]
    anchor_index: int
    eps: float
    clip: float

    def __call__(self, last: list[float]) -> np.ndarray | None:
        """Standardised, clipped float32 inputs of a raw latest bar; None when it is not finite or its anchor is
        not above eps (the full model answers those)."""
        anchor = last[self.anchor_index]
        if not anchor > self.eps or not all(map(math.isfinite, last)):
            return None
        clip, eps, out = self.clip, self.eps, []
        for value, kind, mean, std in zip(last, self.kinds, self.mean, self.std, strict=True):
            if kind == "log_ratio":
                value = math.log(max(value / anchor, eps))
            elif kind == "ratio":
                value = value / anchor
            elif kind == "anchor":
                value = 0.0
            scaled = (value - mean) / std
            out.append(-clip if scaled < -clip else clip if scaled > clip else scaled)
        return np.array(out, dtype=np.float32)


def _numpy(tensor: torch.Tensor) -> np.ndarray:
    return tensor.detach().numpy().copy()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return np.tanh(x * 0.5) * 0.5 + 0.5


class LastStepModel:
    """Raw windows (batch, window, features) -> (batch, 3) probabilities: the last step from a kept prefix state
    where it can, `full` (the served model) for the rest."""

    def __init__(self, module: Any, full: Callable[[np.ndarray], np.ndarray]) -> None:
        network = module.network
        classifier = network.classifier
        stacks = [name for name, _ in classifier.named_children() if name in RECURRENT]
        if len(stacks) != 1 or not hasattr(classifier, "head"):
            raise LastStepUnavailable("the classifier is not a recurrent layer stack with a head (an LSTM or GRU)")
        self.kind = stacks[0]
        recurrent = getattr(classifier, self.kind)
        state = {name: value.detach() for name, value in recurrent.state_dict().items()}
        n_layers = sum(name.startswith("weight_ih_l") for name in state)
        plain = {f"{kind}_{side}_l{i}" for kind in ("weight", "bias") for side in ("ih", "hh") for i in range(n_layers)}
        if set(state) != plain:  # bidirectional, projected or bias-free stacks run the full model
            raise LastStepUnavailable(f"the {self.kind} is not a plain one-way stack with biases: {sorted(state)}")
        self.hidden = int(state["weight_hh_l0"].shape[1])
        # an LSTM step's gates scaled before and after one tanh: by 1/2 (then + 1/2) where a sigmoid is due
        self._gate_scale = np.full(4 * self.hidden, 0.5, dtype=np.float32)
        self._gate_scale[2 * self.hidden : 3 * self.hidden] = 1.0
        self._gate_offset = np.where(self._gate_scale == 0.5, 0.5, 0.0).astype(np.float32)
        self.layers = [
            _Layer(_numpy(state[f"weight_ih_l{i}"]), _numpy(state[f"bias_ih_l{i}"]),
                   _numpy(state[f"weight_hh_l{i}"]), _numpy(state[f"bias_hh_l{i}"]))
            for i in range(n_layers)
        ]
        eager = (torch.nn.LSTM if self.kind == "lstm" else torch.nn.GRU)(
            int(state["weight_ih_l0"].shape[1]), self.hidden, n_layers, batch_first=True)
        eager.load_state_dict(state)
        self._prefix_network = eager.eval()
        transform = self._transform_module = network.transform
        masks = {kind: _numpy(getattr(transform, f"{kind}_mask")).astype(bool)
                 for kind in ("log_ratio", "ratio", "anchor")}
        kinds = tuple(next((kind for kind, mask in masks.items() if mask[i]), "identity")
                      for i in range(len(masks["ratio"])))
        self.transform = _Transform(kinds, tuple(map(float, _numpy(transform.mean))),
                                    tuple(map(float, _numpy(transform.std))), int(transform.anchor_index),
                                    float(transform.eps), float(transform.clip))
        self.head_weight, self.head_bias = _numpy(classifier.head.weight), _numpy(classifier.head.bias)
        self.full = full
        self.hits = self.misses = 0
        self._states: OrderedDict[tuple[bytes, float], tuple[np.ndarray, ...]] = OrderedDict()
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._lock = threading.Lock()

    # -- serving ---------------------------------------------------------------------------------------------
    def __call__(self, windows: np.ndarray) -> np.ndarray:
        answers = [self._answer(window) for window in windows]
        missed = [i for i, answer in enumerate(answers) if answer is None]
        self.hits, self.misses = self.hits + len(windows) - len(missed), self.misses + len(missed)
        if len(missed) == len(windows):
            return self.full(windows)
        out = np.empty((len(windows), 3), dtype=np.float32)
        if missed:
            out[missed] = self.full(np.ascontiguousarray(windows[missed]))
        for i, answer in enumerate(answers):
            if answer is not None:
                out[i] = answer
        return out

    def _answer(self, window: np.ndarray) -> list[float] | None:
        """One window's probabilities by its last step, or None when its prefix's state is not kept (yet)."""
        last = window[-1].tolist()
        key = (window[:-1].tobytes(), last[self.transform.anchor_index])
        with self._lock:
            state = self._states.get(key)
            if state is not None:
                self._states.move_to_end(key)
            elif (digest := hash(key)) in self._seen:  # the second sighting: compute its state and keep it
                del self._seen[digest]
            else:
                self._remember(digest)
                return None
        x = self.transform(last)
        if x is None:
            return None
        if state is None:
            state = self._prefix_state(window)
            with self._lock:
                self._keep(key, state)
        return self._step(x, state)

    def clear(self) -> None:
        with self._lock:
            self._states.clear()
            self._seen.clear()
        self.hits = self.misses = 0

    def _remember(self, digest: int) -> None:
        self._seen[digest] = None
        if len(self._seen) > MAX_SEEN:
            self._seen.popitem(last=False)

    def _keep(self, key: tuple[bytes, float], state: tuple[np.ndarray, ...]) -> None:
        self._states[key] = state
        if len(self._states) > MAX_STATES:
            self._states.popitem(last=False)

    # -- the recurrent step --------------------------------------------------------------------------------
    def _prefix_state(self, window: np.ndarray) -> tuple[np.ndarray, ...]:
        """Per layer, what the last step needs from the state after all bars but the last: the hidden side's gate
        inputs (W_hh h + b_hh, plus b_ih for an LSTM), then the cell state (LSTM) or the hidden state (GRU)."""
        with torch.inference_mode():
            inputs = self._transform_module(torch.from_numpy(np.ascontiguousarray(window[None])))
            _, state = self._prefix_network(inputs[:, :-1])
        hidden, kept = (state[0], state[1]) if self.kind == "lstm" else (state, state)
        parts: list[np.ndarray] = []
        for i, layer in enumerate(self.layers):
            from_hidden = layer.w_hidden @ hidden[i, 0].numpy() + layer.b_hidden
            if self.kind == "lstm":  # every gate adds both biases: the input side's is added here, once
                from_hidden += layer.b_input
            parts += [from_hidden, kept[i, 0].numpy().copy()]
        return tuple(parts)

    def _step(self, x: np.ndarray, state: tuple[np.ndarray, ...]) -> list[float]:
        """The last step of every layer from a kept state, then the head and the softmax."""
        h = self.hidden
        for i, layer in enumerate(self.layers):
            from_hidden, previous = state[2 * i], state[2 * i + 1]
            if self.kind == "lstm":  # PyTorch's gate order: input, forget, cell, output
                # in place, in one tanh: sigmoid(g) = tanh(g / 2) / 2 + 1 / 2 for the input, forget and output
                # gates, tanh(g) for the cell's (the kept state holds both biases)
                gates = layer.w_input @ x
                gates += from_hidden
                gates *= self._gate_scale
                np.tanh(gates, out=gates)
                gates *= self._gate_scale
                gates += self._gate_offset
                cell = gates[h : 2 * h] * previous
                cell += gates[:h] * gates[2 * h : 3 * h]
                x = gates[3 * h :] * np.tanh(cell)
            else:  # GRU: reset, update, new
                gates = layer.w_input @ x + layer.b_input
                reset_update = _sigmoid(gates[: 2 * h] + from_hidden[: 2 * h])
                new = np.tanh(gates[2 * h :] + reset_update[:h] * from_hidden[2 * h :])
                x = new + reset_update[h:] * (previous - new)
        logits = (self.head_weight @ x + self.head_bias).tolist()
        top = max(logits)
        exp = [math.exp(v - top) for v in logits]
        total = math.fsum(exp)
        return [v / total for v in exp]


def other_latest_bars(windows: np.ndarray, anchor: int, shift: int = 3) -> np.ndarray:
    """The same prefixes and anchors (column `anchor`) with the latest bar of the window `shift` places before: what a
    series' requests look like. The probe cycles its 3 price levels, so a shift of 3 keeps each bar's level."""
    other = windows.copy()
    other[:, -1] = np.roll(windows[:, -1], shift, axis=0)
    other[:, -1, anchor] = windows[:, -1, anchor]
    return other


def check_windows(module: Any, features: Sequence[str], window_bars: int) -> list[np.ndarray]:
    """The probe in the order the check sends it: windows seen once (the full model), again (the prefix state is
    computed), and with other latest bars on the same prefixes and anchors (the kept state), one at a time and
    as a batch."""
    probe = np.ascontiguousarray(probe_windows(module, features, window_bars, PROBE_BATCH))
    return [probe, probe, other_latest_bars(probe, list(features).index(ANCHOR))]


def last_step_model(
    module: Any,
    features: Sequence[str],
    window_bars: int,
    full: Callable[[np.ndarray], np.ndarray],
    tolerance: float = TOLERANCE,
) -> LastStepModel:
    """`full` served by its last step where a prefix was seen, once the probabilities match `full`'s on the probe.
    Raises `LastStepUnavailable` naming why when it cannot serve."""
    if ANCHOR not in features:
        raise LastStepUnavailable(f"the features have no {ANCHOR} anchor")
    try:
        model = LastStepModel(module, full)
    except LastStepUnavailable:
        raise
    except Exception as exc:  # a module whose parts are not where an aicash network keeps them
        raise LastStepUnavailable(f"the network's parts cannot be read: {type(exc).__name__}: {exc}") from exc
    worst = 0.0
    try:
        for windows in check_windows(module, features, window_bars):
            worst = max(worst, largest_difference(model, full, windows))
            for window in windows[:8]:
                worst = max(worst, largest_difference(model, full, window[None]))
    except Exception as exc:
        raise LastStepUnavailable(f"the last step failed on the probe: {type(exc).__name__}: {exc}") from exc
    if model.hits == 0:
        raise LastStepUnavailable("the probe never reached the last step")
    if not worst <= tolerance:
        raise LastStepUnavailable(f"the last step and the full model differ by {worst:.3g} > {tolerance:g}")
    model.clear()
    return model
