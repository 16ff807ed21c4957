"""Where a /predict call runs: on the worker's event loop when the runtime answers it from memory, else on a
worker thread.

BentoML runs a synchronous API on its thread pool; the hop there and back costs 0.1-0.3 ms of CPU per request
(measured on a constant answer), more than the runtime's own work when the features are held and the last step
answers. An answer that needs the online store (a series not read in the last second, an unknown symbol) or may
spill the prediction log to a file goes to a thread, as before, so no store round trip, database timeout or file
write ever blocks the loop (and /healthz with it).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import anyio
import anyio.to_thread
from prometheus_client import Counter

from aicash.serving.runtime import SignalRuntime
from aicash.serving.schemas import PredictRequest

T = TypeVar("T")

DISPATCHED = Counter("aicash_predict_dispatch_total",
                     "/predict calls by where they ran: on the event loop (answered from memory) or a worker thread",
                     ["on"])
_ON_LOOP, _ON_THREAD = DISPATCHED.labels("event_loop"), DISPATCHED.labels("worker_thread")


class PredictDispatch:
    """Runs `answer` inline when `runtime.answers_in_memory(request)`, else on a worker thread; at most `threads`
    such threads at a time (BentoML's default for a synchronous API: one)."""

    def __init__(self, runtime: SignalRuntime, threads: int = 1) -> None:
        self.runtime = runtime
        self.threads = threads
        self._limiter: anyio.CapacityLimiter | None = None  # made on the event loop, at the first offload

    async def __call__(self, request: PredictRequest, answer: Callable[[], T]) -> T:
        if self.runtime.answers_in_memory(request):
            _ON_LOOP.inc()
            return answer()
        _ON_THREAD.inc()
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(self.threads)
        return await anyio.to_thread.run_sync(answer, limiter=self._limiter)
