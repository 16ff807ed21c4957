"""The benchmarks' load generator against a real HTTP/1.1 server on loopback, and how the serving benchmark
combines interleaved rounds."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import numpy as np
import pytest

from benchmarks.bench_serving import combined
from benchmarks.loadgen import run_load

TEMPLATE = '{"symbol": "EURUSD", "indicators": {"rsi_value": %RSI%, "adx_value": %ADX%}}'


class Echo(BaseHTTPRequestHandler):
    """Keep-alive HTTP/1.1: answers each POST with its body; `/fail` answers 503, `/chunked` sends chunks."""

    protocol_version = "HTTP/1.1"
    seen: list[bytes] = []

    def do_POST(self) -> None:  # noqa: N802 - http.server's naming
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Echo.seen.append(body)
        status = 503 if self.path == "/fail" else 200
        self.send_response(status)
        if self.path == "/chunked":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            for part in (body[:5], body[5:]):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(part), part))
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Echo.seen = []
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join(5)


@pytest.mark.parametrize("path", ["/predict", "/chunked"])
def test_every_answer_is_counted_and_every_latency_kept(server: str, path: str, tmp_path: Path) -> None:
    out = tmp_path / "latencies.npy"
    result = asyncio.run(run_load(f"{server}{path}", concurrency=2, duration=0.5, warmup=0.2, body=TEMPLATE,
                                  latencies_out=str(out)))
    latencies = np.load(out)
    assert result["errors"] == 0 and result["statuses"] == {"200": result["requests"]} and result["requests"] > 10
    assert latencies.size == result["requests"] and (latencies > 0).all()
    assert result["total_requests"] == len(Echo.seen) >= result["requests"]  # warm-up included
    bodies = [json.loads(b) for b in Echo.seen]
    rsi = [b["indicators"]["rsi_value"] for b in bodies]
    assert len(set(rsi)) == len(rsi) and all(20 <= v < 80 for v in rsi)  # distinct: none is a cache hit


def test_refusals_count_as_errors(server: str, tmp_path: Path) -> None:
    result = asyncio.run(run_load(f"{server}/fail", concurrency=1, duration=0.3, warmup=0.0, body=TEMPLATE))
    assert result["errors"] == result["requests"] > 0 and result["rps"] == 0


def test_rounds_combine_into_one_figure_per_server(tmp_path: Path) -> None:
    files = []
    for i, values in enumerate(([1.0, 2.0, 3.0], [10.0, 20.0])):
        files.append(tmp_path / f"r{i}.npy")
        np.save(files[-1], np.asarray(values))
    rounds = [
        {"concurrency": 8, "errors": 0, "statuses": {"200": 300}, "seconds": 2.0, "rps": 150.0,
         "total_requests": 400, "cpu_seconds": 0.4},
        {"concurrency": 8, "errors": 1, "statuses": {"200": 100, "503": 1}, "seconds": 2.0, "rps": 50.0,
         "total_requests": 200, "cpu_seconds": 0.2},
    ]
    result = combined(rounds, files)
    assert result["rps"] == pytest.approx(400 / 4.0) and result["errors"] == 1
    assert result["p50_ms"] == pytest.approx(3.0)  # the median of all five latencies, not of the rounds' medians
    assert result["cpu_ms_per_request"] == pytest.approx(0.6 * 1000 / 600)
    assert result["round_rps"] == [150.0, 50.0]
