"""Answers of chapter 1, "Sliding-window layers" (exercises 1.1 to 1.4)."""

from __future__ import annotations

import torch

from ...config import Gemma4Config
from ..accounting import kv_cache_layer_bytes
from ..exercises import Exact
from ..receptive_field import sliding_path_reach
from ..sliding_window import chunk_coverage


def bytes_12b_200k() -> int:
    """The 12B's whole KV cache at 200,000 tokens (bf16, batch 1): the
    sliding layers' full windows plus the global layers' every token."""
    c = Gemma4Config.from_preset("12b")
    return sum(kv_cache_layer_bytes(c, 200_000))


def e4b_globals_off_reach_unshared() -> int:
    """E4B without KV sharing: the reach of the sliding path with the
    global layers' attention switched off."""
    c = Gemma4Config.from_preset("e4b").replace(num_kv_shared_layers=0)
    return sliding_path_reach(c)


def lost_pairs() -> int:
    needed, seen = chunk_coverage(8, start=6, length=4, naive=True)
    return int((needed & ~seen).sum())


def ring_update(
    ring: torch.Tensor, new: torch.Tensor, start: int
) -> torch.Tensor:
    """A solution of 1.4: attend to the old ring, oldest position first,
    plus the chunk, then keep the chunk's last W keys in their slots."""
    window, length = ring.shape[0], new.shape[0]
    old = [p % window for p in range(start - min(start, window), start)]
    attended = torch.cat([ring[old], new])
    for p in range(max(start, start + length - window), start + length):
        ring[p % window] = new[p - start]
    return attended


ANSWERS = {
    "01.1": (bytes_12b_200k, Exact()),
    "01.2": (e4b_globals_off_reach_unshared, Exact()),
    "01.3": (lost_pairs, Exact()),
    "01.4": (lambda: ring_update, Exact()),
}
