"""Receptive field of stacked sliding/global layers: closed form, brute force,
and gradients of a real model. Chapter: "Global attention layers"."""

from __future__ import annotations

import math
import random

import pytest
import torch
from conftest import FAMILIES, random_model

from gemma4_lite import Gemma4Config
from gemma4_lite.book.receptive_field import (
    config_reach,
    dependency_by_depth,
    input_gradient_norms,
    layers_to_span,
    measured_reach,
    reach_by_depth,
    receptive_field,
    sliding_only_reach,
)
from gemma4_lite.config import FULL, SLIDING, layer_pattern

S, F = SLIDING, FULL


@pytest.fixture(autouse=True, scope="module")
def _one_thread():
    """The models here are tiny: a second thread only adds synchronisation (and
    stalls on a busy machine).
    """
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


# --- closed form against hand-computed values --------------------------------
def test_sliding_layers_add_window_minus_one_a_global_layer_reaches_all():
    assert reach_by_depth([S, S, F, S], 4) == [0, 3, 6, math.inf, math.inf]
    assert reach_by_depth([S], 1) == [
        0,
        0,
    ]  # a window of one token never looks back


def test_sliding_only_reach_of_the_released_depths():
    # L * (W - 1): 35 * 511, 42 * 511, 30 * 1023, 60 * 1023
    assert sliding_only_reach(35, 512)[-1] == 17_885
    assert sliding_only_reach(42, 512)[-1] == 21_462
    assert sliding_only_reach(30, 1024)[-1] == 30_690
    assert sliding_only_reach(60, 1024)[-1] == 61_380


def test_kv_shared_sliding_layers_reuse_the_producer_input_reach():
    # layers 3 and 4 read layer 2's keys/values, computed from layer 2's input
    # (reach 4): 4 + 2 = 6, so the shared layers add nothing beyond what layer
    # 2 itself reached
    assert reach_by_depth([S] * 5, 3, [0, 1, 2, 2, 2]) == [0, 2, 4, 6, 6, 6]
    # reading an earlier producer can even leave the reach where the residual
    # stream already had it
    assert reach_by_depth([S] * 4, 3, [0, 1, 2, 0]) == [0, 2, 4, 6, 6]


def test_released_configs_see_the_whole_prefix_after_their_first_global():
    for name, first in (("e2b", 4), ("e4b", 5), ("26b-a4b", 5), ("31b", 5)):
        config = Gemma4Config.from_preset(name)
        reach = config_reach(config)
        assert config.global_layers[0] == first
        assert reach[first] == first * (config.sliding_window - 1)
        assert all(r == math.inf for r in reach[first + 1 :])


def test_receptive_field_clamps_at_the_start_of_the_sequence():
    reach = [0, 3, 6, math.inf]
    assert receptive_field(reach, 100) == [1, 4, 7, 101]
    assert receptive_field(reach, 4) == [1, 4, 5, 5]
    assert receptive_field(reach, 0) == [1, 1, 1, 1]
    with pytest.raises(ValueError):
        receptive_field(reach, -1)


def test_layers_to_span():
    assert layers_to_span(262_144, 1024) == 257
    assert layers_to_span(131_072, 512) == 257
    assert layers_to_span(10, 4) == 3
    assert sliding_only_reach(3, 4)[-1] >= 9 > sliding_only_reach(2, 4)[-1]
    with pytest.raises(ValueError):
        layers_to_span(10, 1)


def test_invalid_producers_are_rejected():
    with pytest.raises(ValueError, match="same attention type"):
        reach_by_depth(
            [S, F, F], 4, [0, 0, 1]
        )  # a global layer cannot read a sliding layer's keys
    with pytest.raises(ValueError, match="earlier"):
        reach_by_depth([S, S], 4, [1, 1])  # producer after the reader
    with pytest.raises(ValueError, match="entries"):
        reach_by_depth([S, S], 4, [0])


