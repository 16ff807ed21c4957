"""Process metrics of every worker of the service (CPU, resident memory, open files, GC) on BentoML's /metrics.

prometheus-client's `ProcessCollector` and `GCCollector` describe the process that answers a scrape, and custom
collectors do not work in its multiprocess mode (BentoML's: one metrics file per worker, merged at scrape time).
So each worker samples both collectors for itself every few seconds and writes their samples, under the same names
and labels, as multiprocess gauges in `liveall` mode: one series per live worker, labelled `pid`, and a worker that
exits (BentoML marks it dead) drops out instead of leaving a stale series.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping

from prometheus_client import CollectorRegistry, Gauge
from prometheus_client.gc_collector import GCCollector
from prometheus_client.process_collector import ProcessCollector

INTERVAL_SECONDS = 5.0


class WorkerProcessMetrics:
    """Mirrors this process's `process_*` and `python_gc_*` samples into `liveall` gauges, now and every
    `interval` seconds on a daemon thread, until `stop()`; `readings` are more per-worker gauges sampled with them
    (name -> (help, read))."""

    def __init__(self, interval: float = INTERVAL_SECONDS, *, start: bool = True,
                 readings: Mapping[str, tuple[str, Callable[[], float]]] | None = None) -> None:
        self.interval = interval
        self._readings = dict(readings or {})
        own = CollectorRegistry()  # the collectors register somewhere; they are read only here
        self._collectors = (ProcessCollector(registry=own), GCCollector(registry=own))
        self._gauges: dict[str, Gauge] = {}
        self._stopped = threading.Event()
        self.sample()
        self._thread = threading.Thread(target=self._run, name="aicash-process-metrics", daemon=True)
        if start:
            self._thread.start()

    def sample(self) -> None:
        """Read both collectors once and set the gauges."""
        for collector in self._collectors:
            for family in collector.collect():
                for sample in family.samples:
                    gauge = self._gauge(sample.name, family.documentation, tuple(sample.labels))
                    (gauge.labels(**sample.labels) if sample.labels else gauge).set(sample.value)
        for name, (documentation, read) in self._readings.items():
            self._gauge(name, documentation, ()).set(read())

    def stop(self) -> None:
        self._stopped.set()
        if self._thread.is_alive():
            self._thread.join(timeout=self.interval + 1)

    def _gauge(self, name: str, documentation: str, labels: tuple[str, ...]) -> Gauge:
        if name not in self._gauges:
            self._gauges[name] = Gauge(name, documentation, labels, registry=None, multiprocess_mode="liveall")
        return self._gauges[name]

    def _run(self) -> None:
        while not self._stopped.wait(self.interval):
            self.sample()
