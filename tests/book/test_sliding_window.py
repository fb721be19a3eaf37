"""The chapter "Sliding-window layers": receptive fields, window costs, the
ring trace and the naive ring's chunked-prefill bug, each checked against
hand-computed values or an independent slow computation."""

import math

import pytest
import torch

from gemma4_lite import RELEASED, Gemma4Config
from gemma4_lite.book.accounting import kv_cache_layer_bytes
from gemma4_lite.book.answers.ch01 import ring_update
from gemma4_lite.book.receptive_field import (
    hypothetical_reaches,
    input_gradient_norms,
    measured_reach,
    sliding_path_reach,
    sliding_runs,
)
from gemma4_lite.book.sliding_window import (
    NaiveRingKVCache,
    attention_flops_per_token,
    check_ring_update,
    chunk_coverage,
    chunk_error_grid,
    chunked_prefill_error,
    decode_trace,
    kv_crossover_context,
    longest_run,
    model_attention_flops_per_token,
    new_cache,
    ring_trace,
    silence_global_attention,
    sliding_share_of_kv,
    tiny_model,
    weight_flops_per_token,
    window_cost,
)
from gemma4_lite.kv_cache import RingKVCache


def _ids(model, length, seed=0):
    return torch.randint(
        3,
        model.config.vocab_size,
        (1, length),
        generator=torch.Generator().manual_seed(seed),
    )


# ----------------------------------------------------------------------- reach
def test_hypothetical_reaches_hand_values():
    assert hypothetical_reaches(Gemma4Config.from_preset("e2b")) == {
        "one run": 4 * 511,
        "globals off": 12 * 511,
        "all sliding, shared": 15 * 511,  # layer 14's reach + one window
        "all sliding": 35 * 511,
    }
    assert hypothetical_reaches(Gemma4Config.from_preset("31b")) == {
        "one run": 5 * 1023,
        "globals off": 50 * 1023,
        "all sliding, shared": 60 * 1023,
        "all sliding": 60 * 1023,
    }


def test_sliding_runs_of_released_patterns():
    def runs(name):
        return sliding_runs(Gemma4Config.from_preset(name).layer_types)

    assert runs("e2b") == [4] * 7
    assert runs("e4b") == [5] * 7
    assert runs("12b") == [5] * 8
    assert runs("31b") == [5] * 10
    assert runs("26b-a4b") == [5] * 5
    assert longest_run(Gemma4Config.from_preset("e2b")) == 4


def test_sliding_path_reach_hand_values():
    # KV-owning sliding layers x (W-1); KV-shared sliding layers add nothing
    assert sliding_path_reach(Gemma4Config.from_preset("e2b")) == 12 * 511
    assert sliding_path_reach(Gemma4Config.from_preset("e4b")) == 20 * 511
    assert sliding_path_reach(Gemma4Config.from_preset("26b-a4b")) == 25 * 1023
    assert sliding_path_reach(Gemma4Config.from_preset("31b")) == 50 * 1023
    assert sliding_path_reach(Gemma4Config.from_preset("dense-tiny")) == 5 * 7


@pytest.mark.parametrize("preset", ["dense-tiny", "e2b-tiny", "e4b-tiny"])
def test_sliding_path_reach_matches_a_real_network(preset):
    model = tiny_model(preset, seed=3)
    silence_global_attention(model)
    ids = _ids(model, 64, seed=4)
    norms = input_gradient_norms(model, ids, 63)
    assert measured_reach(norms, 63)[-1] == sliding_path_reach(model.config)
    if preset != "dense-tiny":
        # counting the shared sliding layers too would predict more than is
        # real
        naive = len(model.config.sliding_layers) * (
            model.config.sliding_window - 1
        )
        assert naive > sliding_path_reach(model.config)


