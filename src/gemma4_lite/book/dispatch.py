"""The two obvious ways to send tokens to experts, kept beside the package's
exact schemes so "Expert architecture" can time and compare all four, and
transformers' own Gemma 4 experts wrapped with the same signature.
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
