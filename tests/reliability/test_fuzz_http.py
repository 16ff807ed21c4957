"""Hostile HTTP input: schemathesis fuzzes every operation of the service's OpenAPI (/docs.json), valid and
invalid data, with an admin key; then the cases a schema does not describe, by hand. No answer may be a 5xx,
and every 4xx body must name the problem."""

from __future__ import annotations

import json
import socket
from collections import Counter

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis import GenerationMode

from aicash.serving.schemas import EXAMPLE_INPUT

MAX_EXAMPLES = 50
OPERATIONS = [
    ("POST", "/predict"), ("POST", "/predict/batch"), ("POST", "/indicators"), ("POST", "/train"),
    ("POST", "/models/{version}/promote"), ("POST", "/models/rollback"), ("GET", "/training-status"),
    ("GET", "/models"), ("GET", "/weights"), ("GET", "/health"), ("GET", "/livez"), ("GET", "/readyz"),
    ("GET", "/healthz"), ("GET", "/metrics"),
]
WITHOUT_INPUT = {"/models", "/weights", "/health", "/livez", "/readyz", "/healthz", "/metrics"}
CASES = [(m, p, mode) for m, p in OPERATIONS for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE)
         if mode is GenerationMode.POSITIVE or p not in WITHOUT_INPUT]  # no invalid input exists for those
TOTALS: Counter[str] = Counter()


def openapi_30(value: object) -> object:
    """BentoML serves an OpenAPI 3.0.2 document with 3.1-style numeric `exclusiveMinimum` (from pydantic's gt=);
    3.0 wants `minimum` plus `exclusiveMinimum: true`, and schemathesis refuses the operation otherwise."""
    if isinstance(value, dict):
        out = {k: openapi_30(v) for k, v in value.items()}
        for bound, flag in (("exclusiveMinimum", "minimum"), ("exclusiveMaximum", "maximum")):
            if isinstance(out.get(bound), int | float) and not isinstance(out.get(bound), bool):
                out[flag], out[bound] = out[bound], True
        return out
    if isinstance(value, list):
        return [openapi_30(v) for v in value]
    return value


@pytest.fixture(scope="module")
def schema(fuzz_service):  # type: ignore[no-untyped-def]
    return schemathesis.openapi.from_dict(openapi_30(httpx.get(fuzz_service.url + "/docs.json").json()))


def check_answer(response: httpx.Response | object, what: str) -> None:
    status = response.status_code  # type: ignore[attr-defined]
    assert status < 500, f"{what} -> {status}: {response.text[:500]}"  # type: ignore[attr-defined]
    if status >= 400:
        body = response.json()  # type: ignore[attr-defined]
        message = body.get("error") if isinstance(body, dict) else None
        assert isinstance(message, str) and len(message) >= 10, f"{what} -> {status} without a clear error: {body}"


def test_the_spec_lists_every_operation(fuzz_service) -> None:  # type: ignore[no-untyped-def]
    spec = httpx.get(fuzz_service.url + "/docs.json").json()
    listed = {(m.upper(), p) for p, ops in spec["paths"].items() for m in ops}
    assert set(OPERATIONS) <= listed, set(OPERATIONS) - listed


