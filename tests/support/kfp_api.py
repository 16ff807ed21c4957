"""A small real HTTP server speaking the KFP v2beta1 REST endpoints `kfp.Client.create_run_from_pipeline_package`
and `kfp.Client.get_run` use (healthz, experiments list/create, runs create, run get), and the recurring runs of
`aicash pipeline schedule [--reconcile]` (create, list by display name, delete), recording what it was sent: no KFP
server can run here.

`GET /apis/v2beta1/runs/{run_id}` answers a run's scripted states (`KfpApi.states`): one per read, in order, the
last one repeated; a run created through the server and not scripted stays PENDING; any other id gets KFP's 404
(`{"code": 5, "message": ...}`). `refuse_reads` makes every run read answer that HTTP status instead."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

RUNS = "/apis/v2beta1/runs"
RECURRING = "/apis/v2beta1/recurringruns"
NOT_FINISHED = "1970-01-01T00:00:00Z"  # what KFP answers for a time not reached yet


def run_state(state: str, *, error: str | None = None, finished_at: str | None = None,
              **fields: Any) -> dict[str, Any]:  # fmt: skip
    """One scripted read of a run: KFP's state, its error message and finish time (RFC 3339), any other field."""
    body: dict[str, Any] = {"state": state, "finished_at": finished_at or NOT_FINISHED, **fields}
    if error is not None:
        body["error"] = {"code": 2, "message": error, "details": []}
    return body


@dataclass
class KfpApi:
    """What the server was sent."""

    url: str
    # (method, path, query, JSON body) of every request
    requests: list[tuple[str, str, dict[str, list[str]], Any]] = field(default_factory=list)
    experiments: dict[str, str] = field(default_factory=dict)  # display name -> id
    # run id -> the states it moves through on successive reads (`run_state(...)`, or a bare state)
    states: dict[str, list[dict[str, Any] | str]] = field(default_factory=dict)
    created_at: str = "2026-12-06T10:00:00Z"  # every run's creation (and scheduled) time
    pipeline: str = "lstm-training"  # the pipeline spec's name in every run read
    refuse_reads: int | None = None  # answer every run read with this HTTP status (e.g. 503)
    reads: dict[str, int] = field(default_factory=dict)  # run id -> times read
    recurring: dict[str, dict[str, Any]] = field(default_factory=dict)  # recurring run id -> as created
    refuse_writes: int | None = None  # answer every create or delete of a recurring run with this HTTP status

    def runs(self) -> list[dict[str, Any]]:
        return [body for method, path, _, body in self.requests if (method, path) == ("POST", RUNS)]

    def run(self, run_id: str) -> tuple[int, dict[str, Any]]:
        """The answer to `GET /apis/v2beta1/runs/{run_id}`: the run's next scripted state as a V2beta1Run."""
        if self.refuse_reads is not None:
            return self.refuse_reads, {"code": 14, "message": "the API server is not ready", "details": []}
        created = run_id in {f"run-{n}" for n in range(1, len(self.runs()) + 1)}
        if run_id not in self.states and not created:
            return 404, {"code": 5, "message": f"Failed to get run: ResourceNotFoundError: Run {run_id} not found",
                         "details": []}
        script = self.states.get(run_id) or ["PENDING"]
        read = self.reads[run_id] = self.reads.get(run_id, 0) + 1
        step = script[min(read, len(script)) - 1]
        step = run_state(step) if isinstance(step, str) else step
        return 200, {"run_id": run_id, "display_name": f"{self.pipeline}-1234", "experiment_id": "exp-1",
                     "storage_state": "AVAILABLE", "pipeline_spec": {"pipelineInfo": {"name": self.pipeline}},
                     "runtime_config": {"parameters": {"symbols": ["EURUSD"], "timeframe": "1h"}},
                     "created_at": self.created_at, "scheduled_at": self.created_at,
                     "state_history": [{"update_time": self.created_at, "state": "PENDING"}], **step}

    def create_recurring(self, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        """Store a recurring run as KFP does: its id, status ENABLED (mode ENABLE) or DISABLED, creation time."""
        if self.refuse_writes is not None:
            return self.refuse_writes, {"code": 14, "message": "the API server is not ready", "details": []}
        recurring_run_id = f"rr-{len([r for r in self.requests if r[:2] == ('POST', RECURRING)])}"
        stored = {**body, "recurring_run_id": recurring_run_id, "created_at": self.created_at,
                  "status": "ENABLED" if body.get("mode", "ENABLE") == "ENABLE" else "DISABLED"}
        self.recurring[recurring_run_id] = stored
        return 200, stored

    def delete_recurring(self, recurring_run_id: str) -> tuple[int, dict[str, Any]]:
        if self.refuse_writes is not None:
            return self.refuse_writes, {"code": 14, "message": "the API server is not ready", "details": []}
        if self.recurring.pop(recurring_run_id, None) is None:
            return 404, {"code": 5, "message": f"RecurringRun {recurring_run_id} not found", "details": []}
        return 200, {}

    def get(self, path: str, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        """The answer to a GET."""
        if path == "/apis/v2beta1/healthz":
            return 200, {"multi_user": False}
        if path.startswith(RUNS + "/"):
            return self.run(unquote(path.removeprefix(RUNS + "/")))
        if path == RECURRING:
            return 200, self.list_recurring(query)
        if path == "/apis/v2beta1/experiments":
            return 200, self.list_experiments(query)
        return 404, {"error": f"no route {path}", "code": 5}

    def list_experiments(self, query: dict[str, list[str]]) -> dict[str, Any]:
        wanted = json.loads(query.get("filter", ["{}"])[0]).get("predicates", [{}])[0]
        found = [{"experiment_id": i, "display_name": n} for n, i in self.experiments.items()
                 if n == wanted.get("stringValue", n)]
        return {"experiments": found, "total_size": len(found)} if found else {}

    def list_recurring(self, query: dict[str, list[str]]) -> dict[str, Any]:
        """`GET /recurringruns`: the experiment's (`experiment_id`), filtered on display_name EQUALS if asked."""
        predicates = json.loads(query.get("filter", ["{}"])[0]).get("predicates", [])
        names = {p["stringValue"] for p in predicates if p.get("key") == "display_name"}
        experiment = query.get("experiment_id", [None])[0]
        found = [r for r in self.recurring.values() if (not names or r.get("display_name") in names)
                 and experiment in (None, r.get("experiment_id"))]
        return {"recurringRuns": found, "total_size": len(found)} if found else {}


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
            self._answer(*api.get(url.path, parse_qs(url.query)))

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
            elif url.path == RECURRING:
                self._answer(*api.create_recurring(body))
            else:
                self._answer(404, {"error": f"no route {url.path}", "code": 5})

        def do_DELETE(self) -> None:  # noqa: N802
            url = urlparse(self.path)
            api.requests.append(("DELETE", url.path, parse_qs(url.query), None))
            self._answer(*api.delete_recurring(unquote(url.path.removeprefix(RECURRING + "/"))))

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
