"""RMSNorm as Gemma 4 uses it: ``x * rsqrt(mean(x^2) + eps) * w`` in fp32,
cast back.

Gemma 4 multiplies by ``w`` itself (initialised to 1), where Gemma 2 and 3
multiplied by ``1 + w``. The value norm and the router norm have no gain at
all. Chapters: "Global attention layers", "Router design".
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class RMSNorm(nn.Module):
    """RMSNorm over the last dimension; ``with_scale=False`` gives the no-gain
    variant (V-norm, router).

    PyTorch's kernel gives the same bits as the reference's written-out
    ``x * torch.pow(mean(x^2) + eps, -0.5) * w`` in fp32 (tested), in one call
    instead of five.
    """

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
        y = F.rms_norm(x.float(), (x.shape[-1],), weight, self.eps)
        return y.to(x.dtype)
