"""One Gemma 4 decoder layer. Chapters: "Global attention layers", "When MoE meets hybrid attention".

Order (every variant): pre-norm -> attention -> post-norm -> add; pre-norm -> MLP (and, on 26B-A4B, the MoE
in parallel) -> post-norm -> add; on E2B/E4B the per-layer-input gate -> add; finally the *whole* residual
stream is multiplied by ``layer_scalar``.
"""

from __future__ import annotations

import torch
from torch import nn

from .attention import ForwardState, Gemma4Attention
from .config import Gemma4Config
from .mlp import GeGLUMLP
from .moe import Gemma4Experts, Gemma4Router
from .norms import RMSNorm
from .ple import apply_per_layer_input


class Gemma4DecoderLayer(nn.Module):
    def __init__(self, config: Gemma4Config, layer_idx: int) -> None:
        super().__init__()
        hidden, eps = config.hidden_size, config.rms_norm_eps
        self.layer_idx = layer_idx
        self.self_attn = Gemma4Attention(config, layer_idx)
        self.mlp = GeGLUMLP(hidden, config.mlp_width_for(layer_idx))
        self.input_layernorm = RMSNorm(hidden, eps)
        self.post_attention_layernorm = RMSNorm(hidden, eps)
        self.pre_feedforward_layernorm = RMSNorm(hidden, eps)
        self.post_feedforward_layernorm = RMSNorm(hidden, eps)
        self.register_buffer(
            "layer_scalar", torch.ones(1)
        )  # loaded from the checkpoint
        self.has_per_layer_input = config.hidden_size_per_layer_input > 0
        if self.has_per_layer_input:
            dim = config.hidden_size_per_layer_input
            self.per_layer_input_gate = nn.Linear(hidden, dim, bias=False)
            self.per_layer_projection = nn.Linear(dim, hidden, bias=False)
            self.post_per_layer_input_norm = RMSNorm(hidden, eps)
        self.has_moe = config.enable_moe_block
        if self.has_moe:
            self.router = Gemma4Router(
                hidden, config.num_experts, config.top_k_experts, eps
            )
            self.experts = Gemma4Experts(
                config.num_experts, hidden, config.moe_intermediate_size
            )
            self.pre_feedforward_layernorm_2 = RMSNorm(hidden, eps)
            self.post_feedforward_layernorm_1 = RMSNorm(hidden, eps)
            self.post_feedforward_layernorm_2 = RMSNorm(hidden, eps)

    def moe_branch(self, residual: torch.Tensor) -> torch.Tensor:
        """The experts' half of the FFN. The router reads the raw residual; the experts read it through
        their own pre-norm."""
        flat = residual.reshape(-1, residual.shape[-1])
        routing = self.router(flat)
        y = self.experts(
            self.pre_feedforward_layernorm_2(flat),
            routing.experts,
            routing.weights,
        )
        return self.post_feedforward_layernorm_2(y.reshape(residual.shape))

    def forward(
        self,
        h: torch.Tensor,
        cos: torch.Tensor,
        sin: torch.Tensor,
        state: ForwardState,
        per_layer_input: torch.Tensor | None = None,
    ) -> torch.Tensor:
        attn = self.self_attn(self.input_layernorm(h), cos, sin, state)
        h = h + self.post_attention_layernorm(attn)
        m = self.mlp(self.pre_feedforward_layernorm(h))
        if self.has_moe:
            m = self.post_feedforward_layernorm_1(m) + self.moe_branch(h)
        h = h + self.post_feedforward_layernorm(m)
        if self.has_per_layer_input:
            h = apply_per_layer_input(self, h, per_layer_input)
        return h * self.layer_scalar
