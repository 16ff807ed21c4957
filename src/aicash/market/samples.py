"""Real market data samples shipped by installed packages, read in place (never copied into the repo)."""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # pandas only when a sample is loaded: listing them stays fast
    import pandas as pd


@dataclass(frozen=True)
class Sample:
    """A candle file inside an installed package."""

    package: str
    resource: str
    symbol: str
    timeframe: str
    description: str


SAMPLES: dict[str, Sample] = {
    "eurusd-1h": Sample(
        "backtesting.test", "EURUSD.csv", "EURUSD", "1h", "EURUSD hourly candles, 5,000 bars, 2017-2018"
    ),
}


class UnknownSampleError(ValueError):
    """No sample of that name."""


def get_sample(name: str) -> Sample:
    if name not in SAMPLES:
        raise UnknownSampleError(f"--sample {name!r} is unknown: use one of {', '.join(SAMPLES)}")
    return SAMPLES[name]


def load_sample(name: str) -> pd.DataFrame:
    """The sample's validated candles (ts, open, high, low, close, volume)."""
    import pandas as pd

    from aicash.market.candles import validate_candles

    sample = get_sample(name)
    with resources.files(sample.package).joinpath(sample.resource).open("r") as fh:
        raw = pd.read_csv(fh, dtype=str)
    raw.columns = ["timestamp", *(str(c).strip().lower() for c in raw.columns[1:])]
    return validate_candles(raw, 2, f"{sample.package}/{sample.resource}")
