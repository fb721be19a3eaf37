"""Routing statistics (routing.py) and the per-layer token budget
(costs.layer_token_budget). Chapters: "Expert architecture" and "When MoE
meets hybrid attention"."""

import itertools

import pytest
import torch
from conftest import random_model

from gemma4_lite import Gemma4Config
from gemma4_lite.book.accounting import count_parameters
from gemma4_lite.book.costs import LAYER_PARTS, layer_token_budget
from gemma4_lite.book.dispatch import DISPATCHERS
from gemma4_lite.book.routing import (
    adjacent_overlap,
    any_pair_overlap,
    assignment_map,
    chance_overlap,
    expert_usage,
    load_adjusted_chance,
    overlap_table,
    random_routing,
    recording,
    routers,
    routing_per_layer,
    same_token_overlap,
    set_overlap,
    time_dispatchers,
)


# --------------------------------------------------------------- chance levels
def test_chance_overlap_is_the_exact_mean_over_all_pairs_of_subsets():
    for num_experts, k in ((5, 2), (6, 3), (7, 1), (4, 4)):
        subsets = [
            set(c) for c in itertools.combinations(range(num_experts), k)
        ]
        exact = (
            sum(len(a & b) for a in subsets for b in subsets)
            / len(subsets) ** 2
        )
        assert chance_overlap(k, num_experts) == pytest.approx(
            exact, abs=1e-12
        )


def test_chance_overlap_matches_random_top_k_of_128():
    gen = torch.Generator().manual_seed(0)
    a = torch.topk(torch.rand(20000, 128, generator=gen), 8).indices
    b = torch.topk(torch.rand(20000, 128, generator=gen), 8).indices
    assert set_overlap(a, b).double().mean().item() == pytest.approx(
        chance_overlap(8, 128), abs=0.02
    )
    assert chance_overlap(8, 128) == 0.5


def test_load_adjusted_chance_equals_enumeration_for_a_skewed_router():
    # Tokens pick one of these top-2 sets uniformly at random: expert 0 is in
    # every set (busy).
    sets = [(0, 1), (0, 2), (0, 3), (1, 2)]
    experts = torch.tensor(sets)
    usage = expert_usage([_routing(experts)], 4)[0]
    exact = (
        sum(len(set(a) & set(b)) for a in sets for b in sets) / len(sets) ** 2
    )
    assert load_adjusted_chance(usage, 2) == pytest.approx(exact)
    assert load_adjusted_chance(torch.full((4,), 0.25), 2) == pytest.approx(
        chance_overlap(2, 4)
    )
    assert exact > chance_overlap(2, 4)


def _routing(experts):
    from gemma4_lite.moe import Routing

    n, k = experts.shape
    num_experts = int(experts.max()) + 1
    weights = torch.full((n, k), 1.0 / k)
    return Routing(
        torch.zeros(n, num_experts),
        torch.full((n, num_experts), 1.0 / num_experts),
        weights,
        experts,
    )


# ---------------------------------------------------------- hand-made examples
def test_overlaps_on_a_hand_made_example():
    # two sequences of three tokens, k = 2
    experts = torch.tensor([[0, 1], [1, 2], [3, 0], [2, 3], [3, 2], [0, 1]])
    assert set_overlap(experts[:3], experts[3:]).tolist() == [0, 1, 1]
    assert adjacent_overlap(experts, 3).tolist() == [1, 0, 2, 0]
    # pairs within each sequence: (0,1)=1 (0,2)=1 (1,2)=0
    # and (0,1)=2 (0,2)=0 (1,2)=0
    assert any_pair_overlap(experts, 3) == pytest.approx(4 / 6)
    ids = torch.tensor(
        [[7, 8, 9], [9, 5, 7]]
    )  # token 7 at rows 0 and 5, token 9 at rows 2 and 3
    assert same_token_overlap(experts, ids) == pytest.approx((2 + 1) / 2)
    assert torch.isnan(
        torch.tensor(same_token_overlap(experts, torch.arange(6)))
    )


def test_usage_and_assignment_map():
    experts = torch.tensor([[0, 1], [1, 2], [1, 0]])
    usage = expert_usage([_routing(experts)], 4)
    assert usage.tolist() == [[2 / 6, 3 / 6, 1 / 6, 0.0]]
    routing = _routing(experts)._replace(
        weights=torch.tensor([[0.7, 0.3], [0.6, 0.4], [0.9, 0.1]])
    )
    expected = torch.tensor(
        [[0.7, 0.3, 0.0, 0.0], [0.0, 0.6, 0.4, 0.0], [0.1, 0.9, 0.0, 0.0]]
    )
    assert torch.equal(assignment_map(routing, 4), expected)


