"""Packaging: copy the registry's serving version into BentoML's model store, so the Bento carries it.

The service loads models from the registry at run time (canary split, hot reload); the bundled copy, with the
signal weights current when it was packaged, is what it serves when the registry or the object store cannot be
reached at start.
"""

from __future__ import annotations

import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

import bentoml

from aicash.db.engine import engine_for
from aicash.model_input import MODEL_NAME
from aicash.registry import current_production, get_model, load_artifacts, store_for
from aicash.settings import Settings
from aicash.signals.weights import current_weights

BENTO_MODEL = MODEL_NAME  # the Bento's model store names the model as the registry does


class NothingToPackageError(LookupError):
    """No production version in the registry (and none named)."""


def export_model(settings: Settings, version: str | None = None) -> str:
    """Copy VERSION (default: the production version) into BentoML's model store; returns the model tag."""
    engine = engine_for(settings)
    record = get_model(engine, version, MODEL_NAME) if version else current_production(engine, MODEL_NAME)
    if record is None:
        raise NothingToPackageError(
            "no production model to package: promote one first (aicash models promote VERSION --traffic 100)"
        )
    with tempfile.TemporaryDirectory() as tmp:
        folder = load_artifacts(engine, store_for(settings), record.version, Path(tmp) / record.version, MODEL_NAME)
        labels = {"status": record.status, "gate": "passed" if record.gate_passed else "forced"}
        metadata = {"version": record.version, "status": record.status, "signal_weights": current_weights(engine)}
        with bentoml.models.create(f"{BENTO_MODEL}:{record.version}", labels=labels, metadata=metadata) as model:
            for item in folder.iterdir():
                shutil.copy2(item, model.path_of(item.name))
    return f"{BENTO_MODEL}:{record.version}"


@dataclass(frozen=True)
class BundledModel:
    """The newest packaged model: its registry version, its folder, and the signal weights packaged with it."""

    version: str
    folder: Path
    weights: dict[str, float] | None


def bundled_model() -> BundledModel | None:
    """The newest packaged model in the Bento (or the local model store), if there is one."""
    try:
        model = bentoml.models.get(f"{BENTO_MODEL}:latest")
    except bentoml.exceptions.NotFound:
        return None
    weights = model.info.metadata.get("signal_weights")
    return BundledModel(
        version=str(model.info.metadata.get("version", model.tag.version)),
        folder=Path(model.path),
        weights={str(k): float(v) for k, v in weights.items()} if isinstance(weights, dict) else None,
    )
