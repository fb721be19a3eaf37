"""Answers of chapter 7, "Architectural choices"
(``notebooks/07_architectural_choices.ipynb``)."""

from __future__ import annotations

from typing import Callable

from ...config import Gemma4Config
from ..accounting import count_parameters, kv_cache_bytes, layer_parameters
from ..exercises import Exact, SignificantDigits

# The three models the chapter compares (preset keys and display names)
MODELS = {"12b": "12B", "26b-a4b": "26B-A4B", "31b": "31B"}


def two_matrix_31b_billions() -> float:
    """Total parameters of the 31B, in billions, if each of its gated
    three-matrix MLPs were a classic two-matrix MLP of the same width."""
    c = Gemma4Config.from_preset("31b")
    one_matrix = c.hidden_size * c.intermediate_size
    total = count_parameters(c)["total"] - c.num_hidden_layers * one_matrix
    return total / 1e9


def cache_bytes_12b_32k() -> int:
    """The 12B's bf16 KV cache for one sequence of 32,768 tokens."""
    return kv_cache_bytes(Gemma4Config.from_preset("12b"), 32_768)


def int4_context_26b_16gb() -> int:
    """The longest context, a multiple of 1,024 tokens, for which the
    26B-A4B's int4 weights (half a byte per parameter, scales left out)
    and the bf16 cache of one sequence fit in 16e9 bytes."""
    c = Gemma4Config.from_preset("26b-a4b")
    weights = count_parameters(c)["total"] // 2
    best = 0
    for context in range(1024, c.max_position_embeddings + 1, 1024):
        if weights + kv_cache_bytes(c, context) > 16e9:
            break
        best = context
    return best


def validate_layer_total(fn: Callable[[Gemma4Config, int], int]) -> bool | str:
    """Exercise 7.3: ``fn(config, layer)`` must give the parameter count of
    every layer of the 12B, the 26B-A4B and the 31B. Returns True, or where
    the first difference is (model, layer, kind, by how much)."""
    for key, name in MODELS.items():
        config = Gemma4Config.from_preset(key)
        for layer in range(config.num_hidden_layers):
            want = sum(layer_parameters(config, layer).values())
            got = fn(config, layer)
            if got != want:
                kind = "sliding" if config.is_sliding(layer) else "global"
                return (
                    f"{name} layer {layer} ({kind}): yours {got:,}, the "
                    f"package {want:,} (off by {got - want:+,})"
                    if isinstance(got, int)
                    else f"{name} layer {layer}: returned {got!r}, not an int"
                )
    return True


ANSWERS = {
    "07.1": (two_matrix_31b_billions, SignificantDigits(3)),
    "07.2": (cache_bytes_12b_32k, Exact()),
    # 07.3 is a function the reader writes, checked with validate=
    "07.4": (int4_context_26b_16gb, Exact()),
}
