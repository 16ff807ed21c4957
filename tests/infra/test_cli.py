"""`aicash infra render`: files for every object, no secret in them, clear errors for bad input."""

from __future__ import annotations

from pathlib import Path

import yaml
from typer.testing import CliRunner

from aicash.cli.main import app
from infra.config import SECRET_KEYS
from infra.render import placeholder

runner = CliRunner()


def test_render_writes_the_stack_and_no_secret(tmp_path: Path) -> None:
    for stack in ("dev", "prod"):
        out = tmp_path / stack
        result = runner.invoke(app, ["infra", "render", "--stack", stack, "--out", str(out)])
        assert result.exit_code == 0, result.output
        files = list(out.glob("*.yaml"))
        assert f"wrote {len(files)} objects" in result.output and len(files) > 20
        kinds = {yaml.safe_load(f.read_text())["kind"] for f in files}
        assert {"Deployment", "HorizontalPodAutoscaler", "Secret", "NetworkPolicy"} <= kinds
        text = "".join(f.read_text() for f in files)
        for key in SECRET_KEYS["local"]:
            assert placeholder(key) not in text  # the stand-in secrets the render ran with
        assert "render-placeholder" not in text


def test_image_tag_override(tmp_path: Path) -> None:
    args = ["infra", "render", "--stack", "prod", "--out", str(tmp_path), "--set", "imageTag=1.4.2"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    deployment = yaml.safe_load((tmp_path / "deployment_aicash_aicash-inference.yaml").read_text())
    assert deployment["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":1.4.2")


def test_unknown_stack_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["infra", "render", "--stack", "staging", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "unknown stack 'staging'" in result.output and "dev, prod" in result.output
    assert not list(tmp_path.iterdir())


def test_bad_config_exits_2(tmp_path: Path) -> None:
    for args in (["--set", "imageTag=latest"], ["--set", "noequals"]):
        result = runner.invoke(app, ["infra", "render", "--stack", "dev", "--out", str(tmp_path), *args])
        assert result.exit_code == 2, result.output
        assert "error:" in result.output
