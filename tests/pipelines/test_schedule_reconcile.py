"""`aicash pipeline schedule --reconcile`: what the stack's Job runs at `pulumi up` so that KFP holds exactly the
declared recurring run. Against a real HTTP server speaking KFP's v2beta1 API (`tests/support/kfp_api.py`), through
`kfp.Client`."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, select

from aicash.db.models import TrainingRun
from tests.support.kfp_api import RECURRING, KfpApi, serve_kfp_api

NAME = "aicash-lstm-training"


@pytest.fixture
def kfp_api() -> Iterator[KfpApi]:
    with serve_kfp_api() as api:
        yield api


def reconcile(cli, api: KfpApi, *extra: str):  # type: ignore[no-untyped-def]
    return cli("pipeline", "schedule", "lstm-training", "--reconcile", "--name", NAME, "--host", api.url,
               "--symbol", "EURUSD", "--timeframe", "1h", *extra)


def on_kfp(api: KfpApi) -> list[tuple[str, str, str]]:
    """(id, display name, cron) of each recurring run the server holds."""
    return [(i, r["display_name"], r["trigger"]["cron_schedule"]["cron"]) for i, r in api.recurring.items()]


def writes(api: KfpApi) -> list[tuple[str, str]]:
    return [(method, path) for method, path, _, _ in api.requests
            if method in ("POST", "DELETE") and path.startswith(RECURRING)]


def rows(engine: Engine) -> list[tuple[str, str | None, str | None]]:
    """(status, recurring run id, error) of every training run recorded."""
    with engine.connect() as conn:
        found = conn.execute(select(TrainingRun.status, TrainingRun.params, TrainingRun.error)
                             .order_by(TrainingRun.id)).all()
    return [(status, params.get("kfp_recurring_run_id"), error) for status, params, error in found]


def test_create_then_keep_then_replace_then_turn_off(cli, engine, kfp_api: KfpApi) -> None:  # type: ignore[no-untyped-def]
    first = reconcile(cli, kfp_api, "--cron", "0 3 * * 0", "--image", "reg/aicash-platform:1")
    assert first.exit_code == 0, first.output
    assert "created, rr-1 (training run 1)" in " ".join(first.stdout.split())
    assert on_kfp(kfp_api) == [("rr-1", NAME, "0 0 3 * * 0")]
    created = kfp_api.recurring["rr-1"]
    assert created["runtime_config"]["parameters"] == {"symbols": ["EURUSD"], "timeframe": "1h"}
    assert int(created["max_concurrency"]) == 1 and created["no_catchup"] is True and created["mode"] == "ENABLE"
    assert created["description"].startswith("managed by `aicash pipeline schedule --reconcile`; spec ")
    spec = created["pipeline_spec"]["pipeline_spec"]  # the IR's two documents: pipeline and platform spec
    assert {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()} == {"reg/aicash-platform:1"}
    assert rows(engine) == [("scheduled", "rr-1", None)]

    again = reconcile(cli, kfp_api, "--cron", "0 3 * * 0", "--image", "reg/aicash-platform:1")
    assert again.exit_code == 0 and "unchanged, rr-1" in again.stdout
    assert writes(kfp_api) == [("POST", RECURRING)]  # nothing created or deleted the second time

    moved = reconcile(cli, kfp_api, "--cron", "0 4 * * 0", "--image", "reg/aicash-platform:1")
    assert moved.exit_code == 0 and "replaced, rr-2 (training run 2); deleted rr-1" in " ".join(moved.stdout.split())
    assert on_kfp(kfp_api) == [("rr-2", NAME, "0 0 4 * * 0")]
    new_image = reconcile(cli, kfp_api, "--cron", "0 4 * * 0", "--image", "reg/aicash-platform:2")
    assert "replaced, rr-3" in new_image.stdout and on_kfp(kfp_api) == [("rr-3", NAME, "0 0 4 * * 0")]

    off = reconcile(cli, kfp_api, "--off")
    assert off.exit_code == 0 and f"recurring run {NAME} on {kfp_api.url}: deleted rr-3" in off.stdout
    assert kfp_api.recurring == {}
    assert reconcile(cli, kfp_api, "--off").stdout.strip().endswith(": absent, nothing to delete")
    recorded = rows(engine)
    assert [(s, i) for s, i, _ in recorded] == [("cancelled", "rr-1"), ("cancelled", "rr-2"), ("cancelled", "rr-3")]
    assert "rr-1 deleted from KFP by `aicash pipeline schedule --reconcile` (replaced)" in recorded[0][2]
    assert recorded[2][2].endswith("(turned off)")


def test_duplicates_and_hand_made_ones_of_that_name_are_replaced_by_one(cli, engine, kfp_api: KfpApi) -> None:  # type: ignore[no-untyped-def]
    for _ in range(2):  # a plain `schedule` twice: two recurring runs named lstm-training-schedule, no fingerprint
        made = cli("pipeline", "schedule", "lstm-training", "--cron", "0 3 * * 0", "--host", kfp_api.url)
        assert made.exit_code == 0, made.output
    other = cli("pipeline", "schedule", "signal-weights", "--cron", "0 5 * * 6", "--host", kfp_api.url)
    assert other.exit_code == 0, other.output
    plain = "lstm-training-schedule"
    assert [name for _, name, _ in on_kfp(kfp_api)] == [plain, plain, "signal-weights-schedule"]

    done = cli("pipeline", "schedule", "lstm-training", "--reconcile", "--cron", "0 3 * * 0", "--host", kfp_api.url)
    assert done.exit_code == 0, done.output
    assert "replaced, rr-4 (training run 4); deleted rr-1, rr-2" in " ".join(done.stdout.split())
    assert on_kfp(kfp_api) == [("rr-3", "signal-weights-schedule", "0 0 5 * * 6"), ("rr-4", plain, "0 0 3 * * 0")]
    assert [s for s, _, _ in rows(engine)] == ["cancelled", "cancelled", "scheduled", "scheduled"]


def test_a_refusing_server_exits_1_and_changes_nothing_recorded_as_scheduled(cli, engine, kfp_api: KfpApi) -> None:  # type: ignore[no-untyped-def]
    kfp_api.refuse_writes = 503
    result = reconcile(cli, kfp_api, "--cron", "0 3 * * 0")
    assert result.exit_code == 1
    assert f"KFP at {kfp_api.url} refused or did not answer" in " ".join(result.stderr.split())
    assert kfp_api.recurring == {}
    [(status, recurring_run_id, error)] = rows(engine)
    assert (status, recurring_run_id) == ("failed", None) and "refused or did not answer" in (error or "")


def test_an_unreachable_server_exits_1(cli, engine) -> None:  # type: ignore[no-untyped-def]
    with serve_kfp_api() as api:
        url = api.url
    result = cli("pipeline", "schedule", "lstm-training", "--reconcile", "--off", "--host", url)
    assert result.exit_code == 1 and f"KFP at {url} refused or did not answer" in " ".join(result.stderr.split())
    assert rows(engine) == []


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--off"], "--off and --name go with --reconcile"),
        (["--cron", "0 3 * * 0", "--name", NAME], "--off and --name go with --reconcile"),
        ([], "--cron is required"),
        (["--reconcile", "--cron", "weekly"], "needs 6 fields"),
    ],
)
def test_bad_input_exits_2(cli, engine, kfp_api: KfpApi, args: list[str], message: str) -> None:  # type: ignore[no-untyped-def]
    result = cli("pipeline", "schedule", "lstm-training", "--host", kfp_api.url, *args)
    assert result.exit_code == 2 and message in result.stderr
    assert writes(kfp_api) == [] and rows(engine) == []
