"""Serve a torch family's model.pt through ONNX Runtime: exported in memory at load, checked against TorchScript.

`onnx_model(module, features, window_bars, reference)` exports the loaded TorchScript module with torch's
TorchScript-based exporter (it needs the `onnx` package), opens a one-thread ONNX Runtime session and checks that
both give the same probabilities (within `TOLERANCE`, absolute) on a fixed probe: seeded windows drawn from the
model's own fitted scaler, at several price levels, batch 1 and `PROBE_BATCH`. It raises `OnnxUnavailable` naming
why when it cannot serve; `load_model(folder, runtime="onnxruntime")` then serves TorchScript. Stored artifacts
never change.

ONNX Runtime wins on small batches (no per-operator interpreter overhead) but its broadcasting element-wise
kernels (the scaler and transform, over a 16-wide last axis) are slower than torch's on large ones: measured on
one thread, the LSTM at 64 bars breaks even near 8 windows and is 1.6x slower at 32. So batches of more than
`MAX_BATCH` windows go to TorchScript, which the check has shown to agree within `TOLERANCE`.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from aicash.training.transform import transform_kind

TOLERANCE = 1e-5  # the largest absolute probability difference to TorchScript that the check accepts
PROBE_SEED = 19
PROBE_BATCH = 48
MAX_BATCH = 8  # larger batches run TorchScript (None: ONNX Runtime for every batch)
PRICE_LEVELS = (1.1, 150.0, 30_000.0)  # EURUSD-, USDJPY- and BTC-like prices: price indicators scale with them
INPUT, OUTPUT = "windows", "probs"


class OnnxUnavailable(RuntimeError):
    """ONNX Runtime cannot serve this model (not installed, export failed, or probabilities differ)."""


class OnnxRuntimeModel:
    """Raw float32 windows (batch, window, features) -> (batch, 3) probabilities in an ONNX Runtime session;
    batches of more than `max_batch` windows go to `large` (TorchScript) when given."""

    def __init__(
        self, session: Any, large: Callable[[np.ndarray], np.ndarray] | None = None, max_batch: int | None = None
    ) -> None:
        self.session = session
        self.large = large
        self.max_batch = max_batch

    def __call__(self, windows: np.ndarray) -> np.ndarray:
        if self.large is not None and self.max_batch is not None and len(windows) > self.max_batch:
            return self.large(windows)
        return self.session.run([OUTPUT], {INPUT: windows})[0]


def export_onnx(module: torch.nn.Module, example: np.ndarray) -> bytes:
    """The ONNX model of `module` (TorchScript or eager), with a dynamic batch axis, as bytes.

    A TorchScript module is exported from a copy: the exporter rewrites the graphs of the module it is given, which
    then fails under `torch.inference_mode()` ("Inference tensors cannot be saved for backward") if it had not run
    before, and TorchScript must keep serving when the check refuses the export.
    """
    if isinstance(module, torch.jit.ScriptModule):
        saved = io.BytesIO()
        torch.jit.save(module, saved)
        saved.seek(0)
        module = torch.jit.load(saved, map_location="cpu").eval()
    buffer = io.BytesIO()
    with warnings.catch_warnings():  # the legacy exporter's deprecation and shape notes, here only
        warnings.simplefilter("ignore", DeprecationWarning)
        warnings.filterwarnings("ignore", category=UserWarning, module=r"torch\.onnx")
        torch.onnx.export(
            module, (torch.from_numpy(example),), buffer, input_names=[INPUT], output_names=[OUTPUT],
            dynamic_axes={INPUT: {0: "batch"}, OUTPUT: {0: "batch"}}, dynamo=False,
        )
    return buffer.getvalue()


def make_session(model: bytes) -> Any:
    """A CPU session running one operator at a time on one thread (the service scales by replicas)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3  # errors only
    return ort.InferenceSession(model, options, providers=["CPUExecutionProvider"])


