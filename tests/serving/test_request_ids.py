"""Request ids the service makes: time-ordered version 7 UUIDs of the old shape, split by canary routing as before."""

from __future__ import annotations

import re
import time
import uuid

import numpy as np

from aicash.serving.request_ids import new_request_id
from aicash.serving.routing import route


def test_ids_are_32_hex_characters_of_a_version_7_uuid() -> None:
    ids = [new_request_id() for _ in range(1000)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", i) for i in ids) and len(set(ids)) == len(ids)
    parsed = [uuid.UUID(i) for i in ids]
    assert {u.version for u in parsed} == {7} and {u.variant for u in parsed} == {uuid.RFC_4122}
    now_ms = time.time_ns() // 1_000_000
    assert all(abs((u.int >> 80) - now_ms) < 60_000 for u in parsed)  # they start with the time they were made


def test_ids_sort_in_the_order_they_were_made() -> None:
    ids = []
    for _ in range(5):
        ids += [new_request_id() for _ in range(2000)]
        time.sleep(0.002)
    assert sorted(ids) == ids


def test_canary_routing_splits_them_as_it_split_random_ids() -> None:
    """Routing hashes the id, so ids sharing their leading (time) digits still spread over the split."""
    split = [("canary", 10.0), ("production", 90.0)]
    for ids in ([new_request_id() for _ in range(20_000)], [uuid.uuid4().hex for _ in range(20_000)]):
        share = np.mean([route(i, split) == "canary" for i in ids])
        assert 0.09 < share < 0.11

