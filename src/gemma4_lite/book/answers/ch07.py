"""Answers of chapter 07, "Architectural choices"."""

from __future__ import annotations

from ...accounting import count_parameters, layer_parameters
from ...config import RELEASED, Gemma4Config
from ..exercises import Exact, SignificantDigits


def k_eq_v_parameters_31b() -> int:
    """Parameters the 31B would add with a value projection on its global
    layers."""
    released = Gemma4Config.from_preset("31b")
    with_v = released.replace(attention_k_eq_v=False)
    return (
        count_parameters(with_v)["total"] - count_parameters(released)["total"]
    )


def active_ratio_31b_26b() -> float:
    """Parameters one token uses: 31B over 26B-A4B."""
    dense = count_parameters(Gemma4Config.from_preset("31b"))
    moe = count_parameters(Gemma4Config.from_preset("26b-a4b"))
    return dense["active_per_token"] / moe["active_per_token"]


def stored_ratio_26b_12b() -> float:
    """Parameters stored: 26B-A4B over 12B."""
    moe = count_parameters(Gemma4Config.from_preset("26b-a4b"))
    dense = count_parameters(Gemma4Config.from_preset("12b"))
    return moe["total"] / dense["total"]


def validate_layer_total(fn) -> bool:
    """Exercise 07.3: ``fn(config, layer)`` must give every layer's
    parameter count of every released model."""
    for name in RELEASED:
        config = Gemma4Config.from_preset(name)
        for layer in range(config.num_hidden_layers):
            expected = sum(layer_parameters(config, layer).values())
            if fn(config, layer) != expected:
                return False
    return True


ANSWERS = {
    "07.1": (k_eq_v_parameters_31b, Exact()),
    "07.2": (active_ratio_31b_26b, SignificantDigits(2)),
    # 07.3 is a function the reader writes, checked with validate=
    "07.4": (stored_ratio_26b_12b, SignificantDigits(3)),
}
