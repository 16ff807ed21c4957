"""Canary routing: a request id always lands on the same model for a given traffic split."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence


def bucket_of(request_id: str) -> float:
    """A stable position in [0, 100) for the request id."""
    digest = hashlib.blake2b(request_id.encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100.0


def route(request_id: str, split: Sequence[tuple[str, float]]) -> str:
    """The version whose share of [0, 100) holds the request's bucket; split = [(version, percent), ...].

    Shares are taken in the given order (canary first, production last takes the remainder).
    """
    if not split:
        raise LookupError("no model is loaded")
    position, edge = bucket_of(request_id), 0.0
    for version, percent in split:
        edge += percent
        if position < edge:
            return version
    return split[-1][0]