def probe_windows(module: torch.nn.Module, features: Sequence[str], window_bars: int, batch: int) -> np.ndarray:
    """Seeded raw windows in the range the model was trained on: standardised values ~ N(0, 1.5) mapped back
    through the model's scaler (`network.transform.mean/std`, zero and one if absent) and its stationary
    transform, at the `PRICE_LEVELS` in turn."""
    transform = getattr(getattr(module, "network", None), "transform", None)
    n = len(features)
    mean = np.asarray(transform.mean, dtype=np.float64) if transform is not None else np.zeros(n)
    std = np.asarray(transform.std, dtype=np.float64) if transform is not None else np.ones(n)
    rng = np.random.default_rng(PROBE_SEED)
    stationary = mean + std * rng.normal(0.0, 1.5, (batch, window_bars, n))
    levels = np.resize(np.asarray(PRICE_LEVELS), batch)[:, None]
    kinds = [transform_kind(f) for f in features]
    anchor = levels * np.ones((batch, window_bars))
    if "log_ratio_to_last_ema_50" in kinds:  # the anchor's trend over the window, ending at the price level
        trend = np.cumsum(rng.normal(0.0, 2e-3, (batch, window_bars)), axis=1)
        anchor = levels * np.exp(trend - trend[:, -1:])
    raw = np.empty_like(stationary)
    for i, kind in enumerate(kinds):
        if kind == "log_ratio_to_ema_50":
            raw[:, :, i] = anchor * np.exp(stationary[:, :, i])
        elif kind == "ratio_to_ema_50":
            raw[:, :, i] = anchor * stationary[:, :, i]
        elif kind == "log_ratio_to_last_ema_50":
            raw[:, :, i] = anchor
        else:
            raw[:, :, i] = stationary[:, :, i]
    return raw.astype(np.float32)


def largest_difference(
    served: Callable[[np.ndarray], np.ndarray], reference: Callable[[np.ndarray], np.ndarray], windows: np.ndarray
) -> float:
    """The largest absolute probability difference between two models on `windows`, one window and all of them."""
    worst = 0.0
    for batch in (windows[:1], windows):
        got, want = np.asarray(served(batch)), np.asarray(reference(batch))
        if got.shape != want.shape:
            return float("inf")
        worst = max(worst, float(np.max(np.abs(got.astype(np.float64) - want))) if got.size else 0.0)
    return worst if np.isfinite(worst) else float("inf")


def onnx_model(
    module: torch.nn.Module,
    features: Sequence[str],
    window_bars: int,
    reference: Callable[[np.ndarray], np.ndarray],
    tolerance: float = TOLERANCE,
    max_batch: int | None = MAX_BATCH,
) -> OnnxRuntimeModel:
    """`module` exported to ONNX and served by ONNX Runtime, once its probabilities match `reference` (the
    TorchScript model) on the probe; batches above `max_batch` go to `reference`. Raises `OnnxUnavailable`
    naming why when it cannot serve."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError as exc:
        raise OnnxUnavailable(f"onnxruntime is not installed ({exc})") from exc
    probe = np.ascontiguousarray(probe_windows(module, features, window_bars, PROBE_BATCH))
    try:
        model = OnnxRuntimeModel(make_session(export_onnx(module, probe[:1])))
    except Exception as exc:  # any exporter or session failure means: serve TorchScript
        raise OnnxUnavailable(f"the ONNX export failed: {type(exc).__name__}: {exc}") from exc
    try:
        difference = largest_difference(model, reference, probe)
    except Exception as exc:  # e.g. a shape the export fixed
        raise OnnxUnavailable(f"the ONNX model failed on the probe: {type(exc).__name__}: {exc}") from exc
    if not difference <= tolerance:
        raise OnnxUnavailable(
            f"ONNX Runtime and TorchScript probabilities differ by {difference:.3g} > {tolerance:g} on the probe"
        )
    model.large, model.max_batch = reference, max_batch
    return model
