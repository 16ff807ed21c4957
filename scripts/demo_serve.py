"""The end of `make demo`: put the newest trained version in front of the API, serve it, send the frontend's
example request, print the answer, stop the service.

If the gate rejected the model (likely on real data: next-bar direction on a liquid market is close to a coin
toss, and an honest gate says so), the demo says so plainly and serves it under a forced promotion that the
audit log, `/models` and every answer label as forced; it is never recorded as approved.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx

from aicash.db.engine import engine_for
from aicash.model_input import MODEL_NAME
from aicash.registry import list_models, promote
from aicash.serving.keys import create_key, revoke_key
from aicash.serving.schemas import EXAMPLE_INPUT
from aicash.settings import load_settings

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def put_newest_in_production(engine) -> str:  # type: ignore[no-untyped-def]
    newest = max(list_models(engine, MODEL_NAME), key=lambda r: r.created_at, default=None)
    if newest is None:
        raise SystemExit("no trained model: run `aicash pipeline run lstm-training` first")
    if newest.status == "production":
        return newest.version
    if newest.status == "approved":
        promote(engine, newest.version, 100, actor="demo")
        print(f"{newest.version} passed the gate and is now in production")
        return newest.version
    print(f"The gate REJECTED {newest.version} ({'; '.join(newest.reasons)}).\n"
          "The demo serves it anyway, under a FORCED promotion: the audit log, /models and every answer label it\n"
          "'forced past the gate'; it is not approved.")
    promote(engine, newest.version, 100, force=True, actor="demo",
            reason="demo: show the serving path with the candidate the gate rejected")
    return newest.version


def main() -> int:
    settings = load_settings()
    engine = engine_for(settings)
    version = put_newest_in_production(engine)
    print(f"serving {version}; its model card: `aicash models show {version}`")
    key_name = f"demo-{int(time.time())}"
    key = create_key(engine, key_name, actor="demo")
    port = free_port()
    server = subprocess.Popen(  # noqa: S603
        [str(Path(sys.executable).parent / "aicash"), "serve", "--port", str(port)], cwd=REPO,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{url}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                time.sleep(0.5)
        else:
            raise SystemExit("the service did not become ready within 120 s")
        print(f"POST {url}/predict {json.dumps(EXAMPLE_INPUT)}")
        answer = httpx.post(f"{url}/predict", json=EXAMPLE_INPUT, headers={"X-API-Key": key}, timeout=30)
        print(f"-> {answer.status_code} {json.dumps(answer.json())}")
        if answer.status_code == 200 and answer.json().get("stale"):
            print(f"stale: the features end at {answer.json()['features_as_of']}, the historical sample's last bar; "
                  "candles ingested and materialized every bar keep them fresh")
        print(f"GET {url}/models -> {httpx.get(f'{url}/models', headers={'X-API-Key': key}).json()}")
        return 0 if answer.status_code == 200 else 1
    finally:
        os.killpg(server.pid, 15)
        server.wait(30)
        revoke_key(engine, key_name, actor="demo")
        print("service stopped")


if __name__ == "__main__":
    sys.exit(main())
