"""The gated feed-forward block (GeGLU with tanh-approximated GELU).
Chapter: "Expert architecture"."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def gelu_tanh(x: torch.Tensor) -> torch.Tensor:
    return F.gelu(x, approximate="tanh")


class GeGLUMLP(nn.Module):
    """``down(gelu(gate(x)) * up(x))`` without biases. KV-shared layers of
    E2B are twice as wide.

    Gate and up read the same input, so they are one matrix, ``gate_up_proj``
    (gate rows first, the layout the experts use too): one matmul instead of
    two, with the same bits. The checkpoint's ``gate_proj``/``up_proj`` are
    stacked into it when loading (``loading.py``).
    """

    def __init__(self, hidden_size: int, intermediate_size: int) -> None:
        super().__init__()
        self.gate_up_proj = nn.Linear(
            hidden_size, 2 * intermediate_size, bias=False
        )
        self.down_proj = nn.Linear(intermediate_size, hidden_size, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate, up = self.gate_up_proj(x).chunk(2, dim=-1)
        return self.down_proj(gelu_tanh(gate) * up)
