"""How old the served features are: a series is stale when its latest bar is older than MAX_FEATURE_AGE_BARS bars of
its timeframe plus FEATURE_AGE_GRACE_SECONDS.

Staleness is always judged at answer time from the bar's timestamp (`features_as_of`), never stored, so neither the
answer cache nor the feature reader's short cache can hide an age that keeps growing. The bar length comes from
`aicash.market.candles.TIMEFRAMES`, the platform's one table of timeframes.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import UTC, datetime

from aicash.market.candles import TIMEFRAMES, check_timeframe

RETRY_AFTER_SECONDS = 60  # a refused client retries after this; new bars arrive when the next materialization runs


@dataclass(frozen=True)
class FeatureAgePolicy:
    """The age limit of served features (settings MAX_FEATURE_AGE_BARS, FEATURE_AGE_GRACE_SECONDS,
    REFUSE_STALE_FEATURES)."""

    max_bars: int = 3
    grace_seconds: float = 300.0
    refuse: bool = False

    def limit_seconds(self, timeframe: str) -> float:
        """The oldest a series' latest bar may be, in seconds, before its features are stale."""
        return self.max_bars * TIMEFRAMES[check_timeframe(timeframe)].total_seconds() + self.grace_seconds

    def is_stale(self, timeframe: str, as_of: datetime | None, now: datetime | None = None) -> bool:
        """True when the bar at `as_of` is older than the limit at `now` (exactly at the limit is not stale).
        An unknown bar time (`None`) cannot be vouched for: stale."""
        if as_of is None:
            return True
        return age_seconds(as_of, now) > self.limit_seconds(timeframe)


def age_seconds(as_of: datetime, now: datetime | None = None) -> float:
    """Seconds from `as_of` (a naive time is UTC) to `now` (default: the current time)."""
    as_of = as_of if as_of.tzinfo is not None else as_of.replace(tzinfo=UTC)
    return ((now or datetime.now(UTC)) - as_of).total_seconds()


class StaleFeaturesError(RuntimeError):
    """REFUSE_STALE_FEATURES is on and a requested series' latest bar is older than the limit: the service answers
    503 with Retry-After rather than a signal computed from old data."""

    def __init__(self, symbol: str, timeframe: str, as_of: datetime | None, limit_seconds: float) -> None:
        when = "an unknown time" if as_of is None else as_of.astimezone(UTC).isoformat()
        super().__init__(
            f"stale features for {symbol} {timeframe}: the latest bar is from {when}, older than the limit of "
            f"{limit_seconds:g} s (MAX_FEATURE_AGE_BARS bars of {timeframe} plus FEATURE_AGE_GRACE_SECONDS); "
            "ingest recent candles and run `aicash features materialize`, or retry later"
        )
        self.retry_after = RETRY_AFTER_SECONDS


@dataclass(frozen=True)
class SeriesAge:
    """A series the service has read: its latest bar, age and limit at one moment."""

    symbol: str
    timeframe: str
    as_of: datetime
    age_seconds: float
    limit_seconds: float

    @property
    def stale(self) -> bool:
        return self.age_seconds > self.limit_seconds

    def problem(self) -> str:
        """The `/health` line of a stale series."""
        return (f"stale features: {self.symbol} {self.timeframe} latest bar {self.as_of.isoformat()} is "
                f"{self.age_seconds:.0f} s old (limit {self.limit_seconds:g} s)")


class FeatureAges:
    """The latest bar time of each series the service has read, recorded when its features are read; ages are
    computed when asked (`/health`, `/metrics`), so they keep growing between reads."""

    def __init__(self, policy: FeatureAgePolicy) -> None:
        self.policy = policy
        self._as_of: dict[tuple[str, str], datetime] = {}
        self._lock = threading.Lock()

    def observe(self, symbol: str, timeframe: str, as_of: datetime | None) -> None:
        if as_of is not None:
            with self._lock:
                self._as_of[(symbol, timeframe)] = as_of

    def current(self, now: datetime | None = None) -> list[SeriesAge]:
        now = now or datetime.now(UTC)
        with self._lock:
            seen = sorted(self._as_of.items())
        return [SeriesAge(symbol, tf, as_of, age_seconds(as_of, now), self.policy.limit_seconds(tf))
                for (symbol, tf), as_of in seen]

    def problems(self, now: datetime | None = None) -> list[str]:
        return [s.problem() for s in self.current(now) if s.stale]
