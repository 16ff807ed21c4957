"""The platform as one installable wheel: built from the checkout, installed into a fresh virtualenv outside it
(nothing but the wheel, its declared extras and the pinned torch), then used from a folder that is no checkout.

It proves the tool packages (`features`, `pipelines`, `bentos`, `monitoring`, `infra`) ship inside the wheel and
import wherever it is installed: no path search for a checkout, no PYTHONPATH. The install takes a minute or two
(torch, Feast and KFP with their dependencies, from the package index); one virtualenv serves every test here.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]
SMALL = json.dumps({"max_epochs": 2, "n_folds": 2, "hidden_size": 16, "patience": 1})
TOOL_PACKAGES = ("features", "pipelines", "bentos", "monitoring", "infra")


def _run(cmd: list[str], cwd: Path, env: dict[str, str], timeout: float = 900) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout, check=False)  # noqa: S603
    output = f"{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
    assert done.returncode == 0, f"{' '.join(cmd)} exited {done.returncode}:\n{output}"
    return done


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("dist")
    _run([sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(out), str(REPO)], REPO, dict(os.environ))
    [built] = out.glob("aicash-*.whl")
    return built


@pytest.fixture(scope="module")
def installed(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Path]]:
    """A fresh virtualenv holding the wheel with its features and pipelines extras, and a work folder outside the
    checkout with an environment that points nothing at it."""
    root = tmp_path_factory.mktemp("installed")
    venv = root / "venv"
    # HOME and PIP_* stay: pip's own configuration (the package index) lives there; nothing else is inherited
    env = {"PATH": f"{venv / 'bin'}:/usr/bin:/bin", "HOME": os.environ.get("HOME", str(root)), "FEAST_USAGE": "False",
           "AICASH_HOME": str(root / "home")} | {k: v for k, v in os.environ.items() if k.startswith("PIP_")}
    _run([sys.executable, "-m", "venv", str(venv)], root, env)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q",
           "-c", str(REPO / "constraints.txt"), "-c", str(REPO / "requirements.lock")]
    _run([*pip, "torch==2.13.0"], root, env)  # first, pinned: an unpinned torch pulls CUDA packages
    _run([*pip, f"aicash[features,pipelines] @ {wheel.as_uri()}"], root, env)
    work = root / "work"
    work.mkdir()
    yield {"venv": venv, "work": work, "home": root / "home", "env": env}  # type: ignore[dict-item]


def test_the_wheel_carries_the_tool_packages_and_their_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {f"{package}/__init__.py" for package in ("aicash", *TOOL_PACKAGES)} <= names
    for data in ("features/feature_store.local.yaml", "features/feature_store.cluster.yaml",
                 "features/feature_store.cluster-redis.yaml", "pipelines/compiled/lstm-training.yaml",
                 "pipelines/compiled/model-search.yaml", "pipelines/search_space.yaml",
                 "bentos/bentofile.yaml", "monitoring/alerts.yml", "aicash/db/migrations/env.py"):
        assert data in names, data
    assert not [n for n in names if n.startswith(("tests/", "benchmarks/", "scripts/")) or "__pycache__" in n]


def test_installed_wheel_compiles_applies_and_trains_outside_the_checkout(installed) -> None:  # type: ignore[no-untyped-def]
    env, work = installed["env"], installed["work"]
    aicash = str(installed["venv"] / "bin" / "aicash")
    python = str(installed["venv"] / "bin" / "python")

    # every package imports from the virtualenv, none from the checkout
    where = _run([python, "-c", "import json, aicash, " + ", ".join(TOOL_PACKAGES[:-1]) + "; print(json.dumps("
                  "{m.__name__: m.__file__ for m in (aicash, " + ", ".join(TOOL_PACKAGES[:-1]) + ")}))"], work, env)
    for module, path in json.loads(where.stdout).items():
        assert Path(path).is_relative_to(installed["venv"]), (module, path)
        assert not Path(path).is_relative_to(REPO), (module, path)

    compiled = _run([aicash, "pipeline", "compile", "--out", "ir"], work, env)
    assert "compiled" in compiled.stdout
    ir, platform = yaml.safe_load_all((work / "ir" / "lstm-training.yaml").read_text())
    assert platform["platforms"]["kubernetes"]["pipelineConfig"]["activeDeadlineSeconds"] == 7200
    assert ir["pipelineInfo"]["name"] == "lstm-training"
    assert {e["container"]["image"] for e in ir["deploymentSpec"]["executors"].values()} == {"aicash-platform:0.1.0"}

    _run([aicash, "data", "ingest", "--sample", "eurusd-1h"], work, env)
    applied = _run([aicash, "features", "apply"], work, env)
    assert "FeatureService" in applied.stdout

    trained = _run([aicash, "pipeline", "run", "lstm-training", "--symbol", "EURUSD", "--config", SMALL], work, env)
    assert "lstm-training succeeded" in trained.stdout
    listed = _run([aicash, "models", "list"], work, env)
    assert "approved" in listed.stdout or "rejected" in listed.stdout
    assert list((installed["home"] / "models" / "signal-lstm").glob("*/metrics.json"))
