"""Gemma 4 attention: GQA with QK-norm, a gain-free V-norm, scaling 1.0, sliding or global masks,
K=V global layers, and cross-layer KV sharing. Chapters: "Sliding-window layers", "Global attention layers".
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import nn

from .config import Gemma4Config
from .kv_cache import Gemma4Cache
from .norms import RMSNorm, rms_normalize
from .packing import packed_weight, use_packed
from .rope import apply_rope


@dataclass
class ForwardState:
    """What every layer of one forward call shares: where the chunk starts, the cache (if any), the masks
    for an uncached call, and the keys/values producer layers lend to KV-shared layers."""

    start: int
    cache: Gemma4Cache | None
    masks: dict[str, torch.Tensor | None] = field(default_factory=dict)
    shared: dict[
        str, tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]
    ] = field(default_factory=dict)
    # Set once the model keeps only the last position (KV-shared layers when only the next token's logits
    # are wanted): their masks then keep only the last query row.
    last_row_only: bool = False


def grouped_attention(
    q: torch.Tensor,
    k: torch.Tensor,
    v: torch.Tensor,
    mask: torch.Tensor | None,
) -> torch.Tensor:
    """softmax(q k^T + mask) v with scale 1.0. q: [B, H, S, D]; k, v: [B, Hkv, T, D]; mask: [S, T] bool.

    Query head h uses KV head h // G. Folding the G query heads of a group into the sequence axis lets one
    batched matmul serve the whole group, without copying K and V G times. The softmax runs in fp32, as in
    the reference's eager path; written out rather than calling a fused kernel, so the result matches the
    reference to the last bit in fp32 (a fused kernel differs by ~1e-7 per layer, which a random deep
    network can amplify past 1e-4).
    """
    batch, heads, length, dim = q.shape
    groups = heads // k.shape[1]
    q = q.reshape(batch, k.shape[1], groups * length, dim)
    scores = torch.matmul(q, k.transpose(-1, -2))
    if (
        mask is not None
    ):  # the same [S, T] mask for every query head of the group
        scores.view(batch, k.shape[1], groups, length, -1).masked_fill_(
            ~mask, float("-inf")
        )
    probs = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
    return torch.matmul(probs, v).view(batch, heads, length, dim)


class Gemma4Attention(nn.Module):
    def __init__(self, config: Gemma4Config, layer_idx: int) -> None:
        super().__init__()
        self.layer_idx = layer_idx
        self.layer_type = config.layer_types[layer_idx]
        self.head_dim = config.head_dim_for(layer_idx)
        self.num_heads = config.num_attention_heads
        self.num_kv_heads = config.kv_heads_for(layer_idx)
        self.is_kv_shared = config.is_kv_shared(layer_idx)
        self.stores_shared_kv = config.stores_shared_kv(layer_idx)
        hidden = config.hidden_size
        self.q_proj = nn.Linear(
            hidden, self.num_heads * self.head_dim, bias=False
        )
        self.q_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
        if (
            not self.is_kv_shared
        ):  # shared layers own no key/value weights at all
            kv_width = config.kv_heads_for(layer_idx) * self.head_dim
            self.k_proj = nn.Linear(hidden, kv_width, bias=False)
            # K=V: values are the raw key projection (before k_norm), so there is no v_proj
            self.v_proj = (
                None
                if config.k_eq_v_for(layer_idx)
                else nn.Linear(hidden, kv_width, bias=False)
            )
            self.k_norm = RMSNorm(self.head_dim, config.rms_norm_eps)
            self.v_norm = RMSNorm(
                self.head_dim, config.rms_norm_eps, with_scale=False
            )
        self.o_proj = nn.Linear(
            self.num_heads * self.head_dim, hidden, bias=False
        )

    def project_q(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> torch.Tensor:
        """Queries of the new tokens, [B, H, S, D]: projection, QK-norm, RoPE."""
        q = self.q_norm(
            self.q_proj(x).view(*x.shape[:2], self.num_heads, self.head_dim)
        )
        return apply_rope(q, cos, sin).transpose(1, 2)

    def project_kv(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Keys and values of the new tokens, [B, Hkv, S, D], ready for the cache."""
        batch, length, _ = x.shape
        raw_k = self.k_proj(x).view(batch, length, -1, self.head_dim)
        raw_v = (
            raw_k
            if self.v_proj is None
            else self.v_proj(x).view(batch, length, -1, self.head_dim)
        )
        k = apply_rope(self.k_norm(raw_k), cos, sin).transpose(1, 2)
        v = self.v_norm(raw_v).transpose(1, 2)
        return k, v

    def project_qkv_packed(
        self, x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Inference path with the same bits as ``q_proj``/``q_norm`` plus :meth:`project_kv`: one matmul
        for all projections and one gain-free normalisation over all heads, then each part's gain.
        (Normalising then multiplying by the gain is exactly what RMSNorm does.)"""
        batch, length, _ = x.shape
        parts = [self.q_proj, self.k_proj] + (
            [self.v_proj] if self.v_proj is not None else []
        )
        heads = rms_normalize(
            F.linear(x, packed_weight(self, parts)).view(
                batch, length, -1, self.head_dim
            ),
            self.q_norm.eps,
        )
        nq, nkv = self.num_heads, self.num_kv_heads
        q = (heads[:, :, :nq] * self.q_norm.weight.float()).to(x.dtype)
        k_hat = heads[:, :, nq : nq + nkv]
        k = (k_hat * self.k_norm.weight.float()).to(x.dtype)
        v = (k_hat if self.v_proj is None else heads[:, :, nq + nkv :]).to(
            x.dtype
        )  # K=V: the raw key, normed
        q = apply_rope(q, cos, sin).transpose(1, 2)
        return q, apply_rope(k, cos, sin).transpose(1, 2), v.transpose(1, 2)

    def forward(
        self,
        x: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        state: ForwardState,
    ) -> torch.Tensor:
        batch, length, _ = x.shape
        if self.is_kv_shared:
            q = self.project_q(x, cos, sin)
            k, v, mask = state.shared[self.layer_type]
            if state.last_row_only and mask is not None:
                mask = mask[-1:]
        else:
            if use_packed(self.q_proj):
                q, k, v = self.project_qkv_packed(x, cos, sin)
            else:
                q, (k, v) = (
                    self.project_q(x, cos, sin),
                    self.project_kv(x, cos, sin),
                )
            layer_cache = (
                state.cache.layers[self.layer_idx]
                if state.cache is not None
                else None
            )
            if layer_cache is None:
                mask = state.masks[self.layer_type]
            else:
                k, v, mask = layer_cache.update(k, v, state.start)
            if self.stores_shared_kv:
                state.shared[self.layer_type] = (k, v, mask)
        out = grouped_attention(q, k, v, mask)
        return self.o_proj(out.transpose(1, 2).reshape(batch, length, -1))
