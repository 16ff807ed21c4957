"""The hosts of the attribution benchmark: the service's runtime, metered, outside BentoML and inside it.

`Meter` adds up the thread CPU of every call of a function (`time.thread_time`, so another thread's work or a
wait for the GIL is not counted). `metered(runtime)` meters the runtime's `predict_many` and each loaded model's
forward pass. The bare host is Starlette on uvicorn doing what BentoML does around the service's /predict, and
nothing else: the body validated with the request schema, the answer computed where the service computes it (on the
event loop when the runtime holds what it needs, else on a worker thread: `bentos.dispatch`), the answer serialised
by pydantic. `--mode constant` answers the floor's constant; `--mode runtime` answers through the service's
`SignalRuntime` (features, forward pass, composite score, cache, prediction log), built as the service builds it.
POST /meters gives the meters (and GET /readyz answers once the host is up).

    python -m benchmarks.attribution_hosts --mode runtime --port 3997   # AICASH_HOME: a benchmark home
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable
from typing import Any

from aicash.serving.request_ids import new_request_id
from aicash.serving.runtime import SignalRuntime
from aicash.serving.schemas import Prediction, PredictRequest


class Meter:
    """Calls of a function and their thread CPU."""

    def __init__(self) -> None:
        self.calls = 0
        self.cpu_seconds = 0.0

    def wrap(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def metered_call(*args: Any, **kwargs: Any) -> Any:
            start = time.thread_time()
            try:
                return function(*args, **kwargs)
            finally:
                self.cpu_seconds += time.thread_time() - start
                self.calls += 1

        return metered_call

    def reading(self) -> dict[str, float]:
        """Calls, their thread CPU in all (seconds) and per call (microseconds)."""
        return {"calls": self.calls, "cpu_seconds": self.cpu_seconds,
                "cpu_us_per_call": self.cpu_seconds * 1e6 / self.calls if self.calls else 0.0}


def metered(runtime: SignalRuntime) -> dict[str, Meter]:
    """Meters on `runtime.predict_many` and on the forward pass of each model it serves now. The models are
    wrapped in place (the registry's reloads keep the loaded model objects, so they stay metered)."""
    meters = {"predict_many": Meter(), "forward pass": Meter()}
    runtime.predict_many = meters["predict_many"].wrap(runtime.predict_many)  # type: ignore[method-assign]
    for loaded in runtime.models:
        model = loaded.model
        model.predict_proba = meters["forward pass"].wrap(model.predict_proba)  # type: ignore[method-assign]
    return meters


def service_runtime() -> SignalRuntime:
    """The service's runtime (models, online store, prediction log) as `SignalService` builds it and warmed up as
    it warms it up: the online store opened and read through, each model run (the caller then freezes the GC)."""
    import torch

    from aicash.settings import load_settings
    from bentos.wiring import build_runtime, warm_up

    torch.set_num_threads(1)
    runtime = build_runtime(load_settings())
    warm_up(runtime)
    return runtime


def answer_with(runtime: SignalRuntime, request: PredictRequest) -> Prediction:
    """One prediction through `runtime`, as the service answers it: a request without an id is given one."""
    if request.request_id is None:
        request = request.model_copy(update={"request_id": new_request_id()})
    return runtime.predict_many([request])[0]


def make_app(mode: str) -> Any:
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    from benchmarks.bento_floor import ANSWER
    from bentos.dispatch import PredictDispatch

    runtime = service_runtime() if mode == "runtime" else None
    meters = metered(runtime) if runtime is not None else {}
    gc.collect()
    gc.freeze()

    dispatch = PredictDispatch(runtime) if runtime is not None else None

    async def predict(request: Request) -> Response:
        body = PredictRequest.model_validate_json(await request.body())
        answer = ANSWER if dispatch is None else await dispatch(body, lambda: answer_with(dispatch.runtime, body))
        return Response(answer.model_dump_json(), media_type="application/json")

    async def readings(_: Request) -> Response:
        return JSONResponse({name: meter.reading() for name, meter in meters.items()})

    async def ready(_: Request) -> Response:
        return JSONResponse({"status": "ok"})

    return Starlette(routes=[Route("/predict", predict, methods=["POST"]), Route("/meters", readings, methods=["POST"]),
                             Route("/readyz", ready)])


def main() -> None:
    import uvicorn

    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mode", choices=("constant", "runtime"), required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=3997)
    args = parser.parse_args()
    uvicorn.run(make_app(args.mode), host=args.host, port=args.port, log_level="warning", access_log=False)


if __name__ == "__main__":
    main()
