"""aicash's Feast feature repository (`repo.py`, `feature_store.*.yaml`) and the code that drives it."""
