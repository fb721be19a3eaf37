"""Mixture of Experts as in Gemma 4 26B-A4B: the router, the experts and two
exact ways to dispatch tokens to them. Chapters: "Router design", "Expert
architecture"; the other dispatchers (the teaching loops and the grouped
GEMM, ``gemma4_lite.book.dispatch``) and the balancing losses live in
``gemma4_lite.book``.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from .mlp import gelu_tanh
from .norms import RMSNorm


class Routing(NamedTuple):
    logits: torch.Tensor  # [N, E] router scores before the softmax
    probs: torch.Tensor  # [N, E] fp32 softmax over all experts
    weights: torch.Tensor  # [N, k] renormalised top-k probs * expert scale
    experts: torch.Tensor  # [N, k] chosen expert ids, best first


class Gemma4Router(nn.Module):
    """no-gain RMSNorm(x) * scale * H^-1/2 -> linear -> softmax (fp32) ->
    top-k -> renormalise -> times the chosen experts' ``per_expert_scale``.

    Its input is the residual stream itself, not the pre-FFN-normed tensor
    the dense MLP sees.
    """

    def __init__(
        self, hidden_size: int, num_experts: int, top_k: int, eps: float = 1e-6
    ) -> None:
        super().__init__()
        self.top_k = top_k
        self.norm = RMSNorm(hidden_size, eps, with_scale=False)
        self.proj = nn.Linear(hidden_size, num_experts, bias=False)
        self.scale = nn.Parameter(torch.ones(hidden_size))
        self.per_expert_scale = nn.Parameter(torch.ones(num_experts))
        self.scalar_root_size = hidden_size**-0.5

    def forward(self, x: torch.Tensor) -> Routing:
        logits = self.proj(self.norm(x) * self.scale * self.scalar_root_size)
        probs = F.softmax(logits, dim=-1, dtype=torch.float32)
        top_p, top_i = torch.topk(probs, self.top_k, dim=-1)
        top_p = top_p / top_p.sum(dim=-1, keepdim=True)
        weights = top_p * self.per_expert_scale[top_i]
        return Routing(logits, probs, weights, top_i)


def expert_ffn(
    x: torch.Tensor, gate_up: torch.Tensor, down: torch.Tensor
) -> torch.Tensor:
    """One expert: the GeGLU MLP with its own stacked gate/up matrix."""
    gate, up = F.linear(x, gate_up).chunk(2, dim=-1)
    return F.linear(gelu_tanh(gate) * up, down)


def _sort_by_expert(experts: torch.Tensor, num_experts: int):
    """The N*k assignments ordered by expert: their tokens, their positions
    in the flat order, and how many each expert received."""
    flat = experts.reshape(-1)
    order = torch.argsort(flat, stable=True)
    counts = torch.bincount(flat, minlength=num_experts)
    return order // experts.shape[1], order, counts


def dispatch_sorted(
    x: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    experts: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """Sort the N*k (token, expert) assignments by expert once, then run each
    used expert on one contiguous slice: no per-expert search, no pass over
    unused experts. Reading the counts back is a host sync, which a compiled
    graph cannot hold: :func:`dispatch_gathered` serves there.
    """
    token, order, counts = _sort_by_expert(experts, gate_up.shape[0])
    x_sorted, w_sorted = x[token], weights.reshape(-1)[order, None]
    out = torch.zeros_like(x)
    # expert e owns the sorted rows from the previous end to ends[e]
    ends = counts.cumsum(0).tolist()
    for e, (begin, end) in enumerate(zip([0, *ends], ends)):
        if end > begin:
            y = expert_ffn(x_sorted[begin:end], gate_up[e], down[e])
            y = y * w_sorted[begin:end]
            out.index_add_(0, token[begin:end], y.to(out.dtype))
    return out


def dispatch_gathered(
    x: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    experts: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """Each of the N*k assignments multiplies its token by its own expert's
    matrices, gathered. Shapes depend on N and k alone (no sort, no counts,
    no host sync), which a compiled decode step needs; it reads one expert's
    weights per assignment, so it suits a few tokens, not a long prompt."""
    count, k = experts.shape
    flat = experts.reshape(-1)
    xs = x.repeat_interleave(k, dim=0)[:, :, None]
    gate, up = torch.bmm(gate_up[flat], xs)[..., 0].chunk(2, dim=-1)
    y = torch.bmm(down[flat], (gelu_tanh(gate) * up)[:, :, None])[..., 0]
    y = y * weights.reshape(-1, 1)
    return y.view(count, k, -1).sum(dim=1).to(x.dtype)


class Gemma4Experts(nn.Module):
    """E GeGLU experts stored as two 3-D tensors, in the checkpoint's layout:
    ``gate_up_proj`` [E, 2*I, H] (gate rows first) and ``down_proj``
    [E, H, I]."""

    def __init__(self, num_experts: int, hidden: int, width: int) -> None:
        super().__init__()
        self.gate_up_proj = nn.Parameter(
            torch.empty(num_experts, 2 * width, hidden)
        )
        self.down_proj = nn.Parameter(torch.empty(num_experts, hidden, width))

    def forward(
        self, x: torch.Tensor, experts: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        gate_up, down = self.gate_up_proj, self.down_proj
        if torch.compiler.is_compiling():  # a static graph: see the docstring
            return dispatch_gathered(x, gate_up, down, experts, weights)
        # no slower than the grouped GEMM overall: ahead at one token and at
        # 512, behind at 16 (chapter "Expert architecture" times both)
        return dispatch_sorted(x, gate_up, down, experts, weights)
