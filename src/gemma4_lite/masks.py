"""Which keys each query may see. Chapter: "Sliding-window layers".

A sliding layer with window W lets the query at position p see keys
p-W+1 .. p: exactly W keys, itself included. Masks are boolean, ``True``
meaning "may attend". Positions here count steps of the sequence as fed,
left padding included (``Gemma4TextModel.rope_and_masks`` hides it).
"""

from __future__ import annotations

import torch


def visible(
    q_pos: torch.Tensor, k_pos: torch.Tensor, window: int | None
) -> torch.Tensor:
    """[len(q_pos), len(k_pos)] mask from absolute positions."""
    q = q_pos[:, None]
    k = k_pos[None, :]
    mask = k <= q
    if window is not None:
        mask &= k > q - window
    return mask


def ring_positions(seen: int, size: int, device=None) -> torch.Tensor:
    """Positions held by the slots of a ring of ``size`` slots after ``seen``
    tokens were written in order (position p lives in slot p % size)."""
    slot = torch.arange(min(seen, size), device=device)
    return slot + size * ((seen - 1 - slot) // size)
