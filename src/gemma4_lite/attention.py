"""Gemma 4 attention: GQA with QK-norm, a gain-free V-norm, scaling 1.0,
sliding or global masks, K=V global layers and cross-layer KV sharing.
Chapters: "Sliding-window layers", "Global attention layers".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .config import Gemma4Config
from .kv_cache import GlobalKVCache, RingKVCache
from .norms import RMSNorm
from .rope import apply_rope

KV = tuple[torch.Tensor, torch.Tensor]
# queries per call of the fused kernel in a long chunk: see sdpa_attention
QUERY_BLOCK = 64


def grouped_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """softmax(q k^T + mask) v with scale 1.0.

    q: [B, H, S, D]; k, v: [B, Hkv, T, D]; mask: [S, T] or [B, S, T] bool.
    Query head h uses KV head h // G. Folding the G query heads of a group
    into the sequence axis lets one batched matmul serve the whole group,
    without copying K and V G times. The softmax runs in fp32, as in the
    reference's eager path. Written out rather than a fused kernel, so the
    result matches the reference to the last bit: a fused kernel differs by
    ~1e-7 per layer, which a random deep network amplifies past 1e-4.
    """
    batch, heads, length, dim = q.shape
    kv_heads = k.shape[1]
    q = q.reshape(batch, kv_heads, heads // kv_heads * length, dim)
    scores = torch.matmul(q, k.transpose(-1, -2))
    if mask is not None:  # one [S, T] mask for every head of a group
        hidden = mask.logical_not().view(-1, 1, 1, length, k.shape[2])
        grouped = scores.view(batch, kv_heads, -1, length, k.shape[2])
        grouped.masked_fill_(hidden, float("-inf"))
    probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(probs, v).view(batch, heads, length, dim)


def sdpa_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """The same attention through PyTorch's fused kernel
    (``scaled_dot_product_attention``): faster for long prompts, equal to
    :func:`grouped_attention` up to the last bits. Those bits matter in
    deep random networks, where each layer multiplies small differences
    (random weights make every layer's output sensitive to its input), so
    parity with transformers is tested on the written-out path.

    A long chunk goes through the kernel in blocks of ``QUERY_BLOCK``
    queries, each over the keys from the first to the last that any of its
    rows may see. On CPU the kernel scores every key it is given, masked or
    not; cut to each block's span, most of a causal triangle or a sliding
    band is never scored (benchmarks/README.md measures the gain). The keys
    left out are hidden from every row of the block, so the result is the
    same attention. The spans are read on the host (a GPU waits for them,
    block by block); a one-token decode step reads none."""
    if mask is not None:  # [S, T] or [B, S, T] -> [B or 1, 1, S, T]
        mask = mask.view(-1, 1, *mask.shape[-2:])
    if mask is None or q.shape[2] <= QUERY_BLOCK:
        return F.scaled_dot_product_attention(
            q, k, v, attn_mask=mask, scale=1.0, enable_gqa=True
        )
    blocks = []
    for first in range(0, q.shape[2], QUERY_BLOCK):
        rows = slice(first, first + QUERY_BLOCK)
        seen = mask[:, 0, rows].flatten(0, 1).any(0).nonzero()
        keys = slice(int(seen[0]), int(seen[-1]) + 1)
        part = q[:, :, rows], k[:, :, keys], v[:, :, keys]
        blocks.append(sdpa_attention(*part, mask[..., rows, keys]))
    return torch.cat(blocks, dim=2)


ATTENTION = {"eager": grouped_attention, "sdpa": sdpa_attention}


def set_attention(layers: nn.ModuleList, name: str) -> None:
    """Make every decoder layer of ``layers`` use ``ATTENTION[name]``."""
    if name not in ATTENTION:
        raise ValueError(
            f"attn_implementation must be one of {sorted(ATTENTION)}, "
            f"got {name!r}"
        )
    for layer in layers:
        layer.self_attn.attn_implementation = name


class Gemma4Attention(nn.Module):
    """One attention layer. ``qkv_proj`` stacks the checkpoint's
    ``q_proj``, ``k_proj`` and ``v_proj`` rows (one matmul, same bits; see
    ``loading.py``): K=V layers have no ``v_proj`` (values are the raw key
    projection) and KV-shared layers only ``q_proj``."""

    def __init__(self, config: Gemma4Config, layer_idx: int) -> None:
        super().__init__()
        self.head_dim = dim = config.head_dim_for(layer_idx)
        self.num_heads = config.num_attention_heads
        self.is_kv_shared = config.is_kv_shared(layer_idx)
        kv_parts = 1 if config.k_eq_v_for(layer_idx) else 2
        self.heads_per_part = [self.num_heads]
        if not self.is_kv_shared:
            self.heads_per_part += [config.kv_heads_for(layer_idx)] * kv_parts
        hidden, eps = config.hidden_size, config.rms_norm_eps
        rows = sum(self.heads_per_part) * dim
        self.qkv_proj = nn.Linear(hidden, rows, bias=False)
        self.q_norm = RMSNorm(dim, eps)
        if not self.is_kv_shared:  # shared layers own no key/value weights
            self.k_norm = RMSNorm(dim, eps)
            self.v_norm = RMSNorm(dim, eps, with_scale=False)
        self.o_proj = nn.Linear(self.num_heads * dim, hidden, bias=False)
        self.attn_implementation = "eager"  # or "sdpa": see ATTENTION

    def forward(
        self,
        x: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: RingKVCache | GlobalKVCache | None = None,
        start: int = 0,
        shared_kv: KV | None = None,
    ) -> tuple[torch.Tensor, KV]:
        """Attention output [B, S, hidden] and the keys/values it attended to
        (which the model lends to later KV-shared layers)."""
        qkv = self.qkv_proj(x).unflatten(-1, (-1, self.head_dim))
        q, *kv = qkv.split(self.heads_per_part, dim=2)
        q = apply_rope(self.q_norm(q), *rope).transpose(1, 2)
        if self.is_kv_shared:
            k, v = shared_kv
        else:  # K=V: kv holds one projection, normed two ways
            k = apply_rope(self.k_norm(kv[0]), *rope).transpose(1, 2)
            v = self.v_norm(kv[-1]).transpose(1, 2)
            if cache is not None:
                k, v = cache.update(k, v, start)
        out = ATTENTION[self.attn_implementation](q, k, v, mask)
        return self.o_proj(out.transpose(1, 2).flatten(2)), (k, v)