def test_silencing_global_attention_leaves_sliding_layers_alone():
    model = tiny_model("dense-tiny", seed=3)
    before = {n: p.clone() for n, p in model.named_parameters()}
    silence_global_attention(model)
    for name, param in model.named_parameters():
        is_global_o = any(
            name == f"model.layers.{i}.self_attn.o_proj.weight"
            for i in model.config.global_layers
        )
        assert (
            torch.equal(param, torch.zeros_like(param))
            if is_global_o
            else torch.equal(param, before[name])
        )


# ------------------------------------------------------------- FLOPs and bytes
def test_attention_flops_hand_values():
    e2b = Gemma4Config.from_preset("e2b")
    assert attention_flops_per_token(e2b, 0, 4096) == 4 * 8 * 256 * 512
    assert attention_flops_per_token(e2b, 0, 100) == 4 * 8 * 256 * 100
    assert attention_flops_per_token(e2b, 4, 4096) == 4 * 8 * 512 * 4096
    totals = model_attention_flops_per_token(e2b, 4096)
    assert totals == {
        "sliding": 28 * 4 * 8 * 256 * 512,
        "global": 7 * 4 * 8 * 512 * 4096,
    }


def test_weight_flops_for_a_dense_tied_model_is_twice_the_parameters():
    from gemma4_lite.book.accounting import count_parameters

    config = Gemma4Config.from_preset("31b")
    assert (
        weight_flops_per_token(config) == 2 * count_parameters(config)["total"]
    )


def test_window_cost_hand_values():
    e2b = window_cost(Gemma4Config.from_preset("e2b"))
    assert e2b.bytes_per_window_token == 12 * 2 * 1 * 256 * 2
    assert e2b.sliding_kv_bytes == 6 * 1024**2
    assert e2b.global_bytes_per_token == 3 * 2 * 1 * 512 * 2
    assert (e2b.run_reach, e2b.path_reach) == (2044, 6132)
    big = window_cost(Gemma4Config.from_preset("31b"))
    assert big.bytes_per_window_token == 50 * 2 * 16 * 256 * 2
    assert big.sliding_kv_bytes == 800 * 1024**2
    swapped = window_cost(Gemma4Config.from_preset("31b"), 512)
    assert (
        swapped.window == 512
        and swapped.sliding_kv_bytes == big.sliding_kv_bytes // 2
    )


@pytest.mark.parametrize("name", list(RELEASED) + ["e2b-tiny", "dense-tiny"])
def test_crossover_context_by_brute_force(name):
    config = Gemma4Config.from_preset(name)

    def globals_lead(t):
        per_layer = kv_cache_layer_bytes(config, t)
        return sum(per_layer[i] for i in config.global_layers) >= sum(
            per_layer[i] for i in config.sliding_layers
        )

    t = kv_crossover_context(config)
    assert globals_lead(t) and (t == 1 or not globals_lead(t - 1))


def test_sliding_share_of_kv_hand_value():
    e2b = Gemma4Config.from_preset("e2b")
    # at 4096 tokens: 6 MiB of rings vs
    # 3 global layers x 4096 x 2048 bytes = 24 MiB
    assert math.isclose(sliding_share_of_kv(e2b, 4096), 6 / 30)


# -------------------------------------------------------------------- the ring
@pytest.mark.parametrize("window", [1, 3, 8])
def test_ring_trace_shows_exactly_the_window(window):
    trace = ring_trace(window, 5 * window + 2)
    for step in trace:
        p = step.position
        assert step.visible == tuple(range(max(0, p - window + 1), p + 1))
        assert len(step.slot_pos) == window
        assert (
            step.slot_pos[p % window] == p and step.written_slot == p % window
        )
        held = sorted(s for s in step.slot_pos if s >= 0)
        assert held == list(step.visible)


