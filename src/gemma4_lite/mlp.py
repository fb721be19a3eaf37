"""The gated feed-forward block (GeGLU with tanh-approximated GELU). Chapter: "Expert architecture"."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .packing import packed_weight, use_packed


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


class GeGLUMLP(nn.Module):
    """``down(gelu(gate(x)) * up(x))`` without biases. KV-shared layers of E2B are twice as wide."""

    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.gate_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.up_proj = nn.Linear(hidden_size, intermediate_size, bias=False)
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if use_packed(
            self.gate_proj
        ):  # inference: one matmul for gate and up (same bits, see packing.py)
            gate, up = F.linear(
                x, packed_weight(self, [self.gate_proj, self.up_proj])
            ).chunk(2, dim=-1)
        else:
            gate, up = self.gate_proj(x), self.up_proj(x)
        return self.down_proj(gelu_tanh(gate) * up)
