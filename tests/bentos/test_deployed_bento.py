"""The built Bento is the unit under test: it is installed into a fresh virtualenv from nothing but its own
contents (`env/python/install.sh`: its requirements.txt and the aicash wheel it carries; torch pinned first, as
the image does), then served by its tag from a folder outside the checkout, as the container would run it. Every
endpoint the service has must work from there: the frontend's prediction, /indicators, /models, /health, and the
admin operations, training included (the run happens in the Bento's own environment).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from aicash.serving.schemas import EXAMPLE_INPUT
from tests.support import REPO
from tests.support.service import SERVICE_DEFAULTS, Running, create_keys, home_env, start_service, stop_service

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]
SMALL = {"max_epochs": 2, "n_folds": 2, "hidden_size": 8, "patience": 1}


def _run(cmd: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(cmd, env=env, cwd=cwd, capture_output=True, text=True, timeout=1200, check=False)  # noqa: S603
    assert done.returncode == 0, f"{cmd} exited {done.returncode}:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return time.perf_counter() - started


def _size_mb(folder: Path) -> float:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file() and not p.is_symlink()) / 1e6


@pytest.fixture(scope="module")
def deployed(built_bento, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:  # type: ignore[no-untyped-def]
    """The Bento installed into a fresh virtualenv and served by tag, on a copy of the built home."""
    root = tmp_path_factory.mktemp("deployed")
    home = shutil.copytree(built_bento.home, root / "home")
    venv = root / "venv"
    # the machine's package index settings (pip's configuration under HOME, PIP_*) and nothing of the checkout
    base = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", str(root)),
            "VIRTUAL_ENV": str(venv)} | {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    _run([sys.executable, "-m", "venv", str(venv)], base, root)
    seconds = _run([str(venv / "bin" / "pip"), "install", "-q", "torch==2.13.0"], base, root)
    bento = home / "bentoml" / "bentos" / "aicash-signal" / built_bento.folder.name
    seconds += _run(["bash", str(bento / "env" / "python" / "install.sh")], base, root)
    print(f"\nBento {built_bento.tag}: built in {built_bento.build_seconds:.0f} s; installed into a fresh virtualenv "
          f"in {seconds:.0f} s; environment {_size_mb(venv):,.0f} MB")
    container = root / "container"  # the folder the service runs in: no checkout, no pyproject.toml
    container.mkdir()
    env = home_env(home, SERVICE_DEFAULTS) | base
    env = {k: v for k, v in env.items() if k != "PYTHONPATH"}
    keys = create_keys(home, {"frontend": False, "ops": True})
    started = time.perf_counter()
    running = start_service(home, env=env, command=[str(venv / "bin" / "bentoml"), "serve", built_bento.tag],
                            cwd=container, timeout=300)
    print(f"served {built_bento.tag} from {container.name}/: ready in {time.perf_counter() - started:.0f} s")
    running.keys = keys
    try:
        yield running
    finally:
        stop_service(running)


def test_the_deployed_bento_runs_from_its_own_environment(deployed: Running, built_bento) -> None:  # type: ignore[no-untyped-def]
    where = deployed.log_text()
    assert str(REPO) not in where  # nothing of the checkout in what it loaded or logged
    venv = Path(deployed.env["VIRTUAL_ENV"])
    probe = subprocess.run(  # noqa: S603
        [str(venv / "bin" / "python"), "-c", "import aicash, bentos, features, pipelines, kfp; "
         "print(aicash.__file__, bentos.__file__, pipelines.__file__)"],
        env=deployed.env, capture_output=True, text=True, timeout=120, check=True, cwd=venv)
    assert all(Path(p).is_relative_to(venv) for p in probe.stdout.split()), probe.stdout


def test_the_deployed_bento_answers_the_frontend_and_the_read_endpoints(deployed: Running, built_bento) -> None:  # type: ignore[no-untyped-def]
    served = {built_bento.production, built_bento.canary}
    answer = deployed.post("/predict", EXAMPLE_INPUT)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["signal"] in {"BUY", "SELL", "HOLD"} and body["model_version"] in served
    assert abs(sum(body["probabilities"].values()) - 1) < 1e-4

    candles = [{"timestamp": f"2024-01-{1 + i // 24:02d}T{i % 24:02d}:00:00Z", "open": 1.1 + i * 1e-4,
                "high": 1.1005 + i * 1e-4, "low": 1.0995 + i * 1e-4, "close": 1.1002 + i * 1e-4, "volume": 100 + i}
               for i in range(80)]
    indicators = deployed.post("/indicators", {"candles": candles})
    assert indicators.status_code == 200, indicators.text
    rows = indicators.json()["indicators"]
    assert len(rows) == 80 and rows[-1]["rsi_value"] is not None

    models = deployed.get("/models")
    assert models.status_code == 200 and {m["version"] for m in models.json()["models"]} == served
    health = deployed.get("/health")
    assert health.status_code == 200 and health.json()["models"], health.text


def test_the_deployed_bento_trains_promotes_and_rolls_back(deployed: Running, built_bento) -> None:  # type: ignore[no-untyped-def]
    started = deployed.post("/train", {"symbols": ["EURUSD"], "timeframe": "1h", "config": SMALL}, key="ops")
    assert started.status_code == 202, started.text
    run_id = started.json()["run_id"]
    deadline, run = time.monotonic() + 600, {}
    while time.monotonic() < deadline:
        runs = deployed.get("/training-status", key="ops").json()["runs"]
        run = next(r for r in runs if r["run_id"] == run_id)
        if run["status"] not in {"running", "submitted"}:
            break
        time.sleep(2)
    assert run["status"] == "succeeded", run  # trained in the Bento's environment, to the registry
    assert run["model_version"] and run["model_version"] not in {built_bento.production, built_bento.canary}

    canary = built_bento.canary
    promoted = deployed.post(f"/models/{canary}/promote",
                             {"traffic_percentage": 100, "force": True, "reason": "deployed bento test"}, key="ops")
    assert promoted.status_code == 200, promoted.text
    assert promoted.json()["serving"] == [[canary, 100.0]]
    rolled = deployed.post("/models/rollback", {"reason": "deployed bento test: back"}, key="ops")
    assert rolled.status_code == 200, rolled.text
    assert rolled.json()["production"]["version"] == built_bento.production
    fresh = {**EXAMPLE_INPUT, "indicators": {**EXAMPLE_INPUT["indicators"], "rsi_value": 41.7}}  # not cached
    answer = httpx.post(deployed.url + "/predict", json=fresh, timeout=30,
                        headers={"X-API-Key": deployed.keys["frontend"]})
    assert answer.status_code == 200 and answer.json()["model_version"] == built_bento.production
