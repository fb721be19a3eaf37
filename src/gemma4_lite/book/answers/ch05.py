"""Answers of chapter 5, "Expert architecture"."""

from __future__ import annotations

import torch
import torch.fx

from ...config import Gemma4Config
from ...moe import dispatch_sorted
from ..costs import layer_token_budget
from ..exercises import Decimals, Exact, call_reader


def _batching_saving_at_64() -> float:
    """How many times fewer expert bytes each token costs when 64 decoding
    sequences share a step instead of one decoding alone (uniformly random
    routing, expected distinct experts)."""
    c = Gemma4Config.from_preset("26b-a4b")
    E, k, n = c.num_experts, c.top_k_experts, 64
    used = E * (1 - (1 - k / E) ** n)
    return k / (used / n)


def _tokens_to_wake_half_the_experts() -> int:
    """The smallest batch of decoding tokens for which one 26B-A4B layer
    is expected to run at least half of its experts, with uniformly random
    routing: E (1 - (1 - k/E)^N) >= E / 2."""
    c = Gemma4Config.from_preset("26b-a4b")
    E, k = c.num_experts, c.top_k_experts
    n = 1
    while E * (1 - (1 - k / E) ** n) < E / 2:
        n += 1
    return n


def _flops_ratio_top6_width1024() -> float:
    c = Gemma4Config.from_preset("26b-a4b").replace(
        top_k_experts=6, moe_intermediate_size=1024
    )
    rows = layer_token_budget(c, c.sliding_layers[0])
    return rows["experts"]["flops"] / rows["mlp"]["flops"]


ANSWERS = {
    "05.1": (_batching_saving_at_64, Decimals(2)),
    "05.2": (_tokens_to_wake_half_the_experts, Exact()),
    "05.3": (_flops_ratio_top6_width1024, Decimals(2)),
}


def validate_dispatch(fn) -> bool | str:
    """Exercise 5.4: ``fn(x, gate_up, down, experts, weights)`` must give
    the package's result (to fp32 rounding) on random layers, including
    experts that receive no token, k = 1 and a single token, without a
    Python loop or branch that depends on the routing: ``torch.fx`` must
    be able to trace it, as a compiled decoding step needs. Returns True,
    or where the reader's version differs."""
    g = torch.Generator().manual_seed(505)
    cases = ((7, 8, 2), (1, 16, 4), (12, 6, 1), (5, 4, 4))
    for n, num_experts, k in cases:
        hidden, width = 16, 8
        gate_up = torch.randn(num_experts, 2 * width, hidden, generator=g)
        down = torch.randn(num_experts, hidden, width, generator=g)
        x = torch.randn(n, hidden, generator=g)
        scores = torch.rand(n, num_experts, generator=g)
        top_p, experts = torch.topk(scores.softmax(-1), k, dim=-1)
        weights = top_p / top_p.sum(-1, keepdim=True)
        where = f"{n} tokens, top-{k} of {num_experts} experts"
        with torch.no_grad():
            want = dispatch_sorted(x, gate_up, down, experts, weights)
            got, problem = call_reader(
                where, fn, x, gate_up, down, experts, weights, like=want
            )
        if problem:
            return problem
        if not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
            diff = (got - want).abs()
            token = int(diff.amax(dim=1).argmax())
            return (
                f"{where}: token {token} (experts "
                f"{experts[token].tolist()}) differs by up to "
                f"{diff[token].max().item():.3g}"
            )
    try:
        torch.fx.symbolic_trace(fn)
    except Exception:
        return (
            "the values are right, but the function loops or branches in "
            "Python on the routing (torch.fx cannot trace it); the exercise "
            "asks for a version without such a loop"
        )
    return True
