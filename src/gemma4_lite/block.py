"""One Gemma 4 decoder layer. Chapters: "Global attention layers", "When MoE
meets hybrid attention".

Order (every variant): pre-norm -> attention -> post-norm -> add; pre-norm ->
MLP (and, on 26B-A4B, the MoE in parallel) -> post-norm -> add; on E2B/E4B
the per-layer-input gate -> add; finally the *whole* residual stream is
multiplied by ``layer_scalar``.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import KV, Gemma4Attention
from .config import Gemma4Config
from .kv_cache import GlobalKVCache, RingKVCache
from .mlp import GeGLUMLP, gelu_tanh
from .moe import Gemma4Experts, Gemma4Router
from .norms import RMSNorm


class Gemma4DecoderLayer(nn.Module):
    def __init__(self, config: Gemma4Config, layer_idx: int) -> None:
        super().__init__()
        hidden, eps = config.hidden_size, config.rms_norm_eps
        self.self_attn = Gemma4Attention(config, layer_idx)
        self.mlp = GeGLUMLP(hidden, config.mlp_width_for(layer_idx))
        self.input_layernorm = RMSNorm(hidden, eps)
        self.post_attention_layernorm = RMSNorm(hidden, eps)
        self.pre_feedforward_layernorm = RMSNorm(hidden, eps)
        self.post_feedforward_layernorm = RMSNorm(hidden, eps)
        # a buffer, not a parameter: the checkpoint stores it, nobody trains it
        self.register_buffer("layer_scalar", torch.ones(1))
        self.has_per_layer_input = config.hidden_size_per_layer_input > 0
        if self.has_per_layer_input:
            dim = config.hidden_size_per_layer_input
            self.per_layer_input_gate = nn.Linear(hidden, dim, bias=False)
            self.per_layer_projection = nn.Linear(dim, hidden, bias=False)
            self.post_per_layer_input_norm = RMSNorm(hidden, eps)
        self.has_moe = config.enable_moe_block
        if self.has_moe:
            experts, k = config.num_experts, config.top_k_experts
            width = config.moe_intermediate_size
            self.router = Gemma4Router(hidden, experts, k, eps)
            self.experts = Gemma4Experts(experts, hidden, width)
            self.pre_feedforward_layernorm_2 = RMSNorm(hidden, eps)
            self.post_feedforward_layernorm_1 = RMSNorm(hidden, eps)
            self.post_feedforward_layernorm_2 = RMSNorm(hidden, eps)

    def moe(self, residual: torch.Tensor) -> torch.Tensor:
        """The experts' half of the FFN. The router reads the raw residual;
        the experts read it through their own pre-norm."""
        flat = residual.reshape(-1, residual.shape[-1])
        route = self.router(flat)
        x = self.pre_feedforward_layernorm_2(flat)
        y = self.experts(x, route.experts, route.weights)
        return self.post_feedforward_layernorm_2(y.view(residual.shape))

    def per_layer_input(
        self, h: torch.Tensor, x: torch.Tensor
    ) -> torch.Tensor:
        """The per-layer input ``x`` gated into the residual stream after
        the FFN's add (E2B, E4B): ``h + norm(proj(gelu(gate(h)) * x))``."""
        gated = gelu_tanh(self.per_layer_input_gate(h)) * x
        projected = self.per_layer_projection(gated)
        return h + self.post_per_layer_input_norm(projected)

    def forward(
        self,
        h: torch.Tensor,
        rope: tuple[torch.Tensor, torch.Tensor],
        mask: torch.Tensor | None,
        cache: RingKVCache | GlobalKVCache | None = None,
        start: int = 0,
        per_layer_input: torch.Tensor | None = None,
        shared_kv: KV | None = None,
    ) -> tuple[torch.Tensor, KV]:
        x = self.input_layernorm(h)
        attn, kv = self.self_attn(x, rope, mask, cache, start, shared_kv)
        h = h + self.post_attention_layernorm(attn)
        m = self.mlp(self.pre_feedforward_layernorm(h))
        if self.has_moe:
            m = self.post_feedforward_layernorm_1(m) + self.moe(h)
        h = h + self.post_feedforward_layernorm(m)
        if self.has_per_layer_input:
            h = self.per_layer_input(h, per_layer_input)
        return h * self.layer_scalar, kv