# ----------------------------------------------------------- recording a model
def test_routing_per_layer_is_what_each_router_sees():
    model = random_model("26b-a4b-tiny", seed=0)
    ids = torch.randint(
        3,
        model.config.vocab_size,
        (2, 11),
        generator=torch.Generator().manual_seed(1),
    )
    seen = []
    hooks = [
        layer.pre_feedforward_layernorm.register_forward_hook(
            lambda m, args, out: seen.append(args[0])
        )
        for layer in model.model.layers
    ]
    with torch.no_grad():
        plain = model(ids)
    for hook in hooks:
        hook.remove()
    recorded = routing_per_layer(model, ids)
    assert len(recorded) == model.config.num_hidden_layers
    for layer, residual, routing in zip(model.model.layers, seen, recorded):
        with torch.no_grad():
            direct = layer.router(residual.reshape(-1, residual.shape[-1]))
        assert routing.experts.shape == (22, model.config.top_k_experts)
        assert torch.equal(routing.experts, direct.experts)
        assert torch.equal(routing.weights, direct.weights)
    assert all(not r._forward_hooks for r in routers(model))  # hooks removed
    with torch.no_grad():
        assert torch.equal(model(ids), plain)  # recording changes nothing
    table = overlap_table(recorded, ids)
    assert len(table) == model.config.num_hidden_layers
    assert all(
        0 <= row["adjacent"] <= model.config.top_k_experts for row in table
    )
    assert all(row["load_chance"] >= row["chance"] - 1e-12 for row in table)


def test_recording_removes_its_hooks_even_after_an_error():
    model = random_model("26b-a4b-tiny", seed=2)
    with pytest.raises(RuntimeError):
        with recording(model):
            raise RuntimeError("boom")
    assert all(not r._forward_hooks for r in routers(model))


def test_dense_model_has_no_routing():
    with pytest.raises(ValueError, match="no MoE routers"):
        routing_per_layer(random_model("dense-tiny"), torch.tensor([[3, 4]]))


# ---------------------------------------------------------------- token budget
@pytest.mark.parametrize(
    "name", ["26b-a4b", "26b-a4b-tiny", "e2b", "31b", "e4b-tiny"]
)
def test_layer_budget_adds_up_to_count_parameters(name):
    config = Gemma4Config.from_preset(name)
    counts = count_parameters(config)
    rows = [
        layer_token_budget(config, i) for i in range(config.num_hidden_layers)
    ]
    outside = (
        counts["embedding"]
        + counts["per_layer_embedding_table"]
        + counts["per_layer_embedding_other"]
        + config.hidden_size
    )
    assert sum(r["total"]["stored"] for r in rows) + outside == counts["total"]
    assert (
        sum(r["total"]["active"] for r in rows) + outside
        == counts["active_per_token"]
    )
    for r in rows:
        assert set(r) == set(LAYER_PARTS) | {"total"}


def test_layer_budget_hand_values_for_26b_a4b():
    config = Gemma4Config.from_preset("26b-a4b")
    h, width, k, e = 2816, 704, 8, 128
    sliding, full = (
        layer_token_budget(config, 0, 4096),
        layer_token_budget(config, 5, 4096),
    )
    assert sliding["experts"]["stored"] == 3 * e * width * h
    assert sliding["experts"]["active"] == 3 * k * width * h
    assert sliding["experts"]["flops"] == 2 * 3 * k * width * h
    assert sliding["mlp"]["flops"] == 2 * 3 * 2112 * h
    assert sliding["router"]["flops"] == 2 * e * h
    # projections: sliding q,k,v,o = 16*256, 8*256, 8*256, 16*256;
    # global (K=V) q,k,o = 16*512, 2*512, 16*512
    assert sliding["attention"]["flops"] == 2 * h * 256 * (16 + 8 + 8 + 16)
    assert full["attention"]["flops"] == 2 * h * 512 * (16 + 2 + 16)
    # scores: a sliding query sees 1024 keys, a global one all 4096
    assert sliding["attention_scores"]["flops"] == 4 * 16 * 256 * 1024
    assert full["attention_scores"]["flops"] == 4 * 16 * 512 * 4096
    assert (
        layer_token_budget(config, 0, 100)["attention_scores"]["flops"]
        == 4 * 16 * 256 * 100
    )


def test_dense_layer_budget_has_no_experts():
    rows = layer_token_budget(Gemma4Config.from_preset("31b"), 0)
    assert rows["experts"] == {"stored": 0, "active": 0, "flops": 0}
    assert rows["router"] == {"stored": 0, "active": 0, "flops": 0}
    assert rows["total"]["stored"] == rows["total"]["active"]


# --------------------------------------------------------------- timing helper
def test_time_dispatchers_reports_every_scheme_and_restores_threads():
    threads = torch.get_num_threads()
    gate_up, down = torch.randn(8, 16, 16), torch.randn(8, 16, 8)
    fns = {name: DISPATCHERS[name] for name in ("sorted", "grouped")}
    result = time_dispatchers(fns, gate_up, down, [1, 4], top_k=2, repeats=2)
    assert list(result) == [1, 4]
    assert all(
        set(r) == set(fns)
        and all(len(t) == 2 and min(t) > 0 for t in r.values())
        for r in result.values()
    )
    assert torch.get_num_threads() == threads


def test_random_routing_is_seeded_and_normalised():
    a = random_routing(5, 8, 16, 4, torch.Generator().manual_seed(0))
    b = random_routing(5, 8, 16, 4, torch.Generator().manual_seed(0))
    assert all(torch.equal(u, v) for u, v in zip(a, b))
    x, experts, weights = a
    assert x.shape == (5, 8) and experts.shape == weights.shape == (5, 4)
    assert torch.allclose(weights.sum(-1), torch.ones(5))
    assert all(len(set(row)) == 4 for row in experts.tolist())
