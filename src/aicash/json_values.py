"""Values made ready for a JSON column: what the registry and the experiments store write into PostgreSQL's JSONB."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any


def json_safe(value: Any, refuse: Callable[[Any], Exception]) -> Any:
    """Plain JSON values: mappings with text keys, lists, numbers, text, booleans and None; NaN and infinities become
    None (JSONB refuses them), numpy scalars Python numbers. Anything else raises `refuse(value)`."""
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, refuse) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v, refuse) for v in value]
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise refuse(value)
