"""The tiny MoE training experiment of the chapter "Router design"
(``gemma4_lite.book.moe_training``).
"""

from __future__ import annotations

import pytest
import torch

from gemma4_lite.book.moe_training import (
    TinyMoE,
    TrainConfig,
    TrainResult,
    biased_routing,
    compare_balancing,
    make_routing_task,
    train_tiny_moe,
)
from gemma4_lite.moe import Gemma4Router

SEEDS = (0, 1, 2)
SHORT = dict(steps=100)  # about a second per run on one core


@pytest.fixture(scope="module")
def runs() -> dict[int, dict[str, TrainResult]]:
    return {seed: compare_balancing(seed, **SHORT) for seed in SEEDS}


# ------------------------------------------------------------- building blocks
def test_task_targets_are_the_cluster_maps_of_the_local_part():
    task = make_routing_task(8, num_clusters=3, shared=2.0, seed=5)
    x, target, cluster = task.sample(7, torch.Generator().manual_seed(0))
    for n in range(7):  # naive: one token at a time
        expected = task.maps[cluster[n]] @ (x[n] - task.common)
        torch.testing.assert_close(target[n], expected, rtol=1e-5, atol=1e-5)


def test_common_direction_has_the_requested_length():
    task = make_routing_task(16, shared=3.0, seed=0)
    assert task.common.norm().item() == pytest.approx(3.0 * 16**0.5, rel=1e-5)
    assert task.num_clusters == 16


def _random_router(seed: int) -> Gemma4Router:
    """A router with random projection, scale and per-expert scale (their init
    value 1 hides bugs).
    """
    torch.manual_seed(seed)
    router = Gemma4Router(16, num_experts=8, top_k=3)
    with torch.no_grad():
        router.proj.weight.normal_()
        router.scale.uniform_(0.5, 1.5)
        router.per_expert_scale.uniform_(0.5, 1.5)
    return router


def test_bias_changes_the_choice_but_not_the_weights():
    # per_expert_scale random: at its init value 1 it would hide a missing
    # factor
    router = _random_router(1)
    x = torch.randn(6, 16)
    with torch.no_grad():
        plain = router(x)
        # no bias, or one equal for every expert, changes no choice: the
        # router's own routing
        for same in (torch.zeros(8), torch.full((8,), 3.0)):
            unbiased = biased_routing(router, x, same)
            assert torch.equal(unbiased.experts, plain.experts)
            torch.testing.assert_close(unbiased.weights, plain.weights)
            torch.testing.assert_close(unbiased.probs, plain.probs)
        bias = torch.zeros(8)
        bias[5] = 100.0  # expert 5 now wins every selection
        routing = biased_routing(router, x, bias)
    assert (routing.experts == 5).any(dim=-1).all()
    assert not (plain.experts == 5).any(dim=-1).all()
    # The weights are the router's *unbiased* probabilities of the chosen
    # experts, renormalised, times their per-expert scale (as in
    # Gemma4Router.forward), worked out token by token.
    torch.testing.assert_close(routing.probs, plain.probs)
    scale = router.per_expert_scale.detach()
    for n in range(6):
        chosen = routing.experts[n].tolist()
        total = sum(plain.probs[n, e] for e in chosen)
        expected = [plain.probs[n, e] / total * scale[e] for e in chosen]
        torch.testing.assert_close(routing.weights[n], torch.stack(expected))


def test_tiny_moe_routes_the_raw_input_and_runs_experts_on_the_normed_one():
    torch.manual_seed(2)
    model = TinyMoE(64, 16, 4, 32)
    with torch.no_grad():
        model.pre_norm.weight.uniform_(0.5, 1.5)
        model.router.per_expert_scale.uniform_(0.5, 1.5)
    x = torch.randn(5, 64)
    with torch.no_grad():
        y, routing = model(x)
        plain = model.router(x)  # the router reads x itself
    assert torch.equal(routing.experts, plain.experts)
    torch.testing.assert_close(routing.weights, plain.weights)
    assert y.shape == (5, 64) and routing.experts.shape == (5, 4)
    # each token by hand, in float64: the chosen experts' GeGLU on
    # RMSNorm(x) * w, mixed with the routing weights
    xd = x.double()
    normed = (
        xd
        / (xd.pow(2).mean(-1, keepdim=True) + 1e-6).sqrt()
        * model.pre_norm.weight.detach().double()
    )
    gate_up = model.experts.gate_up_proj.detach().double()
    down = model.experts.down_proj.detach().double()
    for n in range(5):
        expected = torch.zeros(64, dtype=torch.float64)
        for e, w in zip(routing.experts[n].tolist(), routing.weights[n]):
            gate, up = (gate_up[e] @ normed[n]).chunk(2)
            hidden = torch.nn.functional.gelu(gate, approximate="tanh") * up
            expected += w.double() * (down[e] @ hidden)
        torch.testing.assert_close(
            y[n].double(), expected, rtol=1e-5, atol=1e-5
        )


def test_bad_balancing_mode_is_rejected():
    with pytest.raises(ValueError, match="balance"):
        TrainConfig(balance="capacity")


def test_training_is_deterministic():
    a = train_tiny_moe(TrainConfig(balance="aux", steps=5))
    b = train_tiny_moe(TrainConfig(balance="aux", steps=5))
    assert a.task_loss == b.task_loss
    assert all(torch.equal(x, y) for x, y in zip(a.load, b.load))


