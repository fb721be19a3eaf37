"""RMSNorm as Gemma 4 uses it: ``x * rsqrt(mean(x^2) + eps) * w`` in fp32, cast back.

Gemma 4 multiplies by ``w`` itself (initialised to 1), where Gemma 3 multiplied by ``1 + w``. The value
norm and the router norm have no gain at all. Chapters: "Global attention layers", "Router design".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def rms_normalize_reference(x: torch.Tensor, eps: float) -> torch.Tensor:
    """The gain-free part written out, in fp32, exactly as the reference writes it."""
    x = x.float()
    return x * torch.pow(x.pow(2).mean(-1, keepdim=True) + eps, -0.5)


def rms_normalize(x: torch.Tensor, eps: float) -> torch.Tensor:
    """The same numbers as :func:`rms_normalize_reference`, to the last bit (``tests/test_norms.py``), from
    PyTorch's RMSNorm kernel: one call instead of five, which matters when decoding one token at a time."""
    return F.rms_norm(x.float(), (x.shape[-1],), eps=eps)


class RMSNorm(nn.Module):
    """RMSNorm over the last dimension; ``with_scale=False`` gives the no-gain variant (V-norm, router)."""

    def __init__(
        self, dim: int, eps: float = 1e-6, with_scale: bool = True
    ) -> None:
        super().__init__()
        self.eps = eps
        self.with_scale = with_scale
        if with_scale:
            self.weight = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = self.weight.float() if self.with_scale else None
        return F.rms_norm(x.float(), (x.shape[-1],), weight, self.eps).to(
            x.dtype
        )
