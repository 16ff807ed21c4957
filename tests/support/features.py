"""The feature-store tests' synthetic market: how many bars, how many of them ingested at first."""

BARS = 320
FIRST_BARS = 300  # ingested at first; the last 20 arrive later in the incremental tests