def test_imbalance_metrics_on_a_hand_made_history():
    result = TrainResult(TrainConfig())
    result.load = [torch.tensor([8, 0, 0, 0]), torch.tensor([4, 4, 0, 0])]
    # totals (12, 4, 0, 0), mean 4: shares (3, 1, 0, 0)
    assert result.load_share(last=2).tolist() == [3.0, 1.0, 0.0, 0.0]
    assert result.imbalance(last=2) == 3.0
    assert result.unused_experts(last=2) == 2
    assert result.imbalance_curve() == [4.0, 2.0]


# -------------------------------------------------------------- the experiment
@pytest.mark.parametrize("seed", SEEDS)
def test_without_balancing_routing_collapses(runs, seed):
    none = runs[seed]["none"]
    # E/k = 16/4 = 4 is total collapse: the busiest expert gets every token.
    assert none.imbalance() >= 3.5
    assert none.unused_experts() >= 5


@pytest.mark.parametrize("seed", SEEDS)
@pytest.mark.parametrize("mode", ["aux", "bias"])
def test_with_balancing_every_expert_works(runs, seed, mode):
    balanced = runs[seed][mode]
    assert balanced.imbalance() <= 2.0
    assert balanced.unused_experts() == 0


@pytest.mark.parametrize("seed", SEEDS)
def test_all_modes_start_from_the_same_collapsed_routing(runs, seed):
    # Same task, weights and batches: the first step's routing is identical and
    # already lopsided.
    first = [runs[seed][mode].load[0] for mode in ("none", "aux", "bias")]
    assert torch.equal(first[0], first[1]) and torch.equal(first[0], first[2])
    assert float(first[0].max() / first[0].double().mean()) >= 3.0


def test_the_shared_direction_is_what_causes_the_collapse():
    # Control: the same unbalanced run on a task without the common direction
    # keeps every expert busy.
    control = train_tiny_moe(TrainConfig(balance="none", shared=0.0, **SHORT))
    assert control.unused_experts() == 0
    assert control.imbalance() < 2.5


# -------------------------------------------------------------- figure helpers
def test_rescaled_routing_at_scale_one_is_the_router():
    from gemma4_lite.book.plots.routing import (
        rescaled_routing,
        scatter_weights,
    )

    router = _random_router(3)
    with torch.no_grad():
        routing = router(torch.randn(5, 16))
    probs, dense = rescaled_routing(
        routing.logits, 3, 1.0, router.per_expert_scale.detach()
    )
    torch.testing.assert_close(probs, routing.probs)
    torch.testing.assert_close(
        dense, scatter_weights(routing.experts, routing.weights, 8)
    )
    # A sharper softmax keeps the choice (same experts) and concentrates the
    # weight on the best one.
    _, sharp = rescaled_routing(routing.logits, 3, 4.0)
    assert torch.equal(sharp > 0, dense > 0)
    assert (
        sharp.max(-1).values
        >= (dense / dense.sum(-1, keepdim=True)).max(-1).values - 1e-6
    ).all()


def test_scatter_weights_by_hand():
    from gemma4_lite.book.plots.routing import scatter_weights

    dense = scatter_weights(
        torch.tensor([[2, 0]]), torch.tensor([[0.7, 0.3]]), 4
    )
    assert dense.tolist() == [
        [pytest.approx(0.3), 0.0, pytest.approx(0.7), 0.0]
    ]


def test_chapter_figures_draw(runs):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gemma4_lite.book.plots.routing import (
        plot_expert_load,
        plot_routing_grid,
        plot_routing_heatmaps,
        plot_training_curves,
    )

    router = Gemma4Router(16, num_experts=8, top_k=2)
    with torch.no_grad():
        routing = router(torch.randn(6, 16))
    for fig in (
        plot_routing_heatmaps(routing.probs, routing.experts, routing.weights),
        plot_routing_grid(routing.logits, (0.5, 2.0), (1, 2)),
        plot_expert_load(runs[0]),
        plot_training_curves(runs[0]),
    ):
        assert fig.axes
        plt.close(fig)


def test_capacity_mask_serves_by_rank_then_token():
    from gemma4_lite.book.answers.ch04 import capacity_mask

    experts = torch.tensor([[0, 1], [0, 2], [0, 1], [1, 0]])
    # Capacity 2: expert 0 takes the first choices of tokens 0 and 1 and
    # drops token 2's; expert 1 takes token 3's first choice, then token 0's
    # second, and is full when token 2's second choice comes.
    want = torch.tensor([[1, 1], [1, 1], [0, 0], [1, 0]], dtype=torch.bool)
    assert torch.equal(capacity_mask(experts, 2), want)
    assert not capacity_mask(experts, 0).any()


def test_exercise_04_4_validator_says_where_a_mask_differs():
    from gemma4_lite.book.answers.ch04 import (
        capacity_mask,
        validate_capacity_mask,
    )

    def token_major(experts, capacity):
        kept = torch.zeros(experts.shape, dtype=torch.bool)
        served = {}
        for token in range(experts.shape[0]):
            for slot in range(experts.shape[1]):
                e = int(experts[token, slot])
                if served.get(e, 0) < capacity:
                    served[e] = served.get(e, 0) + 1
                    kept[token, slot] = True
        return kept

    assert validate_capacity_mask(capacity_mask) is True
    message = validate_capacity_mask(token_major)
    assert "token" in message and "should be" in message
    assert "not a tensor" in validate_capacity_mask(lambda e, c: None)
