"""Answers of chapter 0, "Gemma 4 at a glance" (exercises 0.1 to 0.4)."""

from __future__ import annotations

from ...config import Gemma4Config
from ..accounting import count_parameters, kv_cache_bytes
from ..exercises import Exact, SignificantDigits
from ..plots.overview import kv_split


def own_kv_layers_e4b() -> int:
    c = Gemma4Config.from_preset("e4b")
    return sum(not c.is_kv_shared(i) for i in range(c.num_hidden_layers))


def strict_active_fraction_26b() -> float:
    """The share of the 26B-A4B's parameters one token uses when the token
    embedding counts as the one row the token reads."""
    c = Gemma4Config.from_preset("26b-a4b")
    counts = count_parameters(c)
    strict = counts["active_per_token"] - counts["embedding"] + c.hidden_size
    return strict / counts["total"]


def e2b_global_overtakes_sliding() -> int:
    c = Gemma4Config.from_preset("e2b")
    n = 1
    while True:
        split = kv_split(c, n)
        if split["global"] > split["sliding"]:
            return n
        n += 1


def bytes_per_new_token_31b() -> int:
    """Bytes (bf16, one sequence) that one more token adds to the 31B's
    cache once the context is longer than the window."""
    c = Gemma4Config.from_preset("31b")
    n = 100_000
    return kv_cache_bytes(c, n + 1) - kv_cache_bytes(c, n)


ANSWERS = {
    "00.1": (own_kv_layers_e4b, Exact()),
    "00.2": (strict_active_fraction_26b, SignificantDigits(2)),
    "00.3": (e2b_global_overtakes_sliding, Exact()),
    "00.4": (bytes_per_new_token_31b, Exact()),
}