# --- closed form against brute force: propagated boolean dependency matrices
def _random_stack(rng: random.Random) -> tuple[list[str], int, list[int]]:
    n = rng.randint(1, 8)
    types = [rng.choice([S, S, F]) for _ in range(n)]
    producers = []
    for i, kind in enumerate(types):
        same = [j for j in range(i + 1) if types[j] == kind]
        producers.append(rng.choice(same) if rng.random() < 0.4 else i)
    return types, rng.randint(1, 6), producers


@pytest.mark.parametrize("seed", range(40))
def test_closed_form_matches_brute_force(seed):
    types, window, producers = _random_stack(random.Random(seed))
    length = 30
    deps = dependency_by_depth(types, window, length, producers)
    reach = reach_by_depth(types, window, producers)
    for depth, r in enumerate(reach):
        for p in range(length):
            row = deps[depth, p]
            first = p - int(min(p, r))
            expected = torch.zeros(length, dtype=torch.bool)
            expected[first : p + 1] = True
            assert torch.equal(row, expected), (
                types,
                window,
                producers,
                depth,
                p,
            )


# --- closed form against gradients of real (tiny, random) models -------------
def _ids(config: Gemma4Config, length: int, seed: int = 0) -> torch.Tensor:
    return torch.randint(
        1,
        config.vocab_size,
        (1, length),
        generator=torch.Generator().manual_seed(seed),
    )


@pytest.mark.parametrize("name", FAMILIES)
def test_gradients_are_nonzero_exactly_within_the_predicted_reach(name):
    model = random_model(name)
    ids = _ids(model.config, 40)
    for position in (39, 21, 3):
        grads = input_gradient_norms(model, ids, position)
        assert grads.shape == (model.config.num_hidden_layers + 1, 40)
        assert torch.all(grads[:, position + 1 :] == 0)  # causality
        predicted = [int(min(position, r)) for r in config_reach(model.config)]
        assert measured_reach(grads, position) == predicted, (name, position)


def test_sliding_stack_before_the_final_global_layer_grows_linearly():
    # the config insists the last layer is global, so the sliding-only stack is
    # read before that layer
    model = random_model(
        "dense-tiny",
        num_hidden_layers=6,
        layer_types=[S] * 5 + [F],
        sliding_window=4,
    )
    ids = _ids(model.config, 32)
    reach = measured_reach(input_gradient_norms(model, ids, 31), 31)
    assert reach == [0, 3, 6, 9, 12, 15, 31]


def test_the_logits_have_the_reach_of_the_last_layer():
    model = random_model("e2b-tiny")
    ids = _ids(model.config, 24)
    position = 23
    captured = []
    hook = model.model.embed_tokens.register_forward_hook(
        lambda m, a, out: (
            captured.append(out.detach().requires_grad_(True)) or captured[-1]
        )
    )
    try:
        logits = model(ids)
    finally:
        hook.remove()
    (grad,) = torch.autograd.grad(logits[0, position].sum(), captured[0])
    nonzero = grad[0].norm(dim=-1) != 0
    last = input_gradient_norms(model, ids, position)[-1] != 0
    assert torch.equal(nonzero, last)


def test_measured_reach_rejects_leaks_and_gaps():
    with pytest.raises(AssertionError, match="last nonzero"):
        measured_reach(
            torch.tensor([[0.0, 1.0, 1.0]]), 1
        )  # position 2 leaks into position 1
    with pytest.raises(AssertionError, match="contiguous"):
        measured_reach(torch.tensor([[1.0, 0.0, 1.0]]), 2)
    assert measured_reach(
        torch.tensor([[0.0, 2.0, 1.0], [0.0, 0.0, 1.0]]), 2
    ) == [1, 0]


def test_layer_pattern_of_the_chapter_demo():
    # the 8-layer demo of the chapter: 3 sliding then 1 global, twice
    assert layer_pattern(8, 4) == [S, S, S, F, S, S, S, F]
    assert (
        reach_by_depth(layer_pattern(8, 4), 4) == [0, 3, 6, 9] + [math.inf] * 5
    )
