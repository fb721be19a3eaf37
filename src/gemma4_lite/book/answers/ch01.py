"""Answers of "Sliding-window layers" (exercises 01.1 to 01.4)."""

from __future__ import annotations

import torch

from ...accounting import kv_cache_layer_bytes
from ...config import Gemma4Config
from ..exercises import Exact
from ..receptive_field import sliding_only_reach
from ..sliding_window import chunk_coverage, longest_run


def bytes_26b_128k() -> list[int]:
    c = Gemma4Config.from_preset("26b-a4b")
    per_layer = kv_cache_layer_bytes(c, 131_072)
    return [per_layer[c.sliding_layers[0]], per_layer[c.global_layers[0]]]


def e2b_run_reach_at_1024() -> int:
    run = longest_run(Gemma4Config.from_preset("e2b"))
    return int(sliding_only_reach(run, 1024)[-1])


def lost_pairs() -> int:
    needed, seen = chunk_coverage(8, start=6, length=4, naive=True)
    return int((needed & ~seen).sum())


def ring_update(
    ring: torch.Tensor, new: torch.Tensor, start: int
) -> torch.Tensor:
    """A solution of 01.4: attend to the old ring plus the chunk, then keep
    the chunk's last W keys in their slots."""
    window, length = ring.shape[0], new.shape[0]
    attended = torch.cat([ring[: min(start, window)], new])
    for p in range(max(start, start + length - window), start + length):
        ring[p % window] = new[p - start]
    return attended


ANSWERS = {
    "01.1": (bytes_26b_128k, Exact()),
    "01.2": (e2b_run_reach_at_1024, Exact()),
    "01.3": (lost_pairs, Exact()),
    "01.4": (lambda: ring_update, Exact()),
}
