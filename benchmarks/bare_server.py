"""The serving benchmark's baseline: a bare Starlette endpoint on uvicorn doing only what a prediction must do.

POST /predict: the frontend's JSON in, the same window merge as the service (the given indicators overwrite
the latest bar of the stored window), the same forward pass (same model file, loaded as the service loads it:
`bentos.wiring.serving_model`: ONNX Runtime for a torch family, the last step for a recurrent one), JSON out. The
online features are read once at start, so the figures are the floor for HTTP + JSON + the model on this
machine; everything the service adds (validation, API keys, rate limit, feature reads, routing, cache,
composite score, prediction log, metrics, BentoML itself) is the difference.

    python -m benchmarks.bare_server --model DIR --port 3999     # AICASH_HOME: a home with materialized features
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np
import torch
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from aicash.model_input import MODEL_FEATURES
from aicash.settings import load_settings
from aicash.signals.rule import SIGNALS
from bentos.wiring import serving_model
from features.online import online_features
from features.store import get_store


def make_app(model_dir: str, symbol: str = "EURUSD", timeframe: str = "1h") -> Starlette:
    model = serving_model(model_dir)
    stored = online_features(get_store(load_settings()), symbol, timeframe)
    version = model_dir.rstrip("/").rsplit("/", 1)[-1]

    async def predict(request: Request) -> Response:
        start = time.perf_counter()
        payload = json.loads(await request.body())
        given = payload.get("indicators") or {}
        window = np.array(stored.window, dtype=np.float32, copy=True)
        window[-1] = [float(given.get(name, stored.indicators[name])) for name in MODEL_FEATURES]
        probs = model.predict_proba(window[None])[0]
        best = int(np.argmax(probs))
        return JSONResponse({
            "signal": SIGNALS[best], "confidence": float(probs[best]),
            "probabilities": {name: float(p) for name, p in zip(SIGNALS, probs, strict=True)},
            "model_version": version, "latency_ms": (time.perf_counter() - start) * 1000.0,
        })

    async def health(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/readyz", health)])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a training artifact folder (model.pt, features.json)")
    parser.add_argument("--port", type=int, default=3999)
    args = parser.parse_args()
    torch.set_num_threads(1)
    uvicorn.run(make_app(args.model), host="127.0.0.1", port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
