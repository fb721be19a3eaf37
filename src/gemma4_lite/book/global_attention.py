"""Helpers of the chapter "Global attention layers" that are not about reach
(that is :mod:`gemma4_lite.book.receptive_field`): the check of the
reader's proportional RoPE frequencies (Exercise 2.4)."""

from __future__ import annotations

import torch

from ..rope import proportional_inv_freq


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
