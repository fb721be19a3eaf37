"""Answers of chapter 2, "Global attention layers" (exercises 2.1 to 2.4)."""

from __future__ import annotations

import torch

from ...config import Gemma4Config
from ..accounting import kv_cache_layer_bytes
from ..exercises import Exact
from ..receptive_field import config_reach, hypothetical_reaches


def layers_31b_seeing_first_token() -> int:
    """Of the 31B's layers, how many outputs at the last position of a
    256K context can draw on the first token."""
    c = Gemma4Config.from_preset("31b")
    reach = config_reach(c)  # reach[d]: after d layers
    return sum(r >= 262_143 for r in reach[1:])


def reach_12b_w512_globals_off() -> int:
    config = Gemma4Config.from_preset("12b", sliding_window=512)
    return hypothetical_reaches(config)["globals off"]


def values_only_31b_tie() -> int:
    """The context at which the 31B's global layers, caching values only,
    hold as many bytes as its sliding layers (which cache keys and values
    for their window)."""
    c = Gemma4Config.from_preset("31b")

    def split(n: int) -> tuple[int, int]:
        per_layer = kv_cache_layer_bytes(c, n)
        sliding = sum(per_layer[i] for i in c.sliding_layers)
        values = sum(per_layer[i] for i in c.global_layers) // 2
        return sliding, values

    n = c.sliding_window
    sliding, values = split(n)
    per_token = split(n + 1)[1] - values
    tie, rest = divmod(sliding - values, per_token)
    if rest:
        raise ValueError("no context gives an exact tie")
    return n + tie


def rope_rotate(
    x: torch.Tensor, position: int, theta: float, fraction: float
) -> torch.Tensor:
    """A solution of 2.4: rotate-half pairs, the first ones rotating."""
    half = x.shape[-1] // 2
    rotated = int(fraction * half)
    j = torch.arange(half, dtype=torch.float64)
    freqs = torch.where(
        j < rotated, theta ** (-2 * j / x.shape[-1]), torch.zeros(half)
    )
    cos, sin = (position * freqs).cos(), (position * freqs).sin()
    a, b = x[:half].double(), x[half:].double()
    return torch.cat([a * cos - b * sin, b * cos + a * sin])


ANSWERS = {
    "02.1": (layers_31b_seeing_first_token, Exact()),
    "02.2": (reach_12b_w512_globals_off, Exact()),
    "02.3": (values_only_31b_tie, Exact()),
    "02.4": (lambda: rope_rotate, Exact()),
}
