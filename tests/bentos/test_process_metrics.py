"""Process metrics in BentoML's multiprocess mode: two real worker processes write theirs into one metrics folder,
and the merged scrape (prometheus-client's MultiProcessCollector, as BentoML's /metrics does) has one series per
live worker, labelled by pid; a worker marked dead drops out."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead
from prometheus_client.parser import text_string_to_metric_families

WORKER = """
import os
from bentos.process_metrics import WorkerProcessMetrics
blob = bytearray({size})  # a worker with {size} more bytes resident
WorkerProcessMetrics(start=False).sample()
print(os.getpid())
"""


def _worker(folder: Path, size: int) -> int:
    env = os.environ | {"PROMETHEUS_MULTIPROC_DIR": str(folder)}
    done = subprocess.run([sys.executable, "-c", WORKER.format(size=size)], env=env, capture_output=True,  # noqa: S603
                          text=True, timeout=60, check=True)
    return int(done.stdout.strip())


def _scrape(folder: Path) -> dict[str, dict[str, float]]:
    """metric sample name -> {pid: value} (generation 0 for the GC series)."""
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=str(folder))
    out: dict[str, dict[str, float]] = {}
    for family in text_string_to_metric_families(generate_latest(registry).decode()):
        for sample in family.samples:
            if sample.labels.get("generation", "0") == "0":
                out.setdefault(sample.name, {})[sample.labels["pid"]] = sample.value
    return out


def test_each_live_worker_has_its_own_process_series(tmp_path: Path) -> None:
    small, big = _worker(tmp_path, 1), _worker(tmp_path, 200_000_000)
    scraped = _scrape(tmp_path)
    rss = scraped["process_resident_memory_bytes"]
    assert set(rss) == {str(small), str(big)}
    assert rss[str(big)] - rss[str(small)] > 150_000_000  # each worker's own memory, not a sum or a copy
    for name in ("process_cpu_seconds_total", "process_open_fds", "process_max_fds", "process_start_time_seconds",
                 "python_gc_collections_total", "python_gc_objects_collected_total"):
        assert set(scraped[name]) == {str(small), str(big)}, name
    assert all(value > 0 for value in scraped["process_open_fds"].values())

    mark_process_dead(big, path=str(tmp_path))  # what BentoML does when a worker exits
    assert set(_scrape(tmp_path)["process_resident_memory_bytes"]) == {str(small)}
