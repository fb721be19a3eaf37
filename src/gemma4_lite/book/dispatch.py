"""Ways to send tokens to experts beside the package's two (sorted, and
gathered inside a compiled graph), so that "Expert architecture" can time
and compare them: the two obvious loops; the grouped GEMM, the sorted
scheme with its loop over experts moved into one kernel call, which the
package does not use because the chapter's runs show it no faster overall;
and transformers' own Gemma 4 experts wrapped with the same signature.
"""

from __future__ import annotations

from typing import Callable

import torch

from ..mlp import gelu_tanh
from ..moe import _sort_by_expert, dispatch_sorted, expert_ffn


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
    one batch. One pass over all E experts, used or not (transformers' eager
    path differs: it first lists the experts that received tokens)."""
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


def grouped_mm_applies(
    x: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    weights: torch.Tensor,
) -> bool:
    """Whether :func:`dispatch_grouped` can use ``torch._grouped_mm``: the
    kernel exists, the tensors are fp32 on the CPU (measured and tested
    there; in bf16 it rounds differently from separate matmuls, so the
    result would no longer match the reference bit for bit), every row
    stride is a multiple of 16 bytes, and no gradient is being recorded
    (training keeps to the plain autograd path of :func:`dispatch_sorted`).
    """
    if not hasattr(torch, "_grouped_mm") or x.device.type != "cpu":
        return False
    if x.dtype != torch.float32 or gate_up.dtype != x.dtype:
        return False
    tensors = (x, gate_up, down, weights)
    if torch.is_grad_enabled() and any(t.requires_grad for t in tensors):
        return False
    hidden, width = gate_up.shape[2], down.shape[2]
    return (hidden * 4) % 16 == 0 and (width * 4) % 16 == 0


def dispatch_grouped(
    x: torch.Tensor,
    gate_up: torch.Tensor,
    down: torch.Tensor,
    experts: torch.Tensor,
    weights: torch.Tensor,
) -> torch.Tensor:
    """The sorted scheme with the per-expert loop moved into one kernel call
    per projection: ``torch._grouped_mm`` multiplies consecutive row groups
    (one per expert, ending at the cumulative counts) by their own expert
    matrix. Same products in the same order, so the same result, and no
    host sync; where the kernel does not apply it *is*
    :func:`dispatch_sorted`. Chapter: "Expert architecture"."""
    if not grouped_mm_applies(x, gate_up, down, weights):
        return dispatch_sorted(x, gate_up, down, experts, weights)
    token, order, counts = _sort_by_expert(experts, gate_up.shape[0])
    ends = torch.cumsum(counts, 0).to(torch.int32)
    both = torch._grouped_mm(x[token], gate_up.transpose(1, 2), offs=ends)
    gate, up = both.chunk(2, dim=-1)
    hidden = (gelu_tanh(gate) * up).contiguous()
    y = torch._grouped_mm(hidden, down.transpose(1, 2), offs=ends)
    y = y * weights.reshape(-1)[order, None]
    return torch.zeros_like(x).index_add_(0, token, y.to(x.dtype))


def transformers_dispatchers(
    num_experts: int, hidden: int, width: int
) -> dict[str, Callable[..., torch.Tensor]]:
    """transformers 5.24's own Gemma 4 experts (``Gemma4TextExperts``) as
    dispatchers with the signature above: ``"hf_eager"``, its loop over
    the experts that received tokens, and ``"hf_grouped_mm"``, its sorted
    grouped-GEMM path (the default), each selected with
    ``set_experts_implementation`` on a one-layer model. A call runs the
    weights it is given (no copy)."""
    from transformers import Gemma4TextConfig
    from transformers.models.gemma4.modeling_gemma4 import (
        Gemma4ForCausalLM as HFGemma4ForCausalLM,
    )

    config = Gemma4TextConfig(
        vocab_size=16,
        hidden_size=hidden,
        intermediate_size=16,
        moe_intermediate_size=width,
        num_experts=num_experts,
        top_k_experts=1,
        enable_moe_block=True,
        num_hidden_layers=1,
        num_attention_heads=1,
        num_key_value_heads=1,
        head_dim=16,
        global_head_dim=16,
        layer_types=["full_attention"],
        hidden_size_per_layer_input=0,
    )

    def wrap(implementation: str) -> Callable[..., torch.Tensor]:
        with torch.device("meta"):
            model = HFGemma4ForCausalLM(config)
        model.set_experts_implementation(implementation)
        module = model.model.layers[0].experts

        def dispatch(x, gate_up, down, experts, weights):
            module.gate_up_proj = torch.nn.Parameter(gate_up, False)
            module.down_proj = torch.nn.Parameter(down, False)
            return module(x, experts, weights)

        return dispatch

    return {
        "hf_eager": wrap("eager"),
        "hf_grouped_mm": wrap("grouped_mm"),
    }


DISPATCHERS: dict[str, Callable[..., torch.Tensor]] = {
    "token_loop": dispatch_token_loop,
    "expert_loop": dispatch_expert_loop,
    "sorted": dispatch_sorted,
    "grouped": dispatch_grouped,
}
