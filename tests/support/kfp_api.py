"""A small real HTTP server speaking the KFP v2beta1 REST endpoints `kfp.Client.create_run_from_pipeline_package`
uses (healthz, experiments list/create, runs create), recording what it was sent: no KFP server can run here."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


@dataclass
class KfpApi:
    """What the server was sent."""

    url: str
    # (method, path, query, JSON body) of every request
    requests: list[tuple[str, str, dict[str, list[str]], Any]] = field(default_factory=list)
    experiments: dict[str, str] = field(default_factory=dict)  # display name -> id

    def runs(self) -> list[dict[str, Any]]:
        return [body for method, path, _, body in self.requests if (method, path) == ("POST", "/apis/v2beta1/runs")]


def _handler(api: KfpApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args: Any) -> None:
            pass

        def _answer(self, status: int, body: dict[str, Any]) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            api.requests.append(("GET", url.path, parse_qs(url.query), None))
            if url.path == "/apis/v2beta1/healthz":
                self._answer(200, {"multi_user": False})
            elif url.path == "/apis/v2beta1/experiments":
                wanted = json.loads(parse_qs(url.query).get("filter", ["{}"])[0]).get("predicates", [{}])[0]
                found = [{"experiment_id": i, "display_name": n} for n, i in api.experiments.items()
                         if n == wanted.get("stringValue", n)]
                self._answer(200, {"experiments": found, "total_size": len(found)} if found else {})
            else:
                self._answer(404, {"error": f"no route {url.path}", "code": 5})

        def do_POST(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            api.requests.append(("POST", url.path, parse_qs(url.query), body))
            if url.path == "/apis/v2beta1/experiments":
                experiment_id = api.experiments.setdefault(body["display_name"], f"exp-{len(api.experiments) + 1}")
                self._answer(200, {"experiment_id": experiment_id, "display_name": body["display_name"]})
            elif url.path == "/apis/v2beta1/runs":
                self._answer(200, {"run_id": f"run-{len(api.runs())}", "display_name": body.get("display_name"),
                                   "experiment_id": body.get("experiment_id"), "state": "PENDING"})
            else:
                self._answer(404, {"error": f"no route {url.path}", "code": 5})

    return Handler


@contextmanager
def serve_kfp_api() -> Iterator[KfpApi]:
    """The server on 127.0.0.1 (a free port) for the block."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), BaseHTTPRequestHandler)
    api = KfpApi(f"http://127.0.0.1:{server.server_address[1]}")
    server.RequestHandlerClass = _handler(api)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
