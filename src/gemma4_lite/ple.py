"""The scaled embedding tables: the token embedding and the Per-Layer
Embeddings (PLE) table of E2B/E4B. Chapter: "Scaling decisions".

Every layer of E2B/E4B receives a small extra vector per token (256 wide in
the released models): a row of a huge lookup table
(``embed_tokens_per_layer``, [V, L*256], which can live in flash rather than
accelerator memory) plus a projection of the token embedding, formed by
:meth:`gemma4_lite.model.Gemma4TextModel.per_layer_inputs`. Inside each
block a gate mixes it into the residual stream
(:meth:`gemma4_lite.block.Gemma4DecoderLayer.per_layer_input`).
"""

from __future__ import annotations

import torch
from torch import nn


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