@pytest.mark.parametrize("window", [4, 8])
def test_naive_ring_loses_keys_exactly_when_the_chunk_exceeds_the_free_slots(
    window,
):
    for start in range(0, 2 * window + 1):
        for length in range(1, 2 * window + 2):
            needed, seen = chunk_coverage(window, start, length, naive=True)
            assert not (
                seen & ~needed
            ).any()  # it never shows a key outside the window
            free = max(window - start, 0)
            lost = bool((needed & ~seen).any())
            assert lost == (length >= 2 and length > free), (start, length)
            needed, seen = chunk_coverage(window, start, length, naive=False)
            assert torch.equal(needed, seen)


def test_naive_cache_swaps_every_ring():
    model = tiny_model("e2b-tiny")
    package, naive = new_cache(model, naive=False), new_cache(model, True)
    rings = [isinstance(c, RingKVCache) for c in package.layers]
    assert sum(rings) > 0
    assert rings == [isinstance(c, RingKVCache) for c in naive.layers]
    assert all(
        isinstance(c, NaiveRingKVCache) == ring
        for c, ring in zip(naive.layers, rings)
    )


def test_chunked_prefill_naive_versus_package():
    model = tiny_model("dense-tiny", seed=5)
    window = model.config.sliding_window
    ids = _ids(model, 3 * window + 4, seed=6)
    for chunk in (
        1,
        2,
        3,
        window - 1,
        window,
        window + 1,
        2 * window,
        ids.shape[1],
    ):
        package = chunked_prefill_error(model, ids, chunk, naive=False)
        naive = chunked_prefill_error(model, ids, chunk, naive=True)
        assert package <= 1e-4, (chunk, package)
        if chunk == 1:
            assert naive <= 1e-4  # one token at a time, writing first is right
        elif chunk > window:
            assert math.isnan(
                naive
            )  # the chunk's first queries have no key left
        else:
            assert naive > 1e-2, (chunk, naive)


def test_chunk_error_grid_follows_the_free_slot_rule():
    model = tiny_model("dense-tiny", seed=7)
    window = model.config.sliding_window
    ids = _ids(model, 3 * window, seed=8)
    starts, lengths = [0, 3, window, window + 2], [1, 2, 5, window, window + 1]
    naive = chunk_error_grid(model, ids, starts, lengths, naive=True)
    package = chunk_error_grid(model, ids, starts, lengths, naive=False)
    for i, start in enumerate(starts):
        for j, length in enumerate(lengths):
            assert package[i][j] <= 1e-4
            broken = length >= 2 and length > max(window - start, 0)
            err = naive[i][j]
            assert (math.isnan(err) or err > 1e-3) == broken, (
                start,
                length,
                err,
            )


def test_decode_trace_stays_at_the_window():
    model = tiny_model("dense-tiny", seed=9)
    window = model.config.sliding_window
    trace = decode_trace(model, _ids(model, 10 * window, seed=10))
    assert set(trace.ring_size) == {window}
    assert max(trace.ring_filled) == window and trace.ring_filled[
        :window
    ] == list(range(1, window + 1))
    assert trace.global_held == list(range(1, 10 * window + 1))
    assert trace.ring_holds_last_window
    assert trace.max_error <= 1e-4


def test_check_ring_update_accepts_the_solution_and_rejects_the_bug():
    assert check_ring_update(ring_update) is True

    def write_then_attend(ring, new, start):
        window = ring.shape[0]
        for i in range(new.shape[0]):
            ring[(start + i) % window] = new[i]
        return ring[: min(start + new.shape[0], window)].clone()

    message = check_ring_update(write_then_attend)
    assert isinstance(message, str) and "start =" in message

    def slot_order(ring, new, start):
        # the package's order: right values, wrong order once it wraps
        window, length = ring.shape[0], new.shape[0]
        attended = torch.cat([ring[: min(start, window)], new])
        for p in range(max(start, start + length - window), start + length):
            ring[p % window] = new[p - start]
        return attended

    assert "position order" in check_ring_update(slot_order)
    assert "not the attended keys" in check_ring_update(
        lambda ring, new, start: None
    )

    def stub(ring, new, start):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_ring_update(stub)
