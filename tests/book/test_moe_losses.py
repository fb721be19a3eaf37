"""The MoE training losses of ``gemma4_lite.moe`` against values worked out by
hand.

``load_balancing_loss(probs, experts, E) = E * sum_e f_e * P_e`` with ``f_e``
the fraction of the N*k routing assignments that went to expert e and ``P_e``
the mean router probability of e (Switch Transformer).
``router_z_loss(logits) = mean_tokens(logsumexp(logits)^2)`` (ST-MoE).
Chapter: "Router design".
"""

from __future__ import annotations

import math

import pytest
import torch

from gemma4_lite.book.moe_training import (
    expert_load,
    load_balancing_loss,
    router_z_loss,
)
from gemma4_lite.moe import Gemma4Router


# -------------------------------------------------------------- balancing loss
def test_uniform_routing_gives_exactly_one():
    # Every expert gets the same share f_e = 1/E of the N*k assignments and
    # the same mean probability P_e = 1/E: loss = E * E * (1/E * 1/E) = 1.
    # E = 4, k = 1: four tokens, one per expert.
    probs = torch.full((4, 4), 0.25)
    experts = torch.tensor([[0], [1], [2], [3]])
    assert load_balancing_loss(probs, experts, 4).item() == 1.0
    # E = 4, k = 2: two tokens choosing {0, 1} and {2, 3}, each expert 1 of
    # the 4 assignments (the loss divides the counts by N*k, not by N).
    probs = torch.full((2, 4), 0.25)
    experts = torch.tensor([[0, 1], [2, 3]])
    assert load_balancing_loss(probs, experts, 4).item() == 1.0


def test_hand_computed_top1():
    # E = 3, k = 1. Token 0 -> expert 0, token 1 -> expert 1.
    # f = (1/2, 1/2, 0); P = mean of the rows = (0.3, 0.45, 0.25).
    # loss = 3 * (0.5 * 0.3 + 0.5 * 0.45 + 0 * 0.25) = 3 * 0.375 = 1.125.
    probs = torch.tensor([[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]])
    experts = torch.tensor([[0], [1]])
    assert load_balancing_loss(probs, experts, 3).item() == pytest.approx(
        1.125, abs=1e-6
    )


def test_hand_computed_top2():
    # E = 4, k = 2. Assignments: token 0 -> {0, 1}, token 1 -> {0, 2};
    # counts (2, 1, 1, 0) of 4.
    # f = (0.5, 0.25, 0.25, 0);
    # P = ((0.4+0.5)/2, (0.3+0.1)/2, (0.2+0.3)/2, (0.1+0.1)/2)
    #   = (0.45, 0.2, 0.25, 0.1).
    # sum f*P = 0.225 + 0.05 + 0.0625 + 0 = 0.3375; loss = 4 * 0.3375 = 1.35.
    probs = torch.tensor([[0.4, 0.3, 0.2, 0.1], [0.5, 0.1, 0.3, 0.1]])
    experts = torch.tensor([[0, 1], [0, 2]])
    assert load_balancing_loss(probs, experts, 4).item() == pytest.approx(
        1.35, abs=1e-6
    )


def test_collapse_onto_one_expert_gives_E_times_its_mean_probability():
    # E = 4, k = 1, all three tokens go to expert 2: f = (0, 0, 1, 0),
    # so loss = 4 * P_2.
    # P_2 = (0.6 + 0.5 + 0.7) / 3 = 0.6, loss = 2.4.
    probs = torch.tensor(
        [[0.1, 0.2, 0.6, 0.1], [0.2, 0.1, 0.5, 0.2], [0.0, 0.1, 0.7, 0.2]]
    )
    experts = torch.tensor([[2], [2], [2]])
    assert load_balancing_loss(probs, experts, 4).item() == pytest.approx(
        4 * 0.6, abs=1e-6
    )


def test_full_topk_collapse_reaches_E_over_k():
    # E = 16, k = 4, every token picks experts 0..3 and puts probability 1/4
    # on each: f = 1/4 on four experts, P = 1/4 on the same four,
    # loss = 16 * 4 * (1/4 * 1/4) = 16 / 4 = 4.
    probs = torch.zeros(5, 16)
    probs[:, :4] = 0.25
    experts = torch.arange(4).repeat(5, 1)
    assert load_balancing_loss(probs, experts, 16).item() == pytest.approx(
        4.0, abs=1e-6
    )


