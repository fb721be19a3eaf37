"""Rotary position embeddings: the default kind on sliding layers and the
"proportional" kind on global layers. Chapter: "Global attention layers".

Proportional RoPE keeps the full head size in the frequency exponent, rotates
only the first ``factor * head_dim / 2`` pairs and gives the remaining pairs
frequency 0 (they pass through unchanged). This is *not* the usual partial
RoPE, which rotates a contiguous slice with a smaller denominator.
"""

from __future__ import annotations

import torch

from .config import FULL, Gemma4Config


def default_inv_freq(head_dim: int, theta: float) -> torch.Tensor:
    """``theta^(-2j/d)`` for every pair ``j < d/2``."""
    exponents = torch.arange(0, head_dim, 2, device="cpu").float() / head_dim
    return 1.0 / (theta**exponents)


def proportional_inv_freq(
    head_dim: int,
    theta: float,
    partial_rotary_factor: float,
    factor: float = 1.0,
) -> torch.Tensor:
    """Rotate ``int(p * d // 2)`` pairs with exponents over the *full* ``d``;
    the rest get frequency 0."""
    rotated = int(partial_rotary_factor * head_dim // 2)
    exponents = torch.arange(0, 2 * rotated, 2, device="cpu").float()
    freqs = 1.0 / (theta ** (exponents / head_dim))
    zeros = torch.zeros(head_dim // 2 - rotated, device="cpu")
    return torch.cat([freqs, zeros]) / factor


def inv_freq_for(config: Gemma4Config, layer_type: str) -> torch.Tensor:
    if layer_type != FULL:
        return default_inv_freq(config.head_dim, config.sliding_rope_theta)
    dim, theta = int(config.global_head_dim), config.global_rope_theta
    if config.global_rope_type != "proportional":
        return default_inv_freq(dim, theta)
    factors = config.global_partial_rotary_factor, config.global_rope_factor
    return proportional_inv_freq(dim, theta, *factors)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """NeoX pairing: dimension i rotates with i + d/2."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> torch.Tensor:
    """``x``: [B, S, heads, D]; ``cos``/``sin``: [B or 1, S, 1, D]."""
    return x * cos + rotate_half(x) * sin


class RotaryTable:
    """cos/sin of one layer type for every position, computed once in fp32
    and kept (gpt-fast style), grown on demand.

    A plain object, not a module buffer, on purpose: ``model.to(bfloat16)``
    must not round the frequencies, so the order of converting and running a
    model never changes its logits. The table follows the positions' device.
    """

    def __init__(self, inv_freq: torch.Tensor) -> None:
        self.inv_freq = inv_freq.float()
        self.cos = self.sin = torch.empty(0, 2 * len(inv_freq))

    def _build(self, length: int, device: torch.device) -> None:
        # ordinary tensors even when first built under inference_mode, so a
        # later training step can use them
        with torch.inference_mode(False):
            positions = torch.arange(length, device=device).float()
            freqs = positions[:, None] * self.inv_freq.to(device)[None, :]
            emb = torch.cat((freqs, freqs), dim=-1)
            self.cos, self.sin = emb.cos(), emb.sin()

    def reserve(self, end: int, device: torch.device) -> None:
        """Positions below ``end`` in the table, on ``device``."""
        if len(self.cos) < end or self.cos.device != device:
            self._build(max(end, 2 * len(self.cos), 256), device)

    def __call__(
        self, positions: torch.Tensor, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, S, 1, D] for positions [B or 1, S] already in the table."""
        cos, sin = self.cos[positions], self.sin[positions]
        return cos[:, :, None].to(dtype), sin[:, :, None].to(dtype)


def rotary_tables(config: Gemma4Config) -> dict[str, RotaryTable]:
    """One table per layer type of ``config``, shared by its layers."""
    kinds = set(config.layer_types)
    return {kind: RotaryTable(inv_freq_for(config, kind)) for kind in kinds}
