"""Per-Layer Embeddings (PLE), the E2B/E4B trick inherited from Gemma 3n.
Chapter: "Scaling decisions".

Every layer receives a small extra vector per token (256 wide in the
released models): a row of a huge lookup table (``embed_tokens_per_layer``,
[V, L*256], which can live in flash rather than accelerator memory) plus a
projection of the token embedding. Inside each block a gate mixes it into
the residual stream.
"""

from __future__ import annotations

import torch
from torch import nn

from .mlp import gelu_tanh


class ScaledEmbedding(nn.Module):
    """Embedding lookup times ``sqrt(dim)``; the multiplier is rounded to the
    weight dtype first, as in the reference (in bf16, sqrt(1536) = 39.19
    becomes 39.25)."""

    def __init__(self, num_embeddings: int, dim: int, scale: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(num_embeddings, dim))
        self.scale = scale

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        scale = torch.tensor(self.scale).to(self.weight.dtype)
        return nn.functional.embedding(ids, self.weight) * scale


def per_layer_inputs(
    model: nn.Module, ids: torch.Tensor, embeds: torch.Tensor
) -> torch.Tensor:
    """[B, S, L, P]: ``(norm(proj(embeds) / sqrt(H)) + table[ids] * sqrt(P))
    / sqrt(2)``, where ``model`` is the text model holding the table, the
    projection and its norm (at model level, as in the checkpoint)."""
    config = model.config
    shape = (*ids.shape, config.num_hidden_layers, -1)
    token_part = model.embed_tokens_per_layer(ids).reshape(shape)
    context = model.per_layer_model_projection(embeds)
    context = context * config.hidden_size**-0.5
    context = model.per_layer_projection_norm(context.reshape(shape))
    return (context + token_part) * 2.0**-0.5


def apply_per_layer_input(
    block: nn.Module, h: torch.Tensor, per_layer_input: torch.Tensor
) -> torch.Tensor:
    """The in-block gate, after the FFN residual add:
    ``h + norm(proj(gelu(gate(h)) * ple_i))``."""
    gated = gelu_tanh(block.per_layer_input_gate(h)) * per_layer_input
    return h + block.post_per_layer_input_norm(
        block.per_layer_projection(gated)
    )
