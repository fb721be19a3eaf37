"""Answers of chapter 04, "Router design"."""

from __future__ import annotations

import torch

from ...config import Gemma4Config
from ...moe import Gemma4Router
from ..exercises import Exact, SignificantDigits
from ..moe_training import biased_routing, load_balancing_loss, router_z_loss


def _collapsed_aux() -> float:
    """Switch loss of the 26B-A4B when every token picks the same 8 experts
    with probability 1/8 each."""
    config = Gemma4Config.from_preset("26b-a4b")
    E, k = config.num_experts, config.top_k_experts
    probs = torch.zeros(4, E, dtype=torch.float64)
    probs[:, :k] = 1 / k
    experts = torch.arange(k).expand(4, k)
    value = float(load_balancing_loss(probs, experts, E))
    return int(value) if value == int(value) else value


def _z_loss_of_constant_logits() -> float:
    return float(router_z_loss(torch.full((1, 128), 2.0)))


def _router_parameters() -> int:
    config = Gemma4Config.from_preset("26b-a4b")
    with torch.device("meta"):
        router = Gemma4Router(
            config.hidden_size, config.num_experts, config.top_k_experts
        )
    per_layer = sum(p.numel() for p in router.parameters())
    return per_layer * config.num_hidden_layers


ANSWERS = {
    "04.1": (_collapsed_aux, Exact()),
    "04.2": (_z_loss_of_constant_logits, SignificantDigits(3)),
    "04.3": (_router_parameters, Exact()),
}


def validate_biased_route(fn) -> bool:
    """Exercise 04.4: ``fn(x, router, bias)`` must return ``(weights,
    experts)`` as :func:`biased_routing` does, experts in the same order,
    for random routers, inputs and biases."""
    g = torch.Generator().manual_seed(404)
    for hidden, num_experts, k in ((16, 8, 2), (64, 16, 4), (32, 12, 1)):
        router = Gemma4Router(hidden, num_experts, k)
        with torch.no_grad():
            router.proj.weight.normal_(0.0, 1.0, generator=g)
            router.scale.uniform_(0.5, 1.5, generator=g)
            router.per_expert_scale.uniform_(0.5, 1.5, generator=g)
        x = 3.0 * torch.randn(10, hidden, generator=g)
        for spread in (0.0, 0.5, 5.0):
            bias = spread * torch.randn(num_experts, generator=g)
            with torch.no_grad():
                want = biased_routing(router, x, bias)
                try:
                    weights, experts = fn(x, router, bias)
                except Exception:
                    return False
            if not torch.equal(torch.as_tensor(experts), want.experts):
                return False
            if not torch.allclose(
                torch.as_tensor(weights).float(), want.weights, atol=1e-5
            ):
                return False
    return True
