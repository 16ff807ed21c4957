"""`aicash serve --build`: the production model goes into BentoML's store, `bentoml build` succeeds, and the Bento
carries exactly the registry's artifacts (what the service falls back to when the registry is unreachable)."""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest
import yaml

from aicash.db.engine import make_engine
from aicash.model_input import MODEL_NAME
from aicash.registry import load_artifacts, store_for
from aicash.settings import load_settings
from tests.support import REPO
from tests.support.service import environment, home_env


def _digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_build_packages_the_production_model_into_the_bento(built_bento, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    home, production, bento = built_bento.home, built_bento.production, built_bento.folder
    env = home_env(home)
    assert f"packaged signal-lstm:{production}" in built_bento.build_output
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



def test_bento_requirements_carry_the_serving_features_and_pipelines_extras() -> None:
    """The Bento installs bentos/requirements.txt and the aicash wheel (base dependencies only): the requirements
    file must hold exactly the extras the deployed service runs on (BentoML pins itself)."""
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    wanted = {r.replace(" ", "") for extra in ("serving", "features", "pipelines") for r in extras[extra]
              if not r.startswith("bentoml")}
    lines = (REPO / "bentos" / "requirements.txt").read_text().splitlines()
    listed = {line.split("#")[0].replace(" ", "") for line in lines if line.split("#")[0].strip()}
    assert listed == wanted
