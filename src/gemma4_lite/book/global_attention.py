"""Helpers of the chapter "Global attention layers" that are not about reach
(that is :mod:`gemma4_lite.book.receptive_field`): the check of the
reader's proportional RoPE frequencies, and of the reader's proportional RoPE
rotation (exercise 2.4)."""

from __future__ import annotations

import torch

from ..rope import proportional_inv_freq
from .exercises import call_reader


def check_proportional_inv_freq(fn) -> bool:
    """Whether ``fn(head_dim, theta, fraction)`` gives the package's
    proportional RoPE frequencies for several head sizes, bases and
    fractions (to float32 rounding)."""
    cases = [
        (512, 1e6, 0.25),
        (256, 1e4, 0.5),
        (128, 1e6, 0.25),
        (64, 5e5, 1.0),
        (512, 1e6, 0.125),
    ]
    for head_dim, theta, fraction in cases:
        try:
            got = torch.as_tensor(fn(head_dim, theta, fraction)).float()
        except Exception:
            return False
        want = proportional_inv_freq(head_dim, theta, fraction)
        if got.shape != want.shape:
            return False
        if not torch.allclose(got, want, rtol=1e-5, atol=0):
            return False
    return True


def proportional_rope(
    x: torch.Tensor, position: int, theta: float, fraction: float
) -> torch.Tensor:
    """One head vector ``x`` [D] at ``position`` under proportional RoPE,
    computed with the package's ``apply_rope`` in float64 (the reference of
    exercise 2.4)."""
    from ..rope import apply_rope

    dim = x.shape[-1]
    j = torch.arange(dim // 2, dtype=torch.float64)
    freqs = torch.where(
        j < int(fraction * dim // 2),
        theta ** (-2 * j / dim),
        torch.zeros(dim // 2, dtype=torch.float64),
    )
    angles = position * torch.cat([freqs, freqs])
    out = apply_rope(
        x.double()[None, None, None],
        angles.cos()[None, None, None],
        angles.sin()[None, None, None],
    )
    return out[0, 0, 0]


def check_proportional_rope(fn) -> bool | str:
    """Exercise 2.4 of chapter 2: whether ``fn(x, position, theta,
    fraction)`` rotates a head vector ``x`` [D] as Gemma 4's proportional
    RoPE does (rotate-half pairs ``(i, i + D/2)``, the first
    ``int(fraction * D / 2)`` of them at ``theta ** (-2 i / D)``, the rest
    still), to 1e-4 (room for float32 arithmetic). Returns True, or where
    it differs; a stub that raises ``NotImplementedError`` propagates it
    ("not attempted")."""
    gen = torch.Generator().manual_seed(202)
    cases = [
        (512, 1e6, 0.25, 1000),
        (256, 1e4, 1.0, 37),
        (16, 1e4, 0.5, 3),
        (8, 1e6, 0.25, 0),
        (128, 1e6, 0.25, 4095),
    ]
    for dim, theta, fraction, position in cases:
        x = torch.randn(dim, generator=gen, dtype=torch.float64)
        want = proportional_rope(x, position, theta, fraction)
        where = (
            f"D = {dim}, theta = {theta:g}, fraction = {fraction}, "
            f"position = {position}"
        )
        got, problem = call_reader(
            where, fn, x.clone(), position, theta, fraction, like=want
        )
        if problem:
            return problem
        diff = (got.double() - want).abs()
        if not torch.allclose(got.double(), want, rtol=1e-4, atol=1e-4):
            i = int(diff.argmax())
            pair = i % (dim // 2)
            return (
                f"{where}: dimension {i} (pair {pair}, partner dimension "
                f"{pair + dim // 2 if i == pair else pair}) differs by "
                f"{diff[i].item():.3g}"
            )
    return True
