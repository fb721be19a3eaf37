"""Summaries for "Gemma 4 at a glance": a flat description of a config, and
the back-of-envelope KV-cache figure the chapter corrects."""

from __future__ import annotations

from typing import Any

import torch

from ..config import Gemma4Config
from .accounting import count_parameters, dtype_bytes, kv_cache_bytes


def describe(config: Gemma4Config) -> dict[str, Any]:
    """A flat summary used by the tables in "Gemma 4 at a glance"."""
    n_global = len(config.global_layers)
    return {
        "layers": config.num_hidden_layers,
        "hidden": config.hidden_size,
        "heads": config.num_attention_heads,
        "kv_heads_sliding": config.num_key_value_heads,
        "kv_heads_global": config.kv_heads_for(config.global_layers[0])
        if n_global
        else None,
        "head_dim_sliding": config.head_dim,
        "head_dim_global": config.global_head_dim,
        "window": config.sliding_window,
        "sliding_to_global": (
            f"{(config.num_hidden_layers - n_global) / max(n_global, 1):.0f}:1"
        ),
        "context": config.max_position_embeddings,
        "k_eq_v": config.attention_k_eq_v,
        "kv_shared_layers": config.num_kv_shared_layers,
        "ple_dim": config.hidden_size_per_layer_input,
        "experts": f"{config.top_k_experts}/{config.num_experts}"
        if config.enable_moe_block
        else "-",
        "rotated_pairs_global": _rotated_pairs(config),
    }


def _rotated_pairs(config: Gemma4Config) -> int | None:
    if config.global_head_dim is None:
        return None
    if config.global_rope_type == "default":
        return config.global_head_dim // 2
    return int(
        config.global_partial_rotary_factor * config.global_head_dim // 2
    )


def naive_kv_cache_bytes(
    config: Gemma4Config,
    context_length: int,
    dtype: torch.dtype = torch.bfloat16,
    batch_size: int = 1,
) -> int:
    """The common back-of-envelope figure: every layer global, with the sliding
    layers' KV heads and head size, no window and no sharing. Off by large
    factors for Gemma 4; kept to show by how much."""
    per_layer = (
        2
        * batch_size
        * context_length
        * config.num_key_value_heads
        * config.head_dim
        * dtype_bytes(dtype)
    )
    return per_layer * config.num_hidden_layers


def weight_bytes(
    config: Gemma4Config, dtype: torch.dtype = torch.bfloat16
) -> int:
    """Bytes of the text decoder's weights (every parameter, the PLE table
    included) stored in ``dtype``."""
    return count_parameters(config)["total"] * dtype_bytes(dtype)


def batch_where_cache_overtakes_weights(
    config: Gemma4Config,
    context_length: int,
    dtype: torch.dtype = torch.bfloat16,
) -> int:
    """The smallest batch of ``context_length``-token sequences whose KV
    cache holds more bytes than the weights (both in ``dtype``)."""
    per_sequence = kv_cache_bytes(config, context_length, dtype)
    return weight_bytes(config, dtype) // per_sequence + 1
