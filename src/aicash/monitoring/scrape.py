"""The inference service's Prometheus `/metrics`: fetch, parse (`prometheus_client.parser`), and estimate a
quantile from histogram buckets the way PromQL's `histogram_quantile` does."""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import urlparse

from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families

LATENCY_METRIC = "aicash_request_latency_seconds"
PREDICTIONS_METRIC = "aicash_predictions_total"
CACHE_HITS_METRIC = "aicash_prediction_cache_hits_total"
REJECTED_METRIC = "aicash_rejected_requests_total"
FEATURE_AGE_METRIC = "aicash_feature_age_seconds"
FEATURE_AGE_LIMIT_METRIC = "aicash_feature_age_limit_seconds"


class ScrapeError(RuntimeError):
    """A metrics endpoint could not be read or parsed."""


class BadMetricsUrlError(ValueError):
    """--metrics-url is not an http(s) URL."""


def check_url(url: str) -> str:
    parsed = urlparse(url)
    if parsed.scheme not in {"http", "https"} or not parsed.netloc:
        raise BadMetricsUrlError(f"--metrics-url {url!r} is not an http(s) URL: use e.g. http://127.0.0.1:3000/metrics")
    return url


def fetch(url: str, timeout: float = 10.0) -> str:
    """The exposition text at `url`."""
    check_url(url)
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (scheme checked above)
            return response.read().decode("utf-8")
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise ScrapeError(f"could not read {url}: {getattr(exc, 'reason', exc)}") from None


@dataclass(frozen=True)
class Histogram:
    """Cumulative bucket counts by upper bound (ascending, +Inf last), summed over the scraped targets."""

    buckets: tuple[tuple[float, float], ...]

    @property
    def count(self) -> float:
        return self.buckets[-1][1] if self.buckets else 0.0

    def minus(self, earlier: Histogram) -> Histogram:
        """The observations between two scrapes (a restarted target resets its counters: then take it whole)."""
        before = dict(earlier.buckets)
        diff = tuple((le, count - before.get(le, 0.0)) for le, count in self.buckets)
        return self if any(c < 0 for _, c in diff) else Histogram(diff)

    def quantile(self, q: float) -> float:
        """PromQL's estimate: linear inside the bucket; the highest finite bound when it falls in +Inf; NaN empty."""
        if not self.buckets or self.count <= 0:
            return math.nan
        rank = q * self.count
        lower_bound, lower_count = 0.0, 0.0
        for bound, count in self.buckets:
            if count >= rank:
                if math.isinf(bound):
                    return lower_bound
                if count == lower_count:
                    return bound
                return lower_bound + (bound - lower_bound) * (rank - lower_count) / (count - lower_count)
            lower_bound, lower_count = bound, count
        return lower_bound


def _families(text: str) -> list[Metric]:
    """The metric families of one scrape, or `ScrapeError` when it is not Prometheus's text format."""
    try:
        return list(text_string_to_metric_families(text))
    except ValueError as exc:
        raise ScrapeError(f"not a Prometheus text exposition: {exc}") from None


def histogram(texts: Iterable[str], name: str, labels: Mapping[str, str]) -> Histogram:
    """Buckets of histogram `name` whose samples carry `labels`, summed over every text (like `sum by (le)`)."""
    totals: dict[float, float] = defaultdict(float)
    for text in texts:
        for family in _families(text):
            if family.name != name:
                continue
            for sample in family.samples:
                if sample.name != f"{name}_bucket":
                    continue
                if all(sample.labels.get(k) == v for k, v in labels.items()):
                    totals[float(sample.labels["le"])] += float(sample.value)
    return Histogram(tuple(sorted(totals.items())))


@dataclass(frozen=True)
class FeatureAge:
    """A series' feature age and its limit as a service reported them (the oldest over the scraped replicas)."""

    symbol: str
    timeframe: str
    age_seconds: float
    limit_seconds: float


def feature_ages(texts: Iterable[str]) -> tuple[FeatureAge, ...]:
    """`aicash_feature_age_seconds` with its limit per (symbol, timeframe), the largest age over every text."""
    ages: dict[tuple[str, str], float] = {}
    limits: dict[tuple[str, str], float] = {}
    for text in texts:
        for family in _families(text):
            if family.name not in {FEATURE_AGE_METRIC, FEATURE_AGE_LIMIT_METRIC}:
                continue
            into = ages if family.name == FEATURE_AGE_METRIC else limits
            for sample in family.samples:
                key = (sample.labels.get("symbol", ""), sample.labels.get("timeframe", ""))
                into[key] = max(into.get(key, -math.inf), float(sample.value))
    return tuple(FeatureAge(s, tf, age, limits[(s, tf)]) for (s, tf), age in sorted(ages.items())
                 if (s, tf) in limits)
