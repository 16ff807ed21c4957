"""The service's reads of the online feature store (Feast), held in memory for a second and refreshed ahead."""

from __future__ import annotations

import logging
import threading
from typing import Any

from aicash.serving.cache import TTLCache
from aicash.serving.runtime import FeatureSnapshot, UnknownSymbolError
from aicash.settings import Settings

log = logging.getLogger("aicash.service")


class OnlineFeatureReader:
    """Reads the online store through `features.online.online_features` (Feast).

    A series' features change once per bar, when materialized; each series is read at most every
    `max_age_seconds`, which takes the store's round trip (~0.3-0.5 ms of CPU) off most requests. A series asked
    for past half its age is read again on a background thread (`holds`), so that under steady traffic its features
    never expire and a request never waits for the store. The Feast store is opened on first use, so a service
    started while the database is down comes up and opens it once the database answers.
    """

    def __init__(self, settings: Settings, max_age_seconds: float = 1.0) -> None:
        self.settings = settings
        self._store: Any = None
        self.connected = False  # the store and its database answered at least once since start
        self.recent: TTLCache[FeatureSnapshot] = TTLCache(max_age_seconds)
        self._refreshing: set[str] = set()
        self._lock = threading.Lock()
        self._read_lock = threading.Lock()  # one read of the store at a time: a request's and a refresh's

    @property
    def store(self) -> Any:
        if self._store is None:
            from features.store import get_store

            self._store = get_store(self.settings)
        return self._store

    def reachable(self) -> bool:
        """Whether the store has answered since start; if not yet, try now (open it and read through it: the
        registry and the online store, in PostgreSQL, or in S3 and Redis with FEAST_ONLINE_STORE=redis)."""
        if not self.connected:
            from features.online import probe

            try:
                probe(self.store)
            except Exception as exc:  # the store is down: stay not ready, try again at the next probe
                log.warning("online feature store not reachable yet: %s", type(exc).__name__)
                return False
            self.connected = True
        return True

    def holds(self, symbol: str, timeframe: str) -> bool:
        """Whether the series' features are held and will still be for a tenth of a second, so that reading them
        takes no round trip to the store. Past half their age, a background read of the series starts (one at a
        time per series); if it fails (the store is down), they expire and the next read meets the error."""
        key = f"{symbol}|{timeframe}"
        age, ttl = self.recent.age(key), self.recent.ttl
        if age is None or age > ttl - min(0.1, ttl / 2):
            return False
        if age > ttl / 2:
            self._refresh_ahead(symbol, timeframe, key)
        return True

    def __call__(self, symbol: str, timeframe: str) -> FeatureSnapshot:
        key = f"{symbol}|{timeframe}"
        if (snapshot := self.recent.get(key)) is not None:
            return snapshot
        with self._read_lock:
            if (snapshot := self.recent.get(key)) is not None:  # read meanwhile by a refresh
                return snapshot
            return self._read(symbol, timeframe, key)

    def _read(self, symbol: str, timeframe: str, key: str) -> FeatureSnapshot:
        from features.online import NoOnlineFeaturesError, online_features

        try:
            found = online_features(self.store, symbol, timeframe)
        except NoOnlineFeaturesError as exc:
            raise UnknownSymbolError(str(exc)) from None
        self.connected = True
        snapshot = FeatureSnapshot(indicators=found.indicators, window=found.window,
                                   event_timestamp=found.event_timestamp)
        self.recent.put(key, snapshot)
        return snapshot

    def _refresh_ahead(self, symbol: str, timeframe: str, key: str) -> None:
        with self._lock:
            if key in self._refreshing:
                return
            self._refreshing.add(key)
        threading.Thread(target=self._refresh, args=(symbol, timeframe, key), name="feature-refresh",
                         daemon=True).start()

    def _refresh(self, symbol: str, timeframe: str, key: str) -> None:
        try:
            with self._read_lock:
                self._read(symbol, timeframe, key)
        except Exception as exc:  # the held features expire; the request that then reads meets (and reports) it
            log.debug("background read of %s failed: %s", key, exc)
        finally:
            with self._lock:
                self._refreshing.discard(key)
