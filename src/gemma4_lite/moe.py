"""Mixture of Experts as in Gemma 4 26B-A4B: the router, the experts and two
exact ways to dispatch tokens to them. Chapters: "Router design", "Expert
architecture"; the teaching dispatchers and the balancing losses live in
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
    weights: (
        torch.Tensor
    )  # [N, k] renormalised top-k probabilities times the per-expert scale
    experts: torch.Tensor  # [N, k] chosen expert ids, best first


class Gemma4Router(nn.Module):
    """no-gain RMSNorm(x) * scale * H^-1/2 -> linear -> softmax (fp32) -> top-k -> renormalise
    -> multiply by the chosen experts' ``per_expert_scale``.

    Its input is the residual stream itself, not the pre-FFN-normed tensor the dense MLP sees.
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
        z = self.norm(x) * self.scale * self.scalar_root_size
        logits = self.proj(z)
        probs = F.softmax(logits, dim=-1, dtype=torch.float32)
        top_p, top_i = torch.topk(probs, self.top_k, dim=-1)
        weights = (
            top_p
            / top_p.sum(dim=-1, keepdim=True)
            * self.per_expert_scale[top_i]
        )
        return Routing(logits, probs, weights, top_i)


def expert_ffn(
    x: torch.Tensor, gate_up: torch.Tensor, down: torch.Tensor
) -> torch.Tensor:
    gate, up = F.linear(x, gate_up).chunk(2, dim=-1)
    return F.linear(gelu_tanh(gate) * up, down)


def dispatch_sorted(
    x: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    experts: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """Sort the N*k (token, expert) assignments by expert once, then run each used expert on one
    contiguous slice. No per-expert search, no pass over unused experts."""
    flat_expert = experts.reshape(-1)
    order = torch.argsort(flat_expert, stable=True)
    token = order // experts.shape[1]
    counts = torch.bincount(flat_expert, minlength=gate_up.shape[0]).tolist()
    x_sorted = x[token]
    w_sorted = weights.reshape(-1)[order]
    out = torch.zeros_like(x)
    begin = 0
    for e, count in enumerate(counts):
        if count == 0:
            continue
        end = begin + count
        y = (
            expert_ffn(x_sorted[begin:end], gate_up[e], down[e])
            * w_sorted[begin:end, None]
        )
        out.index_add_(0, token[begin:end], y.to(out.dtype))
        begin = end
    return out


def grouped_mm_applies(
    x: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    weights: torch.Tensor,
) -> bool:
    """Whether :func:`dispatch_grouped` can hand the work to ``torch._grouped_mm``: the kernel exists,
    the tensors are fp32 and on the CPU, every row stride is a multiple of 16
    bytes, and no gradient is being recorded (training keeps to the plain, well-trodden autograd path of
    :func:`dispatch_sorted`)."""
    # fp32 only: in bf16 the kernel rounds differently from separate matmuls and the result would no
    # longer match the reference bit for bit (tests/test_parity.py checks bf16 too)
    if not hasattr(torch, "_grouped_mm") or x.dtype != torch.float32:
        return False
    if (
        x.device.type != "cpu"
    ):  # measured and tested on CPU only; GPU kernels have other dtype/arch limits
        return False
    if torch.is_grad_enabled() and any(
        t.requires_grad for t in (x, gate_up, down, weights)
    ):
        return False
    size = x.element_size()
    hidden, intermediate = gate_up.shape[2], down.shape[2]
    return (
        (hidden * size) % 16 == 0
        and (intermediate * size) % 16 == 0
        and gate_up.dtype == x.dtype
    )


def dispatch_grouped(
    x: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    experts: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """The sorted scheme with the per-expert Python loop moved into one kernel call per projection:
    ``torch._grouped_mm`` multiplies consecutive row groups (one group per expert, boundaries given by the
    cumulative counts) by their own expert matrix. It computes the same products as
    :func:`dispatch_sorted` in the same order, so the result is identical; where the kernel does not apply
    (see :func:`grouped_mm_applies`) it *is* :func:`dispatch_sorted`. Chapter: "Expert architecture"."""
    if not grouped_mm_applies(x, gate_up, down, weights):
        return dispatch_sorted(x, gate_up, down, experts, weights)
    flat_expert = experts.reshape(-1)
    order = torch.argsort(flat_expert, stable=True)
    token = order // experts.shape[1]
    ends = torch.cumsum(
        torch.bincount(flat_expert, minlength=gate_up.shape[0]), 0
    ).to(torch.int32)
    x_sorted = x[token]
    gate, up = torch._grouped_mm(
        x_sorted, gate_up.transpose(1, 2), offs=ends
    ).chunk(2, dim=-1)
    y = torch._grouped_mm(
        (gelu_tanh(gate) * up).contiguous(), down.transpose(1, 2), offs=ends
    )
    y = y * weights.reshape(-1)[order, None]
    out = torch.zeros_like(x)
    out.index_add_(0, token, y.to(out.dtype))
    return out


class Gemma4Experts(nn.Module):
    """E GeGLU experts stored as two 3-D tensors, in the checkpoint's layout:
    ``gate_up_proj`` [E, 2*I, H] (gate rows first) and ``down_proj`` [E, H, I]."""

    def __init__(
        self, num_experts: int, hidden_size: int, intermediate_size: int
    ) -> None:
        super().__init__()
        self.gate_up_proj = nn.Parameter(
            torch.empty(num_experts, 2 * intermediate_size, hidden_size)
        )
        self.down_proj = nn.Parameter(
            torch.empty(num_experts, hidden_size, intermediate_size)
        )

    def forward(
        self, x: torch.Tensor, experts: torch.Tensor, weights: torch.Tensor
    ) -> torch.Tensor:
        # the fastest exact scheme on CPU (chapter "Expert architecture"); it is
        # dispatch_sorted wherever torch._grouped_mm does not apply
        return dispatch_grouped(
            x, self.gate_up_proj, self.down_proj, experts, weights
        )
