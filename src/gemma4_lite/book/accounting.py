"""Parameters and KV-cache bytes computed from a config alone, without
allocating any weights. Running a model never needs them, so they live with
the book: they are the arithmetic its chapters teach. "Gemma 4 at a glance"
derives and shows them (checked there against a model's tensors and cache),
"Global attention layers" shows :func:`kv_cache_layer_bytes`, and every
chapter but "Router design" sizes models or caches with them.

Of the five released models' published totals (model card), three count
more than this text decoder. E2B 5.1B and E4B 8B *include the vision and
audio towers*; the text decoders alone are about 4.63B and 7.46B, most of it
the per-layer embedding table (2.35B / 2.82B) that can live in flash rather
than accelerator memory. The 12B Unified's 11.95B includes its vision and
audio embedders; its text decoder is 11.91B. 31B (30.7B) and 26B-A4B (25.2B
total, 3.8B active) are text-decoder figures and are reproduced here exactly.
"""

from __future__ import annotations

from collections import Counter

import torch

from ..config import Gemma4Config


def layer_parameters(config: Gemma4Config, layer: int) -> dict[str, int]:
    """Parameters of one decoder layer, by part."""
    h, d = config.hidden_size, config.head_dim_for(layer)
    heads, kv_heads = config.num_attention_heads, config.kv_heads_for(layer)
    attention = 2 * h * heads * d + d  # q_proj, o_proj, q_norm
    if not config.is_kv_shared(layer):
        # k_proj, k_norm (the V-norm has no gain)
        attention += h * kv_heads * d + d
        if not config.k_eq_v_for(layer):
            attention += h * kv_heads * d  # v_proj
    parts = {
        "attention": attention,
        "mlp": 3 * h * config.mlp_width_for(layer),
        "norms": 4 * h,
        "per_layer_input": 0,
        "router": 0,
        "experts": 0,
    }
    if config.hidden_size_per_layer_input:
        parts["per_layer_input"] = (
            2 * h * config.hidden_size_per_layer_input + h
        )
    if config.enable_moe_block:
        e = config.num_experts
        parts["router"] = e * h + h + e
        parts["experts"] = 3 * e * config.moe_intermediate_size * h
        parts["norms"] += 3 * h
    return parts


def count_parameters(config: Gemma4Config) -> dict[str, int]:
    """Parameter counts of the text decoder (the tied head counted once;
    buffers such as ``layer_scalar`` are not parameters).

    Keys: ``total``; ``embedding`` (token table);
    ``per_layer_embedding_table`` (PLE lookup table, 0 without PLE);
    ``per_layer_embedding_other`` (PLE projection and norm); ``attention``,
    ``mlp``, ``norms``, ``per_layer_input``, ``router``, ``experts`` summed
    over layers; ``active_per_token`` (what one token touches: only top-k of
    the experts); ``total_without_embeddings``;
    ``total_without_per_layer_table``.
    """
    totals = Counter()  # by part, summed over layers
    for layer in range(config.num_hidden_layers):
        totals.update(layer_parameters(config, layer))
    h, p = config.hidden_size, config.hidden_size_per_layer_input
    layers = config.num_hidden_layers
    embedding = config.vocab_size * h
    ple_table = config.vocab_size_per_layer_input * layers * p if p else 0
    ple_other = h * layers * p + p if p else 0
    totals["norms"] += h  # final norm
    total = embedding + ple_table + ple_other + sum(totals.values())
    active = total
    if config.enable_moe_block:
        idle = config.num_experts - config.top_k_experts
        active -= totals["experts"] * idle // config.num_experts
    return {
        "total": total,
        "embedding": embedding,
        "per_layer_embedding_table": ple_table,
        "per_layer_embedding_other": ple_other,
        **totals,
        "active_per_token": active,
        "total_without_embeddings": total - embedding - ple_table,
        "total_without_per_layer_table": total - ple_table,
    }


def dtype_bytes(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def kv_cache_layer_bytes(
    config: Gemma4Config,
    context_length: int,
    dtype: torch.dtype = torch.bfloat16,
    batch_size: int = 1,
) -> list[int]:
    """Bytes of keys plus values each layer stores after ``context_length``
    tokens.

    Sliding layers keep at most the window; global layers keep everything
    with their own head size and KV heads; KV-shared layers keep nothing. K=V
    layers still cache both tensors (they differ: keys get k_norm and RoPE,
    values only the gain-free norm), as transformers and this package do.
    """
    if context_length < 0:
        raise ValueError("context_length must be >= 0")
    size = dtype_bytes(dtype)
    out = []
    for layer in range(config.num_hidden_layers):
        if config.is_kv_shared(layer):
            out.append(0)
            continue
        tokens = context_length
        if config.is_sliding(layer):
            tokens = min(tokens, config.sliding_window)
        width = config.kv_heads_for(layer) * config.head_dim_for(layer)
        out.append(2 * batch_size * tokens * width * size)
    return out


def kv_cache_bytes(
    config: Gemma4Config,
    context_length: int,
    dtype: torch.dtype = torch.bfloat16,
    batch_size: int = 1,
) -> int:
    """Exact KV-cache bytes for ``context_length`` tokens (see
    :func:`kv_cache_layer_bytes`)."""
    return sum(kv_cache_layer_bytes(config, context_length, dtype, batch_size))
