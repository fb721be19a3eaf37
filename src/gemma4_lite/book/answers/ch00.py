"""Answers of "Gemma 4 at a glance" (exercises 00.1 to 00.4)."""

from __future__ import annotations

import torch

from ...accounting import count_parameters
from ...config import Gemma4Config
from ..exercises import Exact, SignificantDigits
from ..overview import batch_where_cache_overtakes_weights
from ..plots.overview import kv_split


def own_kv_layers_e4b() -> int:
    c = Gemma4Config.from_preset("e4b")
    return sum(not c.is_kv_shared(i) for i in range(c.num_hidden_layers))


def active_fraction_26b() -> float:
    counts = count_parameters(Gemma4Config.from_preset("26b-a4b"))
    return counts["active_per_token"] / counts["total"]


def e2b_global_overtakes_sliding() -> int:
    c = Gemma4Config.from_preset("e2b")
    n = 1
    while True:
        split = kv_split(c, n)
        if split["global"] > split["sliding"]:
            return n
        n += 1


def batch_12b_256k() -> int:
    c = Gemma4Config.from_preset("12b")
    return batch_where_cache_overtakes_weights(c, 262_144, torch.bfloat16)


ANSWERS = {
    "00.1": (own_kv_layers_e4b, Exact()),
    "00.2": (active_fraction_26b, SignificantDigits(2)),
    "00.3": (e2b_global_overtakes_sliding, Exact()),
    "00.4": (batch_12b_256k, Exact()),
}
