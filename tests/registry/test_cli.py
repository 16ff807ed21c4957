"""`aicash models list | show | promote | rollback`, including bad input (exit 2, option and fix named)."""

from __future__ import annotations

from pathlib import Path

import pytest

from aicash.db.engine import make_engine
from aicash.registry import register_model, store_for
from tests.support.registry import make_artifacts


@pytest.fixture
def registered(cli, env, settings, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    engine = make_engine(settings.sqlalchemy_url)
    for i, (version, approved) in enumerate([("v1", True), ("v2", True), ("v3", False)]):
        folder = make_artifacts(tmp_path / version, i)
        register_model(engine, store_for(settings), version=version, artifacts_dir=folder,
                       metrics={"accuracy": 0.6 + i / 100, "win_rate": 0.5, "samples": 900},
                       approved=approved, reasons=[] if approved else ["accuracy 0.52 < 0.55"], actor="pipeline")
    engine.dispose()


def test_list_show_promote_rollback(cli, registered) -> None:  # type: ignore[no-untyped-def]
    listed = cli("models", "list")
    assert listed.exit_code == 0, listed.output
    for text in ("v1", "v2", "v3", "approved", "rejected", "accuracy=0.6", "win_rate=0.5"):
        assert text in listed.stdout

    assert cli("models", "promote", "v1", "--traffic", "100", "--actor", "alice").exit_code == 0
    canary = cli("models", "promote", "v2", "--traffic", "10")
    assert canary.exit_code == 0 and "approved (canary) with 10% of the traffic" in canary.stdout
    assert "approved (canary)" in cli("models", "list").stdout
    assert "v2 is now production" in cli("models", "promote", "v2", "--traffic", "100").stdout

    card = cli("models", "show", "v1")
    assert card.exit_code == 0, card.output
    for text in ("status: archived", "gate: passed", "accuracy", "sha256:", "file://", "model.register",
                 "model.promote", "alice"):
        assert text in card.stdout, text

    back = cli("models", "rollback", "--reason", "latency")
    assert back.exit_code == 0 and "v1 is production again" in back.stdout
    assert "model.rollback" in cli("models", "show", "v1").stdout


def test_forced_promotion_of_a_rejected_version(cli, registered) -> None:  # type: ignore[no-untyped-def]
    refused = cli("models", "promote", "v3", "--traffic", "100")
    assert refused.exit_code == 2
    assert "--force --reason" in refused.stderr and "accuracy 0.52 < 0.55" in refused.stderr
    no_reason = cli("models", "promote", "v3", "--traffic", "100", "--force")
    assert no_reason.exit_code == 2 and "--force needs --reason" in no_reason.stderr
    forced = cli("models", "promote", "v3", "--traffic", "100", "--force", "--reason", "demo")
    assert forced.exit_code == 0 and "v3 is now production" in forced.stdout
    card = cli("models", "show", "v3").stdout
    assert "gate: failed" in card and "accuracy 0.52 < 0.55" in card and "demo" in card


def test_promoting_to_the_state_a_version_is_in_exits_0_and_says_so(cli, registered) -> None:  # type: ignore[no-untyped-def]
    assert cli("models", "promote", "v1", "--traffic", "100").exit_code == 0
    assert cli("models", "promote", "v2", "--traffic", "10").exit_code == 0
    for version, traffic, state in (("v1", "100", "production with 100%"), ("v2", "10", "approved (canary) with 10%"),
                                    ("v3", "0", "rejected with 0%")):
        again = cli("models", "promote", version, "--traffic", traffic)
        assert again.exit_code == 0, again.output
        assert f"{version} is already {state} of the traffic: nothing to change" in " ".join(again.stdout.split())
    history = cli("models", "show", "v1").stdout
    assert history.count("model.promote") == 1  # nothing written the second time


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (("show", "v9"), "no version 'v9'"),
        (("promote", "v9", "--traffic", "10"), "no version 'v9'"),
        (("promote", "v1", "--traffic", "150"), "--traffic 150 is outside 0..100"),
        (("promote", "v1", "--traffic", "-5"), "--traffic -5 is outside 0..100"),
        (("promote", "v1", "--traffic", "10"), "no production version"),
        (("rollback",), "no production version"),
    ],
)
def test_bad_input_exits_2_with_a_message(cli, registered, args, message) -> None:  # type: ignore[no-untyped-def]
    result = cli("models", *args)
    assert result.exit_code == 2, result.output
    assert message in result.stderr and "Traceback" not in result.output


def test_list_with_no_models(cli) -> None:  # type: ignore[no-untyped-def]
    result = cli("models", "list")
    assert result.exit_code == 0 and "no models registered yet" in result.stdout


def test_weights_shows_defaults_then_saved_versions(cli, engine) -> None:  # type: ignore[no-untyped-def]
    from aicash.signals.weights import WeightsResult, save_weights

    first = cli("models", "weights")
    assert first.exit_code == 0 and "defaults (equal)" in first.stdout and "rsi=1" in first.stdout
    save_weights(engine, WeightsResult(source="trades", weights={"rsi": 1.0, "macd": 0.5}, objective="auc",
                                       oos_score=0.71, baseline_oos_score=0.55, baseline_version=None), actor="t")
    shown = cli("models", "weights").stdout
    assert "version 1" in shown and "macd=0.5" in shown and "auc 0.71" in shown and "trades" in shown