@pytest.mark.parametrize(("method", "path", "mode"), CASES, ids=[f"{m} {p} {mode}" for m, p, mode in CASES])
def test_fuzz_operation(fuzz_service, schema, method: str, path: str, mode: GenerationMode) -> None:  # type: ignore[no-untyped-def]
    operation = schema[path][method]
    statuses: Counter[int] = Counter()
    headers = {"X-API-Key": fuzz_service.keys["ops"]}

    @settings(max_examples=MAX_EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        response = case.call(base_url=fuzz_service.url, headers=headers, timeout=30)
        statuses[response.status_code] += 1
        check_answer(response, f"{method} {case.formatted_path} {mode} body={str(case.body)[:300]!r}")

    run()
    TOTALS[f"{mode}"] += sum(statuses.values())
    TOTALS["5xx"] += sum(n for s, n in statuses.items() if s >= 500)
    assert sum(statuses.values()) >= 1
    print(f"{method} {path} {mode}: {sum(statuses.values())} examples, statuses {dict(statuses)}")


def post_raw(service, path: str, content: bytes, content_type: str | None = "application/json",  # type: ignore[no-untyped-def]
             key: str = "ops") -> httpx.Response:
    headers = {"X-API-Key": service.keys[key]}
    if content_type is not None:
        headers["Content-Type"] = content_type
    return httpx.post(service.url + path, content=content, headers=headers, timeout=30)


NESTED = ("[" * 10_000 + "]" * 10_000).encode()
HOSTILE = {
    "NaN": (b'{"symbol": "EURUSD", "indicators": {"rsi_value": NaN}}', "application/json", 400, "rsi_value"),
    "Infinity": (b'{"symbol": "EURUSD", "indicators": {"ema_12": -Infinity}}', "application/json", 400, "ema_12"),
    "huge number": (b'{"symbol": "EURUSD", "indicators": {"ema_12": 1e999}}', "application/json", 400, "ema_12"),
    "nested 10,000 deep": (b'{"symbol": "EURUSD", "indicators": ' + NESTED + b"}", "application/json", 400, ""),
    "nested array body": (NESTED, "application/json", 400, ""),
    "10 kB symbol": (json.dumps({"symbol": "A" * 10_000}).encode(), "application/json", 400, "symbol"),
    "unknown field": (json.dumps(EXAMPLE_INPUT | {"leverage": 100}).encode(), "application/json", 400, "leverage"),
    "empty body": (b"", "application/json", 400, ""),
    "not JSON": (b"\x00\xff\xfe garbage \x89PNG", "application/json", 400, ""),
    "wrong content type": (json.dumps(EXAMPLE_INPUT).encode(), "text/plain", 415, "Content-Type"),
    "form body": (b"symbol=EURUSD", "application/x-www-form-urlencoded", 415, "application/json"),
    "no content type": (json.dumps(EXAMPLE_INPUT).encode(), None, 415, "Content-Type"),
    "JSON null": (b"null", "application/json", 400, ""),
    "JSON string": (b'"EURUSD"', "application/json", 400, ""),
    "batch of 257": (json.dumps({"requests": [{"symbol": "EURUSD"}] * 257}).encode(), "application/json", 400,
                     "requests"),
}


@pytest.mark.parametrize("path", ["/predict", "/predict/batch", "/indicators", "/train", "/models/x/promote",
                                  "/models/rollback"])
@pytest.mark.parametrize("case", list(HOSTILE), ids=str)
def test_hostile_bodies_get_a_4xx_naming_the_problem(fuzz_service, path: str, case: str) -> None:  # type: ignore[no-untyped-def]
    content, content_type, status, named = HOSTILE[case]
    answer = post_raw(fuzz_service, path, content, content_type)
    check_answer(answer, f"{case} to {path}")
    if (path == "/predict" and case != "batch of 257") or status == 415:
        assert answer.status_code == status, answer.text
        assert named in answer.json()["error"], answer.text
    else:
        assert 400 <= answer.status_code < 500, answer.text


@pytest.mark.parametrize("path", ["/predict", "/train", "/models/rollback"])
def test_oversized_body_is_413_before_it_is_read(fuzz_service, path: str) -> None:  # type: ignore[no-untyped-def]
    big = json.dumps({"symbol": "EURUSD", "pad": "x" * 2_000_000}).encode()
    answer = post_raw(fuzz_service, path, big)
    assert answer.status_code == 413 and "exceeds" in answer.json()["error"]


def test_chunked_body_without_content_length_is_capped(fuzz_service) -> None:  # type: ignore[no-untyped-def]
    """A chunked upload has no Content-Length to refuse up front: the middleware counts the bytes as they come."""
    def chunks(total: int):  # type: ignore[no-untyped-def]
        yield b'{"symbol": "EURUSD", "pad": "'
        for _ in range(total // 65536):
            yield b"x" * 65536
        yield b'"}'

    headers = {"X-API-Key": fuzz_service.keys["frontend"], "Content-Type": "application/json"}
    big = httpx.post(fuzz_service.url + "/predict", content=chunks(4_000_000), headers=headers, timeout=30)
    assert big.status_code == 413 and "exceeds" in big.json()["error"]
    small = httpx.post(fuzz_service.url + "/predict", headers=headers, timeout=30,
                       content=iter([json.dumps(EXAMPLE_INPUT).encode()]))
    assert small.status_code == 200, small.text  # chunked but small: served


def test_lying_content_length_and_garbage_headers(fuzz_service) -> None:  # type: ignore[no-untyped-def]
    """Raw HTTP: a Content-Length larger than the body sent, and a key header of 10 kB."""
    host, port = fuzz_service.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(b"POST /predict HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 9999999"
                     b"\r\nX-API-Key: " + fuzz_service.keys["frontend"].encode() + b"\r\n\r\n{}")
        head = sock.recv(4096).split(b"\r\n", 1)[0]
    assert head.startswith(b"HTTP/1.1 413"), head
    answer = httpx.post(fuzz_service.url + "/predict", json=EXAMPLE_INPUT, timeout=30,
                        headers={"X-API-Key": "aic_" + "k" * 10_000})
    assert answer.status_code in (401, 431) or answer.status_code == 400, answer.text


def test_fuzz_totals(fuzz_service) -> None:  # type: ignore[no-untyped-def]
    """Runs after the fuzz cases in this module: prints the totals the report quotes."""
    print(f"fuzz totals: {dict(TOTALS)}")
    assert TOTALS["5xx"] == 0
