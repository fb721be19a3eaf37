"""Masks drawn and checked in "Sliding-window layers": whole-sequence causal
and sliding masks, and the definition written out as two loops."""

from __future__ import annotations

import torch

from ..masks import visible


def causal_mask(
    length: int, device: torch.device | str | None = None
) -> torch.Tensor:
    pos = torch.arange(length, device=device)
    return visible(pos, pos, None)


def sliding_window_mask(
    length: int, window: int, device: torch.device | str | None = None
) -> torch.Tensor:
    pos = torch.arange(length, device=device)
    return visible(pos, pos, window)


def naive_sliding_window_mask(length: int, window: int) -> list[list[bool]]:
    """Two nested loops, the definition written out; the chapter checks the
    tensor version against it.
    """
    return [
        [q - window < k <= q for k in range(length)] for q in range(length)
    ]
