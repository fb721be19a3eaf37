"""Routing statistics for the 26B-A4B mixture of experts, layer by layer, and
the dispatch benchmark. Chapters: "Expert architecture" (dispatch timing) and
"When MoE meets hybrid attention" (routing per layer).

Everything here reads what the routers decided (recorded with forward hooks)
and turns it into the numbers the figures draw: which expert each token went
to, how busy each expert is, and how often neighbouring tokens share experts
compared with chance.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from typing import Callable, Iterator, Mapping, Sequence

import torch

from ..moe import Gemma4Router, Routing


# ----------------------------------------------------------- recording routing
def routers(model: torch.nn.Module) -> list[Gemma4Router]:
    """Every router of a model, in layer order (empty for a dense model)."""
    return [
        module
        for module in model.modules()
        if isinstance(module, Gemma4Router)
    ]


@contextmanager
def recording(model: torch.nn.Module) -> Iterator[list[list[Routing]]]:
    """Record every router's decisions while the block runs, through forward
    hooks: one list per router (in layer order) that collects a detached
    :class:`~gemma4_lite.moe.Routing` per call. Recording never changes what
    the model computes, and the hooks are removed afterwards.
    """
    found = routers(model)
    records: list[list[Routing]] = [[] for _ in found]

    def keeper(store: list[Routing]):
        def hook(module, args, output):
            store.append(Routing(*(t.detach() for t in output)))

        return hook

    handles = [
        r.register_forward_hook(keeper(s)) for r, s in zip(found, records)
    ]
    try:
        yield records
    finally:
        for handle in handles:
            handle.remove()


@torch.no_grad()
def routing_per_layer(
    model: torch.nn.Module, input_ids: torch.Tensor
) -> list[Routing]:
    """Run one forward pass and return each layer's
    :class:`~gemma4_lite.moe.Routing`.

    The router sees the batch flattened, so every tensor has
    ``batch * sequence`` rows, sequence-major within each batch row (row
    ``b * S + t`` is token ``t`` of sequence ``b``).
    """
    with recording(model) as found:
        if not found:
            raise ValueError(
                "the model has no MoE routers (enable_moe_block is False)"
            )
        model(input_ids)
    if any(len(calls) != 1 for calls in found):
        raise RuntimeError(
            "each router should run exactly once per forward pass"
        )
    return [calls[0] for calls in found]


# ------------------------------------------------------------------ statistics
def assignment_map(routing: Routing, num_experts: int) -> torch.Tensor:
    """The token-to-expert map [N, E]: each token's combination weight in the
    columns of its top-k experts and zero elsewhere (the ``per_expert_scale``
    is included, as in the weights the experts are mixed with)."""
    weights = torch.zeros(
        routing.experts.shape[0], num_experts, dtype=routing.weights.dtype
    )
    return weights.scatter(1, routing.experts, routing.weights)


def expert_usage(
    routings: Sequence[Routing], num_experts: int
) -> torch.Tensor:
    """[layers, E]: the share of each layer's routing assignments that went to
    each expert (rows sum to 1). A perfectly balanced layer has 1/E everywhere.
    """
    rows = [
        torch.bincount(r.experts.reshape(-1), minlength=num_experts).double()
        for r in routings
    ]
    usage = torch.stack(rows)
    return usage / usage.sum(dim=1, keepdim=True)


def set_overlap(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """For rows of expert ids ``a`` [N, k] and ``b`` [N, k] (no repeats within
    a row, as top-k gives): how many experts row i of ``a`` shares with row i
    of ``b``."""
    return (a[:, :, None] == b[:, None, :]).sum(dim=(1, 2))


def adjacent_overlap(
    experts: torch.Tensor, sequence_length: int
) -> torch.Tensor:
    """Shared experts between each token and the next one in the same sequence.

    ``experts`` is [B * S, k] as recorded; returns [B * (S - 1)] counts
    (0 to k)."""
    k = experts.shape[1]
    per_sequence = experts.reshape(-1, sequence_length, k)
    left = per_sequence[:, :-1].reshape(-1, k)
    right = per_sequence[:, 1:].reshape(-1, k)
    return set_overlap(left, right)


def chance_overlap(top_k: int, num_experts: int) -> float:
    """Expected number of experts two *independent, uniformly random* top-k
    sets share: k^2 / E.

    Each of the k experts of the first set lies in the second with probability
    k / E (the second set is k of E experts, all equally likely), and
    expectation adds over the k experts."""
    return top_k * top_k / num_experts


def load_adjusted_chance(usage: torch.Tensor, top_k: int) -> float:
    """Expected shared experts of two tokens routed *independently* but with
    the layer's actual load: if expert e receives a share u_e of the
    assignments, a token picks it with probability k * u_e, so two independent
    tokens share sum_e (k u_e)^2 = k^2 sum_e u_e^2 experts (expectation adds
    over experts, and independence multiplies the two inclusion probabilities).
    It equals k^2 / E when the load is balanced (u_e = 1/E) and is larger
    otherwise, by Cauchy-Schwarz."""
    return float(top_k * top_k * (usage.double() ** 2).sum())


def any_pair_overlap(experts: torch.Tensor, sequence_length: int) -> float:
    """Mean shared experts over all pairs of distinct positions of the same
    sequence: the empirical chance level of a layer, unaffected by which tokens
    are neighbours."""
    k = experts.shape[1]
    total, pairs = 0.0, 0
    first, second = torch.triu_indices(
        sequence_length, sequence_length, offset=1
    )
    for seq in experts.reshape(-1, sequence_length, k):
        total += set_overlap(seq[first], seq[second]).double().sum().item()
        pairs += len(first)
    return total / pairs


def same_token_overlap(
    experts: torch.Tensor, token_ids: torch.Tensor
) -> float:
    """Mean number of shared experts over all pairs of *different positions
    holding the same token id* (``token_ids`` flattened like ``experts``). NaN
    when no token repeats."""
    ids = token_ids.reshape(-1)
    first, second = torch.triu_indices(len(ids), len(ids), offset=1)
    same = ids[first] == ids[second]
    if not bool(same.any()):
        return float("nan")
    return (
        set_overlap(experts[first[same]], experts[second[same]])
        .double()
        .mean()
        .item()
    )


def overlap_table(
    routings: Sequence[Routing], input_ids: torch.Tensor
) -> list[dict[str, float]]:
    """Per layer, mean shared experts of: neighbouring tokens (``adjacent``),
    two positions holding the same token id (``same_token``), any two positions
    (``any_pair``); and the two chance levels, ``chance`` = k^2/E for balanced
    independent routing and ``load_chance`` for independent routing with the
    layer's measured load (:func:`load_adjusted_chance`)."""
    sequence_length = input_ids.shape[1]
    rows = []
    for routing in routings:
        k, num_experts = routing.experts.shape[1], routing.probs.shape[1]
        usage = expert_usage([routing], num_experts)[0]
        rows.append(
            {
                "adjacent": adjacent_overlap(routing.experts, sequence_length)
                .double()
                .mean()
                .item(),
                "same_token": same_token_overlap(routing.experts, input_ids),
                "any_pair": any_pair_overlap(routing.experts, sequence_length),
                "chance": chance_overlap(k, num_experts),
                "load_chance": load_adjusted_chance(usage, k),
            }
        )
    return rows


