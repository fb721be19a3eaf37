"""Answers of chapter 10, "Scaling decisions and the edge models"
(``notebooks/10_scaling_decisions.ipynb``)."""

from __future__ import annotations

from typing import Callable

from ...config import Gemma4Config
from ..exercises import Decimals, Exact
from ..scaling import GB, kv_bytes, kv_saved_bytes


def _e2b_cache_growth_per_token() -> int:
    """Bytes the E2B's bf16 cache grows by per extra token, past the
    window: only the global layers that keep their own cache grow."""
    e2b = Gemma4Config.from_preset("e2b")
    return kv_bytes(e2b, 65_537) - kv_bytes(e2b, 65_536)


def _e4b_kv_saved_gb() -> float:
    e4b = Gemma4Config.from_preset("e4b")
    return kv_saved_bytes(e4b, 131_072, bits=16) / GB


ANSWERS = {
    "10.1": (_e2b_cache_growth_per_token, Exact()),
    # 10.2 is a function the reader writes, checked with validate=
    "10.3": (_e4b_kv_saved_gb, Decimals(2)),
}


def _kv_sharing_cases() -> dict[str, Gemma4Config]:
    """The released edge models and variants that move the shared block,
    so that a rule fitted to the two released layouts does not pass."""
    e2b = Gemma4Config.from_preset("e2b")
    e4b = Gemma4Config.from_preset("e4b")
    return {
        "E2B": e2b,
        "E4B": e4b,
        "E2B with 8 shared layers": e2b.replace(num_kv_shared_layers=8),
        "E4B with 30 shared layers": e4b.replace(num_kv_shared_layers=30),
        "E2B without sharing": e2b.replace(
            num_kv_shared_layers=0, use_double_wide_mlp=False
        ),
    }


def validate_kv_producer(
    fn: Callable[[Gemma4Config, int], int],
) -> bool | str:
    """Exercise 10.2: ``fn(config, layer)`` must name the layer whose cache
    ``layer`` reads (itself when it computes its own keys and values), as
    :meth:`gemma4_lite.config.Gemma4Config.kv_producer` does, on the edge
    models and on variants with more, fewer or no shared layers. Returns
    True or the first model and layer where ``fn`` differs."""
    for name, config in _kv_sharing_cases().items():
        for layer in range(config.num_hidden_layers):
            want = config.kv_producer(layer)
            got = fn(config, layer)
            if got != want:
                kind = "sliding" if config.is_sliding(layer) else "global"
                shared = "shared" if config.is_kv_shared(layer) else "own"
                return (
                    f"{name}, layer {layer} ({kind}, {shared} cache): "
                    f"yours says {got!r}, the package {want}"
                )
    return True
