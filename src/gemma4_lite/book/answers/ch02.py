"""Answers of "Global attention layers" (exercises 02.1 to 02.4)."""

from __future__ import annotations

import torch

from ...accounting import kv_cache_layer_bytes
from ...config import Gemma4Config
from ..exercises import Exact
from ..receptive_field import hypothetical_reaches, layers_to_span


def layers_to_span_256k() -> int:
    return layers_to_span(262_144, 1024)


def reach_12b_w512_globals_off() -> int:
    config = Gemma4Config.from_preset("12b", sliding_window=512)
    return hypothetical_reaches(config)["globals off"]


def values_only_31b_256k() -> int:
    c = Gemma4Config.from_preset("31b")
    return kv_cache_layer_bytes(c, 262_144)[c.global_layers[0]] // 2


def inv_freq(head_dim: int, theta: float, fraction: float) -> torch.Tensor:
    """A solution of 02.4."""
    pairs = head_dim // 2
    rotated = int(fraction * head_dim // 2)
    j = torch.arange(pairs, dtype=torch.float64)
    freqs = theta ** (-2 * j / head_dim)
    return torch.where(j < rotated, freqs, torch.zeros_like(freqs)).float()


ANSWERS = {
    "02.1": (layers_to_span_256k, Exact()),
    "02.2": (reach_12b_w512_globals_off, Exact()),
    "02.3": (values_only_31b_256k, Exact()),
    "02.4": (lambda: inv_freq, Exact()),
}
