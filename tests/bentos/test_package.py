"""`aicash serve --build`: the production model goes into BentoML's store, `bentoml build` succeeds, and the Bento
carries exactly the registry's artifacts (what the service falls back to when the registry is unreachable)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import yaml

from aicash.db.engine import make_engine
from aicash.model_input import MODEL_NAME
from aicash.registry import load_artifacts, store_for
from aicash.settings import load_settings
from tests.support import REPO
from tests.support.service import AICASH, environment, home_env, prepare_service_home


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_build_packages_the_production_model_into_the_bento(tmp_path: Path) -> None:
    home = tmp_path / "home"
    env = home_env(home)
    with environment(env):
        production, _canary = prepare_service_home(home)

    done = subprocess.run([AICASH, "serve", "--build"], cwd=REPO, env=env, capture_output=True, text=True,  # noqa: S603
                          timeout=540, check=False)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert f"packaged signal-lstm:{production}" in done.stdout

    bento_dirs = [p for p in (home / "bentoml" / "bentos" / "aicash-signal").iterdir() if p.is_dir()]
    assert len(bento_dirs) == 1
    bento = bento_dirs[0]
    manifest = yaml.safe_load((bento / "bento.yaml").read_text())
    assert manifest["service"] == "bentos.service:SignalService"
    assert [m["tag"] for m in manifest["models"]] == [f"signal-lstm:{production}"]
    # The code comes from the aicash wheel, not from copied folders.
    assert not list((bento / "src").rglob("*.py"))
    [wheel] = [p for p in (bento / "env" / "python" / "wheels").iterdir() if p.name.startswith("aicash-0.1.0")]
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    assert {"bentos/service.py", "features/repo.py", "features/feature_store.cluster.yaml", "pipelines/launch.py",
            "aicash/serving/runtime.py"} <= names

    # The model the Bento carries is byte for byte the registry's production artifacts.
    fetched = subprocess.run(  # noqa: S603 - bentos.package in a process of its own (BENTOML_HOME is read at import)
        [sys.executable, "-c", "import json; from bentos.package import bundled_model as b; m = b(); "
         "print(json.dumps([m.version, str(m.folder)]))"],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120, check=True,
    )
    version, folder = json.loads(fetched.stdout.strip().splitlines()[-1])
    assert version == production
    engine = make_engine(f"sqlite:///{home / 'aicash.db'}")
    with environment(env):
        artifacts = load_artifacts(engine, store_for(load_settings()), production, tmp_path / "fetched", MODEL_NAME)
    engine.dispose()
    registry_files = _digests(artifacts)
    bundled_files = _digests(Path(folder))
    assert registry_files and all(bundled_files.get(name) == digest for name, digest in registry_files.items())

