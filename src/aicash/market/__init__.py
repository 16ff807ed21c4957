"""Market data: OHLCV candles, their validation, storage, samples and synthetic generation."""
