"""`make soak`: its judgement on hand-made figures (errors, memory growth, intervals), then a brief real run that
goes through the same steps as the 5-minute one and cleans up after itself."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import pytest

from loadtest import soak
from tests.support.net import listening
from tests.support.service import use_home

MiB = 2**20


def history(seconds: int, rps: int = 10, fail_at: int | None = None, spike_at: int | None = None) -> list:
    rows, failures = [], 0
    for t in range(seconds):
        failures += 1 if t == fail_at else 0
        p95 = 400.0 if t == spike_at else 5.0
        rows.append(soak.HistoryRow(1000.0 + t, rps, p95, p95 * 2, (t + 1) * rps, failures))
    return rows


def memory(seconds: int, start_mib: float, slope_mib_per_s: float) -> list:
    return [soak.MemorySample(1000.0 + t, int((start_mib + slope_mib_per_s * t) * MiB)) for t in range(seconds)]


def test_flat_memory_and_no_errors_pass() -> None:
    result = soak.summarize(history(120), memory(120, 500, 0.01), warmup_s=20)
    assert result.requests == 1200 and result.failures == 0
    assert result.memory_growth == pytest.approx(0.01 * (118 - 20) / 500.2)  # end: median of the last 3
    assert result.met


def test_a_leak_fails_even_without_errors() -> None:
    result = soak.summarize(history(120), memory(120, 500, 1.0), warmup_s=20)  # +1 MiB/s: 100 MiB in 100 s
    assert result.memory_growth > 0.10 and not result.met


def test_growth_of_two_per_cent_fails() -> None:
    assert soak.MAX_MEMORY_GROWTH == 0.02
    flat = soak.summarize(history(120), memory(120, 500, 0.0), warmup_s=20)
    slow_leak = soak.summarize(history(120), memory(120, 500, 0.11), warmup_s=20)  # ~10.8 MiB of 502: 2.1 %
    assert flat.met and 0.02 < slow_leak.memory_growth < 0.03 and not slow_leak.met


def test_a_long_tail_in_one_interval_fails_the_soak() -> None:
    rows = history(90)
    steady = soak.intervals(rows, memory(90, 500, 0.0), width_s=30)
    assert [s.tail_ratio for s in steady] == [2.0, 2.0, 2.0]  # p99 exactly twice p95: met
    assert soak.met(soak.summarize(rows, memory(90, 500, 0.0), 10), steady)
    paused = [r if r.timestamp != 1045.0 else soak.HistoryRow(r.timestamp, r.rps, 5.0, 60.0, r.total_requests,
                                                              r.total_failures) for r in rows]
    slices = soak.intervals(paused, memory(90, 500, 0.0), width_s=30)
    assert [s.tail_met for s in slices] == [True, False, True]
    assert slices[1].tail_ratio == 12.0
    assert not soak.met(soak.summarize(paused, memory(90, 500, 0.0), 10), slices)
    assert not soak.met(soak.summarize(paused, memory(90, 500, 0.0), 10), [])  # nothing measured: not met


def test_warm_up_growth_is_not_counted() -> None:
    warming = [soak.MemorySample(1000.0 + t, (300 + 20 * t) * MiB) for t in range(10)]  # lazy allocations
    steady = [soak.MemorySample(1010.0 + t, 500 * MiB) for t in range(110)]
    assert soak.summarize(history(120), warming + steady, warmup_s=10).memory_growth == 0.0
    assert soak.summarize(history(120), warming + steady, warmup_s=0).memory_growth > 0.5


def test_a_single_failed_request_fails_the_soak() -> None:
    result = soak.summarize(history(120, fail_at=60), memory(120, 500, 0.0), warmup_s=20)
    assert result.failures == 1 and result.error_rate == pytest.approx(1 / 1200) and not result.met


def test_nothing_to_judge_is_an_error() -> None:
    with pytest.raises(ValueError, match="nothing to judge"):
        soak.summarize([], memory(10, 500, 0), warmup_s=0)


def test_intervals_split_counts_and_keep_the_worst_window() -> None:
    slices = soak.intervals(history(95, spike_at=40, fail_at=70), memory(95, 500, 0.0), width_s=30)
    assert [s.requests for s in slices] == [300, 300, 300, 50]
    assert [s.failures for s in slices] == [0, 0, 1, 0]
    assert [s.p95_ms for s in slices] == [5.0, 400.0, 5.0, 5.0]  # the spike shows in its own interval only
    assert all(s.rss_mb == 500 for s in slices)


def test_read_history_takes_the_aggregated_rows(tmp_path: Path) -> None:
    path = tmp_path / "locust_stats_history.csv"
    columns = ["Timestamp", "User Count", "Type", "Name", "Requests/s", "Failures/s", "50%", "95%", "99%",
               "Total Request Count", "Total Failure Count"]
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        writer.writerow([1000, 2, "POST", "/predict", "9.0", "0", "3", "7", "9", 9, 0])
        writer.writerow([1000, 2, "", "Aggregated", "10.0", "0", "N/A", "N/A", "N/A", 10, 0])
        writer.writerow([1001, 2, "", "Aggregated", "12.5", "0", "3", "8", "11", 22, 1])
    rows = soak.read_history(path)
    assert rows == [soak.HistoryRow(1000, 10.0, 0.0, 0.0, 10, 0), soak.HistoryRow(1001, 12.5, 8.0, 11.0, 22, 1)]


def test_bad_options_exit_2() -> None:
    assert soak.main(["--rate", "0"]) == 2
    assert soak.main(["--duration", "-5"]) == 2


def test_tree_rss_counts_the_children(tmp_path: Path) -> None:
    import subprocess
    import sys

    code = "import time; b = bytearray(64 * 2**20); b[::4096] = b'x' * len(b[::4096]); time.sleep(30)"
    child = subprocess.Popen([sys.executable, "-c", code])
    try:
        alone = soak.tree_rss(os.getpid())
        deadline = time.monotonic() + 20
        while soak.tree_rss(os.getpid()) < alone + 50 * MiB and time.monotonic() < deadline:
            time.sleep(0.2)
        assert soak.tree_rss(os.getpid()) >= alone + 50 * MiB  # the child's 64 MiB is counted
    finally:
        child.kill()
        child.wait()


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_brief_soak_reports_and_cleans_up(served_home: Path, tmp_path: Path, monkeypatch, capsys) -> None:  # type: ignore[no-untyped-def]
    use_home(monkeypatch, served_home)
    reports, port = tmp_path / "soak", soak.free_port()
    code = soak.main(["--duration", "20", "--rate", "20", "--users", "2", "--warmup", "4", "--sample-seconds", "1",
                      "--interval", "5", "--port", str(port), "--reports", str(reports)])
    out = capsys.readouterr().out

    rows = soak.read_history(reports / "locust_stats_history.csv")
    samples = list(csv.DictReader((reports / "memory.csv").open()))
    result = soak.summarize(rows, [soak.MemorySample(float(s["timestamp"]), int(s["rss_bytes"])) for s in samples], 4)
    slices = soak.intervals(rows, [], 5)
    assert code == (0 if soak.met(result, slices) else 1), out  # the exit code is the targets' verdict
    assert result.failures == 0, out  # the key works and the rate limit is lifted
    assert 200 < result.requests < 20 * 20 * 1.5, out  # a steady ~20 req/s, not as fast as it can go
    assert len(samples) >= 15 and result.rss_start_mb > 100  # BentoML plus torch: hundreds of MiB, sampled each s
    assert "Soak: per interval" in out and "memory growth" in out and "error rate" in out and "p99 / p95" in out
    assert (reports / "soak.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (reports / "report.html").exists()
    assert not listening(port)  # the service is stopped
