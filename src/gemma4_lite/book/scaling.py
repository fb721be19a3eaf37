"""Memory budgets, per-layer embeddings read from disk, and cross-layer KV
sharing. Chapter: "Scaling decisions and the edge models".

Everything is computed from the configurations: weights at a given number
of bits per parameter, the KV cache of a context, and for the edge models
the split between what must sit in fast memory and the per-layer table
that can stay in flash.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ..config import Gemma4Config
from .accounting import count_parameters, kv_cache_layer_bytes

GB = 1e9
# Bits per stored parameter of the three precisions the chapter compares
PRECISIONS = {"bf16": 16, "int8": 8, "int4": 4}


def weight_bytes(
    config: Gemma4Config, bits: int, per_layer_table: bool = True
) -> int:
    """Bytes of the decoder's weights at ``bits`` per parameter (scales of
    quantised formats left out); ``per_layer_table=False`` leaves out the
    PLE table, which can stay in flash."""
    counts = count_parameters(config)
    params = counts["total"]
    if not per_layer_table:
        params -= counts["per_layer_embedding_table"]
    return params * bits // 8


def kv_bytes(
    config: Gemma4Config, context: int, bits: int = 16, batch: int = 1
) -> int:
    """KV-cache bytes after ``context`` tokens at ``bits`` per value."""
    per_layer = kv_cache_layer_bytes(
        config, context, torch.bfloat16, batch_size=batch
    )
    return sum(per_layer) * bits // 16


def memory_row(
    config: Gemma4Config,
    weight_bits: int,
    context: int,
    kv_bits: int = 16,
    per_layer_table: bool = True,
) -> dict[str, float]:
    """GB of weights and of cache for one model and one setting."""
    weights = weight_bytes(config, weight_bits, per_layer_table) / GB
    cache = kv_bytes(config, context, kv_bits) / GB
    return {"weights": weights, "cache": cache, "total": weights + cache}


def ple_bytes_per_token(config: Gemma4Config, bits: int = 16) -> int:
    """What one token reads from the PLE table: one row of layers x width
    values, whatever the vocabulary."""
    return (
        config.num_hidden_layers * config.hidden_size_per_layer_input * bits
    ) // 8


def kv_without_sharing(config: Gemma4Config) -> Gemma4Config:
    """The same model with every layer computing its own keys and values
    (and so no double-wide MLP either)."""
    return config.replace(num_kv_shared_layers=0, use_double_wide_mlp=False)


def kv_saved_bytes(config: Gemma4Config, context: int, bits: int = 16) -> int:
    """Cache bytes that cross-layer KV sharing removes after ``context``
    tokens: the same model with every layer caching for itself, minus the
    model as configured."""
    plain = kv_without_sharing(config)
    return kv_bytes(plain, context, bits) - kv_bytes(config, context, bits)


def double_wide_bytes(config: Gemma4Config, bits: int = 16) -> int:
    """Weight bytes that ``use_double_wide_mlp`` adds (the KV-shared layers'
    MLPs at twice the width), at ``bits`` per parameter."""
    narrow = config.replace(use_double_wide_mlp=False)
    extra = count_parameters(config)["mlp"] - count_parameters(narrow)["mlp"]
    return extra * bits // 8


def sharing_break_even(
    config: Gemma4Config, weight_bits: int = 16, kv_bits: int = 16
) -> int | None:
    """The shortest context at which the cache that KV sharing saves
    (one sequence, ``kv_bits``) reaches the weight bytes the double-wide
    MLPs cost (``weight_bits``); ``None`` if the model has no double-wide
    MLPs or the saving never catches up (up to 2**24 tokens). The answer
    may lie beyond the model's own context length: compare it with
    ``config.max_position_embeddings``."""
    cost = double_wide_bytes(config, weight_bits)
    if cost == 0:
        return None
    low, high = 1, 2**24
    if kv_saved_bytes(config, high, kv_bits) < cost:
        return None
    while low < high:  # the saving never shrinks as the context grows
        mid = (low + high) // 2
        if kv_saved_bytes(config, mid, kv_bits) >= cost:
            high = mid
        else:
            low = mid + 1
    return low


def kv_readers(config: Gemma4Config) -> dict[int, list[int]]:
    """For each layer that lends its cache, the shared layers reading it."""
    readers: dict[int, list[int]] = {}
    for layer in range(config.first_kv_shared_layer, config.num_hidden_layers):
        readers.setdefault(config.kv_producer(layer), []).append(layer)
    return readers


class MappedPerLayerTable(nn.Module):
    """A PLE table that stays in a safetensors file: each call reads only
    the rows of the tokens it is given (``safe_open`` memory-maps the file
    and ``get_slice`` copies just those rows), then scales them as
    :class:`~gemma4_lite.ple.ScaledEmbedding` does. ``bytes_read`` counts
    what was copied out of the file."""

    def __init__(
        self, path: str | Path, key: str, scale: float, dtype: torch.dtype
    ) -> None:
        super().__init__()
        from safetensors import safe_open

        self.handle = safe_open(str(path), framework="pt")
        self.key, self.scale, self.dtype = key, scale, dtype
        self.rows = self.handle.get_slice(key).get_shape()[0]
        self.bytes_read = 0

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        table = self.handle.get_slice(self.key)
        unique, where = torch.unique(ids, return_inverse=True)
        rows = torch.cat([table[i : i + 1] for i in unique.tolist()])
        self.bytes_read += rows.numel() * rows.element_size()
        scale = torch.tensor(self.scale).to(self.dtype)
        return rows.to(self.dtype)[where] * scale


def map_per_layer_table(model, path: str | Path) -> MappedPerLayerTable:
    """Swap ``model``'s in-memory PLE table for rows read from ``path`` (a
    ``model.safetensors`` written by ``save_pretrained``); the table's
    memory is released. Returns the mapped table (see ``bytes_read``)."""
    text = model.model
    old = text.embed_tokens_per_layer
    mapped = MappedPerLayerTable(
        path, "model.embed_tokens_per_layer.weight", old.scale, model.dtype
    )
    text.embed_tokens_per_layer = mapped
    return mapped