def test_gradient_flows_only_through_probs():
    # d loss / d probs[n, e] = E * f_e / N: the routing fractions act as
    # constants. Same numbers as test_hand_computed_top1: E = 3, N = 2,
    # f = (1/2, 1/2, 0) -> gradient (0.75, 0.75, 0) per row.
    probs = torch.tensor(
        [[0.5, 0.3, 0.2], [0.1, 0.6, 0.3]], requires_grad=True
    )
    experts = torch.tensor([[0], [1]])
    load_balancing_loss(probs, experts, 3).backward()
    expected = torch.tensor([[0.75, 0.75, 0.0], [0.75, 0.75, 0.0]])
    torch.testing.assert_close(probs.grad, expected)


def test_balancing_gradient_reaches_experts_nobody_chose():
    # Through the full softmax, P_e depends on every logit, so even an expert
    # that received no token gets a gradient on its router row; the
    # renormalised top-k weights alone would give it none.
    torch.manual_seed(0)
    router = Gemma4Router(8, num_experts=6, top_k=2)
    x = torch.randn(5, 8)
    routing = router(x)
    unused = sorted(set(range(6)) - set(routing.experts.flatten().tolist()))
    assert unused, "seed should leave at least one expert unchosen"
    load_balancing_loss(routing.probs, routing.experts, 6).backward()
    aux_grad = router.proj.weight.grad[unused].abs().sum()
    router.zero_grad()
    routing = router(x)
    routing.weights.pow(
        2
    ).sum().backward()  # any loss that only sees the chosen experts' weights
    task_grad = router.proj.weight.grad[unused].abs().sum()
    assert aux_grad > 1e-3
    assert (
        task_grad < 1e-6 * aux_grad
    )  # zero up to float rounding in the softmax Jacobian


def test_batched_probs_give_the_same_loss_as_flat():
    # A router applied to [B, S, H] returns [B, S, E] probabilities; the loss
    # must average over all B*S tokens.
    torch.manual_seed(1)
    probs = torch.softmax(torch.randn(2, 3, 5), dim=-1)
    experts = torch.topk(probs, 2, dim=-1).indices
    flat = load_balancing_loss(probs.reshape(6, 5), experts.reshape(6, 2), 5)
    torch.testing.assert_close(load_balancing_loss(probs, experts, 5), flat)


def test_expert_load_counts_assignments():
    experts = torch.tensor([[0, 1], [0, 2], [3, 0]])
    assert expert_load(experts, 5).tolist() == [3, 1, 1, 1, 0]


# ---------------------------------------------------------------------- z-loss
def test_z_loss_of_zero_logits_is_log_E_squared():
    # logsumexp of E zeros = log(E * e^0) = log E, squared.
    for num_experts in (2, 16, 128):
        value = router_z_loss(torch.zeros(3, num_experts)).item()
        assert value == pytest.approx(math.log(num_experts) ** 2, rel=1e-6)


def test_z_loss_hand_computed_mean_over_tokens():
    # Two tokens, E = 2: logits (0, 0) -> logsumexp = log 2;
    # logits (log 3, log 3) -> log(3 + 3) = log 6.
    # z = ((log 2)^2 + (log 6)^2) / 2 = (0.480453 + 3.210402) / 2 = 1.845428.
    logits = torch.tensor([[0.0, 0.0], [math.log(3), math.log(3)]])
    assert router_z_loss(logits).item() == pytest.approx(1.845428, abs=1e-5)


def test_z_loss_sees_a_shift_the_softmax_ignores():
    # Adding c to every logit leaves the probabilities unchanged but moves
    # logsumexp by c: all-zero logits over E = 16 shifted by 10 give
    # (10 + log 16)^2.
    logits = torch.zeros(4, 16)
    assert router_z_loss(logits + 10).item() == pytest.approx(
        (10 + math.log(16)) ** 2, rel=1e-6
    )


def test_z_loss_gradient_is_2_lse_softmax_over_N():
    # d/dx_ne of mean_n(lse_n^2) = 2 * lse_n * softmax(x_n)_e / N.
    logits = torch.tensor(
        [[1.0, -1.0, 0.5], [0.0, 2.0, -0.5]], requires_grad=True
    )
    router_z_loss(logits).backward()
    lse = torch.logsumexp(logits.detach(), -1, keepdim=True)
    expected = 2 * lse * torch.softmax(logits.detach(), -1) / 2
    torch.testing.assert_close(logits.grad, expected)


def test_z_loss_runs_in_float32_for_bf16_logits():
    logits = torch.zeros(2, 8, dtype=torch.bfloat16)
    value = router_z_loss(logits)
    assert value.dtype == torch.float32
    assert value.item() == pytest.approx(math.log(8) ** 2, rel=1e-6)
