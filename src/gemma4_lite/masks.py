"""Which keys each query may see. Chapter: "Sliding-window layers".

A sliding layer with window W lets the query at position p see keys
p-W+1 .. p: exactly W keys, itself included. Masks are boolean, ``True``
meaning "may attend". Positions here count steps of the sequence as fed,
left padding included; padded rows are handled by :func:`hide_padding`.
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


def hide_padding(
    mask: torch.Tensor,
    q_pos: torch.Tensor,
    k_pos: torch.Tensor,
    pad: torch.Tensor,
) -> torch.Tensor:
    """[B, S, T]: ``mask`` without the left-padding keys of each row.

    A padding query still sees itself, so that no softmax row is empty (an
    empty row would give NaN, and 0 * NaN would leak into the real rows).
    """
    keep = (k_pos[None, None, :] >= pad[:, None, None]) | (
        k_pos[None, None, :] == q_pos[None, :, None]
    )
    return mask[None] & keep
