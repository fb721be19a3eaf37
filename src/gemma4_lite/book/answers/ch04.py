"""Answers of chapter 4, "Router design"."""

from __future__ import annotations

import torch

from ...config import Gemma4Config
from ...moe import Gemma4Router
from ..exercises import Exact, SignificantDigits, call_reader
from ..moe_training import load_balancing_loss, router_z_loss


def _two_camps_aux() -> float:
    """Switch loss of the 26B-A4B when half the tokens pick experts 0-7 and
    the other half experts 8-15, each token with probability 1/8 on each of
    its 8 experts and 0 elsewhere."""
    config = Gemma4Config.from_preset("26b-a4b")
    E, k = config.num_experts, config.top_k_experts
    probs = torch.zeros(4, E, dtype=torch.float64)
    probs[:2, :k] = 1 / k
    probs[2:, k : 2 * k] = 1 / k
    experts = torch.cat(
        [torch.arange(k).expand(2, k), torch.arange(k, 2 * k).expand(2, k)]
    )
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
    "04.1": (_two_camps_aux, Exact()),
    "04.2": (_z_loss_of_constant_logits, SignificantDigits(3)),
    "04.3": (_router_parameters, Exact()),
}


def capacity_mask(experts: torch.Tensor, capacity: int) -> torch.Tensor:
    """Which routing assignments an expert capacity keeps (exercise 4.4).

    ``experts`` [N, k] lists each token's experts best first. Assignments
    are served by rank, then by token: every token's first choice before
    any token's second choice, tokens in order within a rank. An expert
    keeps the first ``capacity`` assignments it is served and drops the
    rest. Returns a boolean [N, k] mask of the kept assignments.
    """
    kept = torch.zeros(experts.shape, dtype=torch.bool)
    served: dict[int, int] = {}
    for slot in range(experts.shape[1]):
        for token in range(experts.shape[0]):
            e = int(experts[token, slot])
            if served.get(e, 0) < capacity:
                served[e] = served.get(e, 0) + 1
                kept[token, slot] = True
    return kept


def validate_capacity_mask(fn) -> bool | str:
    """Exercise 4.4: ``fn(experts, capacity)`` must return the boolean
    [N, k] mask of :func:`capacity_mask` on random routings (and on one
    where every token picks the same experts). Returns True, or where the
    reader's mask differs."""
    g = torch.Generator().manual_seed(404)
    cases = []
    for n, num_experts, k, capacity in (
        (12, 8, 2, 3),
        (20, 16, 4, 5),
        (9, 6, 1, 1),
        (16, 8, 2, 0),
    ):
        scores = torch.rand(n, num_experts, generator=g)
        cases.append((scores.topk(k, dim=-1).indices, capacity))
    cases.append((torch.tensor([[2, 0, 1]] * 6), 4))
    for experts, capacity in cases:
        n, k = experts.shape
        where = f"{n} tokens, top-{k}, capacity {capacity}"
        want = capacity_mask(experts, capacity)
        got, problem = call_reader(
            where, fn, experts.clone(), capacity, like=want
        )
        if problem:
            return problem
        wrong = (got.bool() != want).nonzero()
        if len(wrong):
            token, slot = wrong[0].tolist()
            return (
                f"{where}: token {token}, choice {slot} (expert "
                f"{int(experts[token, slot])}) should be "
                f"{'kept' if want[token, slot] else 'dropped'}; "
                f"{len(wrong)} assignments differ"
            )
    return True
