"""The Prometheus rule files checked by Prometheus' own `promtool` (Debian's prometheus package; `make test`
installs it where it is missing): both files are valid, their unit tests pass, every rule is tested firing and
silent, and a broken rule fails its test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from aicash.monitoring import alerts
from monitoring import resource_rules
from tests.support import REPO

MONITORING = REPO / "monitoring"
# rule file -> (its unit tests, the rule names it must define)
SUITES = {
    "alerts.yml": ("aicash-alerts.test.yml", [rule.name for rule in alerts.RULES]),
    "resource-alerts.yml": ("resource-alerts.test.yml", [rule.name for rule in resource_rules.RULES]),
}


def promtool(*args: str, cwd: Path = MONITORING) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, "promtool is missing: install Debian's prometheus package (make test does: scripts/ensure_tools.sh)"
    return subprocess.run([binary, *args], cwd=cwd, capture_output=True, text=True, timeout=120, check=False)  # noqa: S603


def test_both_rule_files_are_valid_prometheus_rules() -> None:
    done = promtool("check", "rules", *SUITES)
    assert done.returncode == 0, done.stdout + done.stderr
    for _, names in SUITES.values():
        assert f"SUCCESS: {len(names)} rules found" in done.stdout


def test_the_resource_rule_file_is_current() -> None:
    assert (MONITORING / "resource-alerts.yml").read_text() == resource_rules.rules_yaml("aicash"), (
        "regenerate it: python -m monitoring.resource_rules > monitoring/resource-alerts.yml")


@pytest.mark.parametrize("rule_file", list(SUITES))
def test_the_unit_tests_pass(rule_file: str) -> None:
    done = promtool("test", "rules", f"tests/{SUITES[rule_file][0]}")
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.parametrize("rule_file", list(SUITES))
def test_every_rule_is_tested_firing_and_silent(rule_file: str) -> None:
    tests, names = SUITES[rule_file]
    suite = yaml.safe_load((MONITORING / "tests" / tests).read_text())
    assert suite["rule_files"] == [f"../{rule_file}"]
    cases = [case for group in suite["tests"] for case in group["alert_rule_test"]]
    for name in names:
        mine = [case for case in cases if case["alertname"] == name]
        assert any(case["exp_alerts"] for case in mine), f"{name} is never tested firing"
        assert any(not case["exp_alerts"] for case in mine), f"{name} is never tested silent"


@pytest.mark.parametrize(("rule_file", "rule", "broken"), [
    ("resource-alerts.yml", "AicashMemoryNearLimit", ("> 0.9", "> 0.96")),
    ("resource-alerts.yml", "AicashScheduledJobLate", ("> 2 *", "> 4 *")),
    ("alerts.yml", "AicashLiveWinRateLow", ("aicash_live_trades >= 30", "aicash_live_trades >= 50")),
    # the accuracy alert judges the directional accuracy of traded signals (the gate's MIN_ACCURACY) on 30 trades
    ("alerts.yml", "AicashLiveAccuracyLow", ("aicash_live_directional_accuracy <", "aicash_live_accuracy <")),
    ("alerts.yml", "AicashLiveAccuracyLow", ("aicash_min_accuracy\n      and aicash_live_trades >= 30",
                                             "aicash_min_accuracy\n      and aicash_live_decisions >= 100")),
    ("alerts.yml", "AicashPredictLatencyHigh", ("[5m]))) > 1", "[5m]))) > 2")),
])
def test_a_broken_rule_fails_its_unit_test(tmp_path: Path, rule_file: str, rule: str, broken: tuple[str, str]) -> None:
    tests = SUITES[rule_file][0]
    (tmp_path / "tests").mkdir()
    text = (MONITORING / rule_file).read_text()
    assert broken[0] in text
    (tmp_path / rule_file).write_text(text.replace(broken[0], broken[1]))
    shutil.copy(MONITORING / "tests" / tests, tmp_path / "tests" / tests)
    done = promtool("test", "rules", f"tests/{tests}", cwd=tmp_path)
    assert done.returncode != 0 and rule in done.stdout + done.stderr, done.stdout
