"""The two obvious ways to send tokens to experts, kept beside the package's
exact schemes so "Expert architecture" can time and compare all four.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..moe import dispatch_grouped, dispatch_sorted, expert_ffn


def dispatch_token_loop(
    x: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    experts: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """The definition: for every token, for every chosen expert, run that
    expert. Slow and obvious.
    """
    out = torch.zeros_like(x)
    for t in range(x.shape[0]):
        for e in sorted(
            range(experts.shape[1]), key=lambda slot: int(experts[t, slot])
        ):
            idx = int(experts[t, e])
            y = (
                expert_ffn(x[t : t + 1], gate_up[idx], down[idx])
                * weights[t, e]
            )
            out[t] += y[0].to(out.dtype)
    return out


def dispatch_expert_loop(
    x: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    experts: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """For every expert, find its tokens with a boolean mask and run them as
    one batch (the transformers "eager" scheme). One pass over all E experts,
    used or not."""
    out = torch.zeros_like(x)
    for e in range(gate_up.shape[0]):
        token, slot = torch.where(experts == e)
        if token.numel() == 0:
            continue
        y = (
            expert_ffn(x[token], gate_up[e], down[e])
            * weights[token, slot, None]
        )
        out.index_add_(0, token, y.to(out.dtype))
    return out


DISPATCHERS: dict[str, Callable[..., torch.Tensor]] = {
    "token_loop": dispatch_token_loop,
    "expert_loop": dispatch_expert_loop,
    "sorted": dispatch_sorted,
    "grouped": dispatch_grouped,
}
