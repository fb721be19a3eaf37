"""Which keys each query may see. Chapter: "Sliding-window layers".

A sliding layer with window W lets the query at position p see keys p-W+1 .. p: exactly W keys, itself
included. Masks here are boolean, ``True`` meaning "may attend".
"""

from __future__ import annotations

import torch


def visible(
    q_pos: torch.Tensor, k_pos: torch.Tensor, window: int | None
) -> torch.Tensor:
    """[len(q_pos), len(k_pos)] mask from absolute positions; negative key positions mark empty slots."""
    q = q_pos[:, None]
    k = k_pos[None, :]
    mask = (k <= q) & (k >= 0)
    if window is not None:
        mask &= k > q - window
    return mask