# ------------------------------------------------------------- dispatch timing
def random_routing(
    n: int,
    hidden: int,
    num_experts: int,
    top_k: int,
    generator: torch.Generator,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``n`` random tokens [n, hidden] with random top-k routing: the chosen
    experts [n, k] and their weights [n, k] (summing to one per token)."""
    x = torch.randn(n, hidden, generator=generator)
    probs = torch.rand(n, num_experts, generator=generator).softmax(dim=-1)
    top_p, experts = torch.topk(probs, top_k, dim=-1)
    return x, experts, top_p / top_p.sum(dim=-1, keepdim=True)


def time_dispatchers(
    dispatchers: Mapping[str, Callable[..., torch.Tensor]],
    gate_up: torch.Tensor,
    down: torch.Tensor,
    token_counts: Sequence[int],
    top_k: int,
    *,
    repeats: int = 5,
    seed: int = 0,
    threads: int | None = 1,
    budget_seconds: float = 2.0,
) -> dict[int, dict[str, list[float]]]:
    """Wall-clock seconds of each dispatcher, ``repeats`` runs each after one
    warm-up call, on the routing of :func:`random_routing` (seeded: the
    same tokens and experts for every scheme).

    Schemes are run interleaved (one call each, round after round) so that a
    busy machine slows them alike; ``threads`` pins torch's thread count for
    the measurement (and restores it). A scheme whose warm-up call takes
    longer than ``budget_seconds`` is left out of that token count.
    """
    previous = torch.get_num_threads()
    if threads is not None:
        torch.set_num_threads(threads)
    try:
        gen = torch.Generator().manual_seed(seed)
        num_experts, hidden = gate_up.shape[0], gate_up.shape[2]
        results: dict[int, dict[str, list[float]]] = {}
        with torch.no_grad():
            for n in token_counts:
                args = random_routing(n, hidden, num_experts, top_k, gen)
                x, experts, weights = args
                times: dict[str, list[float]] = {}
                for name, fn in dispatchers.items():  # warm-up and budget
                    start = time.perf_counter()
                    fn(x, gate_up, down, experts, weights)
                    if time.perf_counter() - start <= budget_seconds:
                        times[name] = []
                for _ in range(repeats):
                    for name in times:
                        start = time.perf_counter()
                        dispatchers[name](x, gate_up, down, experts, weights)
                        times[name].append(time.perf_counter() - start)
                results[n] = times
        return results
    finally:
        torch.set_num_threads(previous)
