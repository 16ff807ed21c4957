"""Hostile HTTP input, on SQLite and on PostgreSQL (`fuzz_service` is parametrised): schemathesis fuzzes every
operation of the service's OpenAPI (/docs.json), valid and invalid data, with an admin key; hypothesis fuzzes the
headers the service reads (X-Request-Id, X-API-Key, Authorization, Content-Type, Origin: oversized, non-ASCII,
malformed); then the cases a schema does not describe, by hand. No answer may be a 5xx, every 4xx body must name
the problem, and afterwards the prediction log still writes a fresh prediction within 5 s."""

from __future__ import annotations

import json
import socket
import time
import uuid
from collections import Counter, defaultdict

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import select

from aicash.db.engine import make_engine
from aicash.db.models import Prediction
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
TOTALS: defaultdict[str, Counter[str]] = defaultdict(Counter)  # database -> examples by kind, and 5xx


def database_of(service) -> str:  # type: ignore[no-untyped-def]
    return "sqlite" if service.database_url.startswith("sqlite") else "postgresql"


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
    totals = TOTALS[database_of(fuzz_service)]
    totals[f"{mode}"] += sum(statuses.values())
    totals["operations"] += 1
    totals["5xx"] += sum(n for s, n in statuses.items() if s >= 500)
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


# Header values as bytes on the wire: printable ASCII and obs-text (0x80-0xFF, what a client sends when it puts
# UTF-8 or Latin-1 in a header), short or oversized; and values that mean something to the service.
_WIRE = st.binary(min_size=1, max_size=300).map(
    lambda b: bytes(c for c in b if 0x21 <= c <= 0x7E or c >= 0x80) or b"x")
_NON_ASCII = st.text(st.characters(min_codepoint=0x80, max_codepoint=0x10FFFF, exclude_categories=("Cs",)),
                     min_size=1, max_size=64).map(lambda t: t.encode())
_OVERSIZED = st.tuples(st.sampled_from(b"aZ9-_~%\xe9"), st.integers(1_000, 7_000)).map(lambda c: bytes([c[0]]) * c[1])
_MEANINGFUL = st.sampled_from([
    b"application/json", b"application/json; charset=utf-8", b"APPLICATION/JSON", b"text/plain", b"application/xml",
    b"multipart/form-data; boundary=x", b"application/json; charset=latin-1", b"Bearer", b"Bearer ", b"Basic YTpi",
    b"bearer aic_x", b"aic_", b"aic_" + b"k" * 60, b"null", b"https://app.aicash.example", b"http://evil.example",
    b"req-1", b"a" * 64, b"a" * 65, b"../../etc/passwd", b"' OR 1=1 --", b"%00", b"\xc3\xa9t\xc3\xa9",
])
HEADER_VALUE = st.one_of(_WIRE, _NON_ASCII, _OVERSIZED, _MEANINGFUL)
# Content-Type is valid JSON half the time, so the fuzz also reaches what is read after it (key, request id).
_JSON_TYPES = st.sampled_from([b"application/json", b"application/json; charset=utf-8", b"Application/JSON"])
FUZZED_HEADERS = {name: HEADER_VALUE for name in ("X-Request-Id", "X-API-Key", "Authorization", "Origin")} | {
    "Content-Type": st.one_of(_JSON_TYPES, HEADER_VALUE)}
HEADER_EXAMPLES = 100
HEADER_TARGETS = [
    ("POST", "/predict", EXAMPLE_INPUT), ("POST", "/predict/batch", {"requests": [EXAMPLE_INPUT]}),
    ("POST", "/models/rollback", {"reason": "", "actor": 1}), ("GET", "/models", None),
    ("GET", "/training-status", None), ("GET", "/health", None), ("GET", "/metrics", None),
    ("OPTIONS", "/predict", None),
]


@pytest.mark.parametrize(("method", "path", "body"), HEADER_TARGETS, ids=[f"{m} {p}" for m, p, _ in HEADER_TARGETS])
def test_fuzz_headers(fuzz_service, method: str, path: str, body: object) -> None:  # type: ignore[no-untyped-def]
    """Any combination of the five headers, each absent, malformed, oversized or non-ASCII; the others as a client
    would send them (the admin key, JSON). A preflight carries Access-Control-Request-Method."""
    statuses: Counter[int] = Counter()
    base = {b"X-API-Key": fuzz_service.keys["ops"].encode(), b"Content-Type": b"application/json"}
    if method == "OPTIONS":
        base = {b"Access-Control-Request-Method": b"POST", b"Origin": b"https://app.aicash.example"}
    content = json.dumps(body).encode() if body is not None else None

    @settings(max_examples=HEADER_EXAMPLES, deadline=None, database=None, derandomize=True,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(fuzzed=st.fixed_dictionaries({}, optional={k.encode(): v for k, v in FUZZED_HEADERS.items()}))
    def run(fuzzed: dict[bytes, bytes]) -> None:
        headers = list((base | fuzzed).items())
        response = client.request(method, path, content=content, headers=headers)
        statuses[response.status_code] += 1
        what = f"{method} {path} headers={ {k: v[:80] for k, v in fuzzed.items()} }"
        if method == "OPTIONS":  # a refused preflight is the CORS middleware's plain text, as browsers expect
            assert response.status_code < 500, f"{what} -> {response.status_code}"
            assert response.status_code < 400 or "CORS" in response.text, f"{what} -> {response.text[:300]}"
        else:
            check_answer(response, what)

    with httpx.Client(base_url=fuzz_service.url, timeout=30) as client:
        run()
    totals = TOTALS[database_of(fuzz_service)]
    totals["header examples"] += sum(statuses.values())
    totals["header targets"] += 1
    totals["5xx"] += sum(n for s, n in statuses.items() if s >= 500)
    assert sum(statuses.values()) >= HEADER_EXAMPLES // 2
    print(f"headers on {method} {path}: {sum(statuses.values())} examples, statuses {dict(statuses)}")


def test_after_the_fuzz_a_fresh_prediction_is_logged_within_5_s(fuzz_service) -> None:  # type: ignore[no-untyped-def]
    """Nothing the fuzzer sent stopped the prediction log: a new prediction's row is in the database within 5 s."""
    request_id = f"after-fuzz-{uuid.uuid4().hex[:12]}"
    answer = fuzz_service.post("/predict", EXAMPLE_INPUT | {"request_id": request_id})
    assert answer.status_code == 200, answer.text
    engine = make_engine(fuzz_service.database_url)
    deadline = time.monotonic() + 5
    found = None
    try:
        while found is None and time.monotonic() < deadline:
            with engine.connect() as conn:
                found = conn.execute(select(Prediction.request_id).where(Prediction.request_id == request_id)).first()
            time.sleep(0.1)
    finally:
        engine.dispose()
    assert found is not None, f"no row for {request_id} within 5 s: {httpx.get(fuzz_service.url + '/health').text}"
    log = httpx.get(fuzz_service.url + "/health").json()["prediction_log"]
    print(f"prediction log after the fuzz ({database_of(fuzz_service)}): {log}")
    assert log["healthy"] is True, log


def test_fuzz_totals(fuzz_service) -> None:  # type: ignore[no-untyped-def]
    """Runs after the fuzz cases in this module: prints the totals the report quotes."""
    totals = TOTALS[database_of(fuzz_service)]
    print(f"fuzz totals ({database_of(fuzz_service)}): {dict(totals)}")
    assert totals["5xx"] == 0
