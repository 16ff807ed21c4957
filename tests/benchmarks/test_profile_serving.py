"""The profile's sorting of py-spy samples into the parts of a request, on hand-made collapsed stacks."""

from __future__ import annotations

from benchmarks.profile_serving import classify, parse_raw, summary

ROOT = "thread (1): MainThread;main (_bentoml_impl/worker/service.py:242);Runner.run (asyncio/runners.py:118)"
API = f"{ROOT};ServiceAppFactory.api_endpoint (_bentoml_impl/server/app.py:700)"


def test_the_innermost_named_frame_decides() -> None:
    forward = f"{API};SignalService.predict (bentos/service.py:200);SignalRuntime.predict_many " \
              f"(aicash/serving/runtime.py:190);ServableModel.predict_proba (aicash/training/artifacts.py:84);" \
              f"Module._call_impl (torch/nn/modules/module.py:1789)"
    assert classify(forward) == "forward pass (model)"  # torch under our model call, not BentoML at the root
    assert classify(f"{API};BaseModel.model_validate_json (pydantic/main.py:847)") == \
        "BentoML API (parse, validate, serialize)"
    assert classify(ROOT) == "event loop (uvloop: sockets, callbacks)"  # own time of the loop: C code
    assert classify(f"{API};SignalService.predict (bentos/service.py:200)") == "service method (metrics, context)"
    assert classify("thread (2): worker;something (elsewhere.py:1)") == "other"


def test_waiting_threads_are_left_out_of_the_shares() -> None:
    stacks = parse_raw([
        f"{ROOT} 30",
        f"{API};BaseModel.model_dump_json (pydantic/main.py:587) 10",
        "thread (3): prediction-log;PredictionLog._run (aicash/serving/prediction_log.py:150);"
        "Condition.wait (threading.py:327) 60",
        "not a stack line",
    ])
    assert sum(stacks.values()) == 100
    text = summary(stacks)
    assert text.startswith("40 samples of the worker's busy threads (60 more of threads waiting, left out)")
    assert "| event loop (uvloop: sockets, callbacks) | 75.0% |" in text
    assert "| BentoML API (parse, validate, serialize) | 25.0% |" in text
    assert "Condition.wait" not in text
