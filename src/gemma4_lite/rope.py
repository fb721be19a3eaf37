"""Rotary position embeddings: the default kind on sliding layers and the "proportional" kind on global
layers. Chapter: "Global attention layers".

Proportional RoPE keeps the full head size in the frequency exponent, rotates only the first
``factor * head_dim / 2`` pairs and gives the remaining pairs frequency 0 (they pass through unchanged).
This is *not* the usual partial RoPE, which rotates a contiguous slice with a smaller denominator.
"""

from __future__ import annotations

import torch
from torch import nn

from .config import FULL, Gemma4Config


def default_inv_freq(head_dim: int, theta: float) -> torch.Tensor:
    """``theta^(-2j/d)`` for every pair ``j < d/2``."""
    return 1.0 / (
        theta
        ** (torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim)
    )


def proportional_inv_freq(
    head_dim: int,
    theta: float,
    partial_rotary_factor: float,
    factor: float = 1.0,
) -> torch.Tensor:
    """Rotate ``int(p * d // 2)`` pairs with exponents over the *full* ``d``; the rest get frequency 0."""
    rotated = int(partial_rotary_factor * head_dim // 2)
    freqs = 1.0 / (
        theta
        ** (
            torch.arange(0, 2 * rotated, 2, dtype=torch.int64).float()
            / head_dim
        )
    )
    freqs = torch.cat([freqs, torch.zeros(head_dim // 2 - rotated)])
    return freqs / factor


def inv_freq_for(config: Gemma4Config, layer_type: str) -> torch.Tensor:
    if layer_type == FULL:
        if config.global_rope_type == "proportional":
            return proportional_inv_freq(
                int(config.global_head_dim),
                config.global_rope_theta,
                config.global_partial_rotary_factor,
                config.global_rope_factor,
            )
        return default_inv_freq(
            int(config.global_head_dim), config.global_rope_theta
        )
    return default_inv_freq(config.head_dim, config.sliding_rope_theta)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """NeoX pairing: dimension i rotates with i + d/2."""
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def apply_rope(
    x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor
) -> torch.Tensor:
    """``x``: [B, S, heads, D]; ``cos``/``sin``: [S, D]."""
    cos = cos[:, None, :]
    sin = sin[:, None, :]
    return x * cos + rotate_half(x) * sin


class RotaryTable(nn.Module):
    """cos/sin for one layer type, computed once per position and kept (gpt-fast style), grown on demand.

    Values are identical to computing ``position * inv_freq`` in fp32 on every call.
    """

    def __init__(self, inv_freq: torch.Tensor) -> None:
        super().__init__()
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self._cos: torch.Tensor | None = None
        self._sin: torch.Tensor | None = None

    def _build(self, length: int) -> None:
        positions = torch.arange(
            length, dtype=torch.int64, device=self.inv_freq.device
        ).float()
        freqs = positions[:, None] * self.inv_freq.float()[None, :]
        emb = torch.cat((freqs, freqs), dim=-1)
        self._cos, self._sin = emb.cos(), emb.sin()

    def forward(
        self, start: int, length: int, dtype: torch.dtype
    ) -> tuple[torch.Tensor, torch.Tensor]:
        end = start + length
        if (
            self._cos is None
            or self._cos.shape[0] < end
            or self._cos.device != self.inv_freq.device
        ):
            self._build(
                max(
                    end,
                    2 * (self._cos.shape[0] if self._cos is not None else 256),
                )
            )
        cos, sin = self._cos[start:end], self._sin[start:end]
        return cos.to(dtype), sin.to(dtype)
