"""Every `aicash` command quoted in the bash blocks of README.md and docs/**/*.md is a real command: the CLI has it,
has each long option the line uses, and answers its --help."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from aicash.cli.main import app
from aicash.settings import Settings
from tests.support import REPO
from tests.support.docs import DOCS, aicash_commands

QUOTED = sorted({(doc.relative_to(REPO).as_posix(), tuple(args)) for doc in DOCS
                 for args in aicash_commands(doc.read_text())})
ROOT = typer.main.get_command(app)


def resolve(args: tuple[str, ...]):  # type: ignore[no-untyped-def]
    """The command the arguments name, and its path of (sub)command names."""
    command, path = ROOT, []
    for word in args:  # get_command: the root mounts each group when it is named
        sub = command.get_command(command.context_class(command), word) if hasattr(command, "get_command") else None
        if sub is None:
            break
        command, path = sub, [*path, word]
    return command, path


def long_options(args: tuple[str, ...]) -> set[str]:
    """`--name` of every option the line passes, optional (`[--name VALUE]`) or not, without `=value`."""
    words = (word.lstrip("[(") for word in args)
    return {word.split("=")[0].rstrip("])") for word in words if word.startswith("--")}


@pytest.fixture(autouse=True)
def clean_settings(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """--help still reads the settings first: valid, local ones."""
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("AICASH_HOME", str(tmp_path / "home"))


@pytest.mark.parametrize(("doc", "args"), QUOTED, ids=[f"{doc}: aicash {' '.join(args)}" for doc, args in QUOTED])
def test_a_documented_command_exists_with_its_options(doc: str, args: tuple[str, ...]) -> None:
    command, path = resolve(args)
    assert path, f"{doc}: `aicash {args[0]}` is no aicash command"
    assert not getattr(command, "commands", None), f"{doc}: `aicash {' '.join(path)}` needs a subcommand"
    known = {opt for param in command.params for opt in (*param.opts, *param.secondary_opts)}
    unknown = long_options(args) - known
    assert not unknown, f"{doc}: `aicash {' '.join(path)}` has no option {sorted(unknown)}"
    shown = CliRunner().invoke(app, [*path, "--help"])
    assert shown.exit_code == 0, shown.output
    assert re.search(rf"Usage: .*{' '.join(path)}", shown.output), shown.output


def test_the_docs_quote_commands() -> None:
    assert {doc for doc, _ in QUOTED} >= {"README.md", "docs/runbook.md", "docs/platform-team.md", "docs/data.md",
                                          "docs/features.md", "docs/pipelines.md", "docs/serving.md",
                                          "docs/registry.md", "docs/monitoring.md", "docs/database.md"}


def test_commands_are_found_behind_wrappers_and_aliases_and_not_in_namespaces() -> None:
    markdown = """
```bash
aicash db current                 # a comment with aicash models list in it
ops() { kubectl -n aicash exec deploy/aicash-feature-server -- aicash "$@"; }
ops keys create frontend && ops models promote <version> --traffic 100
kubectl -n aicash exec deploy/x -- sh -c \\
  'aicash pipeline submit lstm-training --host "$KFP_HOST"'
eval "$(aicash features env)"
run-in-cluster aicash db downgrade <REV>
kubectl -n aicash create secret tls aicash-inference-tls
aicash monitor rules > monitoring/alerts.yml
```

```python
aicash = "not a shell line"
```
"""
    assert aicash_commands(markdown) == [
        ["db", "current"],
        ["keys", "create", "frontend"],
        ["models", "promote", "<version>", "--traffic", "100"],
        ["pipeline", "submit", "lstm-training", "--host", "$KFP_HOST"],
        ["features", "env"],
        ["db", "downgrade", "<REV>"],
        ["monitor", "rules"],
    ]
    assert long_options(("monitor", "drift", "[--since", "24h]", "[--email]", "--set", "imageTag=1")) == {
        "--since", "--email", "--set"}
