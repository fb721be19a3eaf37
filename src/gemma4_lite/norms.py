"""RMSNorm as Gemma 4 uses it: ``x * rsqrt(mean(x^2) + eps) * w`` in fp32, cast back.

Gemma 4 multiplies by ``w`` itself (initialised to 1), where Gemma 3 multiplied by ``1 + w``. The value
norm and the router norm have no gain at all. Chapters: "Global attention layers", "Router design".
"""

from __future__ import annotations

import torch
from torch import nn


def rms_normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """The gain-free part, in fp32. ``torch.pow(..., -0.5)`` as in the reference, not ``rsqrt``, so the
    last bit agrees."""
    x = x.float()
    return x * torch.pow(x.pow(2).mean(-1, keepdim=True) + eps, -0.5)


class RMSNorm(nn.Module):
    """RMSNorm over the last dimension; ``with_scale=False`` gives the no-gain variant (V-norm, router)."""

    def __init__(self, dim: int, eps: float = 1e-6, with_scale: bool = True) -> None:
        super().__init__()
        self.eps = eps
        self.with_scale = with_scale
        if with_scale:
            self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = rms_normalize(x, self.eps)
        if self.with_scale:
            y = y * self.weight.float()
        return y.to(x.dtype)
