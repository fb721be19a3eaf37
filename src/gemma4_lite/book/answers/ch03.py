"""Answers of "The evolution from Gemma 3" (exercises 03.1 to 03.3)."""

from __future__ import annotations

from .. import lineage
from ..exercises import Decimals, Exact

GIB = 2**30


def gemma3_12b_gib_128k() -> float:
    model = lineage.LINEAGE["Gemma 3 12B"]
    return lineage.kv_cache_bytes(model, 131_072) / GIB


def smallest_window_60_layers() -> int:
    window = 2
    while lineage.sliding_reach(60, window) < 262_143:
        window += 1
    return window


def context_where_31b_global_share_reaches_90() -> int:
    model = lineage.LINEAGE["Gemma 4 31B"]

    def reached(n: int) -> bool:
        split = lineage.kv_cache_split(model, n)
        return split["global"] >= 9 * split["sliding"]

    low, high = 1, model.max_context  # reached(high) holds
    while low < high:
        middle = (low + high) // 2
        if reached(middle):
            high = middle
        else:
            low = middle + 1
    return low


ANSWERS = {
    "03.1": (gemma3_12b_gib_128k, Decimals(2)),
    "03.2": (smallest_window_60_layers, Exact()),
    "03.3": (context_where_31b_global_share_reaches_90, Exact()),
}
