"""The cost model of "Performance trade-offs": FLOPs exact against PyTorch's
own counter, expert coverage against the package's router, and the
roofline, memory and fit helpers against hand-computed values."""

from __future__ import annotations

import math

import pytest
import torch
from torch.utils.flop_counter import FlopCounterMode

from gemma4_lite import Gemma4Config, Gemma4ForCausalLM
from gemma4_lite.book import cost_model as cm
from gemma4_lite.book.accounting import kv_cache_bytes
from gemma4_lite.moe import Gemma4Router

TWINS = ("e2b-tiny", "e4b-tiny", "12b-tiny", "26b-a4b-tiny", "31b-tiny")


def _counted_decode_flops(name: str, context: int) -> int:
    """FLOPs PyTorch counts for one cached decode step of the tiny twin at
    ``context`` (the prompt is ``context - 1`` tokens). Gradients stay on,
    so the experts run through the plain sorted dispatch, whose matrix
    products the counter sees (it does not count ``_grouped_mm``)."""
    torch.manual_seed(0)
    config = Gemma4Config.from_preset(name)
    model = Gemma4ForCausalLM(config)
    ids = torch.randint(0, config.vocab_size, (1, context))
    cache = model.new_cache(1)
    with torch.no_grad():
        model(ids[:, :-1], cache)
    with FlopCounterMode(display=False) as counter:
        model(ids[:, -1:], cache)
    return counter.get_total_flops()


@pytest.mark.parametrize("name", TWINS)
@pytest.mark.parametrize("context", [2, 8])
def test_flops_exact_within_the_window(name, context):
    config = Gemma4Config.from_preset(name)
    assert context <= config.sliding_window
    expected = cm.flops_per_token(config, context)["total"]
    assert _counted_decode_flops(name, context) == expected


@pytest.mark.parametrize("name", ["31b-tiny", "26b-a4b-tiny", "e2b-tiny"])
def test_flops_past_the_window_count_one_masked_key(name):
    """Past the window the package's cached step attends to the W ring
    slots plus the new key and masks the oldest: one column more per
    sliding layer than the model counts (keys a query can see)."""
    config = Gemma4Config.from_preset(name)
    context = 20
    extra = sum(
        4 * config.num_attention_heads * config.head_dim_for(i)
        for i in range(config.num_hidden_layers)
        if config.is_sliding(i)
    )
    expected = cm.flops_per_token(config, context)["total"] + extra
    assert _counted_decode_flops(name, context) == expected


def test_flops_split_weights_and_attention_by_hand():
    config = Gemma4Config.from_preset("31b-tiny")
    out = cm.flops_per_token(config, 100)
    keys = sum(cm.visible_keys(config, i, 100) for i in range(6))
    assert keys == 5 * 8 + 100
    d = [config.head_dim_for(i) for i in range(6)]
    assert out["attention"] == sum(4 * 4 * d[i] * (8 if i < 5 else 100)
                                   for i in range(6))  # fmt: skip
    assert out["total"] == out["weights"] + out["attention"]


def test_weights_flops_are_twice_the_active_matmul_weights_31b():
    config = Gemma4Config.from_preset("31b")
    out = cm.flops_per_token(config, 1)
    # 30.7B parameters, each multiplied once (the head reuses the table)
    assert out["weights"] / 2 / 1e9 == pytest.approx(30.7, abs=0.05)


def test_expected_distinct_experts_limits():
    assert cm.expected_distinct_experts(128, 8, 1) == pytest.approx(8)
    assert cm.expected_distinct_experts(128, 8, 16) == pytest.approx(
        128 * (1 - (120 / 128) ** 16)
    )
    assert cm.expected_distinct_experts(128, 8, 10_000) == pytest.approx(128)


@pytest.mark.parametrize("tokens", [1, 4, 16, 64])
def test_router_simulation_matches_uniform_formula(tokens):
    torch.manual_seed(0)
    router = Gemma4Router(64, 32, 4)
    torch.nn.init.normal_(router.proj.weight, std=0.02)
    simulated = cm.simulate_distinct_experts(router, tokens, trials=400)
    expected = cm.expected_distinct_experts(32, 4, tokens)
    assert simulated == pytest.approx(expected, rel=0.05)


def test_decode_bytes_dense_is_all_weights_plus_cache():
    config = Gemma4Config.from_preset("31b")
    out = cm.decode_bytes(config, 8, 4096, "int8")
    assert out["weights"] == cm.stored_weight_parameters(config)
    assert out["kv_cache"] == kv_cache_bytes(config, 4096, batch_size=8)


def test_decode_bytes_moe_grows_with_batch():
    config = Gemma4Config.from_preset("26b-a4b")
    one = cm.weight_bytes_read(config, 1)
    many = cm.weight_bytes_read(config, 512)
    counts = cm.count_parameters(config)
    assert one == pytest.approx(2 * counts["active_per_token"], rel=1e-9)
    assert many == pytest.approx(2 * counts["total"], rel=1e-6)
    assert one < cm.weight_bytes_read(config, 16) < many


def test_roofline_memory_bound_at_batch_one_then_compute():
    config = Gemma4Config.from_preset("31b")
    h100 = cm.HARDWARE["H100"]
    step = cm.decode_roofline(config, h100, 1, 1, "bf16")
    assert step.bound == "memory"
    assert step.seconds == pytest.approx(
        cm.decode_bytes(config, 1, 1)["total"] / h100.bandwidth
    )
    batch = cm.compute_bound_batch(config, h100, 1)
    assert cm.decode_roofline(config, h100, batch, 1).bound == "compute"
    assert cm.decode_roofline(config, h100, batch - 1, 1).bound == "memory"
    # weights dominate at context 1: the crossover is near the ridge / 1
    assert batch == pytest.approx(h100.ridge, rel=0.05)
    assert step.total_tokens_per_second == step.tokens_per_second


def test_compute_bound_batch_none_when_the_cache_dominates():
    config = Gemma4Config.from_preset("31b")
    cpu = cm.HARDWARE["this CPU"]
    assert cm.compute_bound_batch(config, cpu, 262_144, limit=64) is None


def test_memory_fit_and_max_context():
    config = Gemma4Config.from_preset("12b")
    gpu = cm.HARDWARE["RTX 4090"]
    need = cm.memory_needed(config, 8192, 1, "int4")
    assert need["weights"] == cm.stored_weight_parameters(config) / 2
    longest = cm.max_context(config, gpu, 1, "int4")
    assert cm.fits(config, gpu, longest, 1, "int4")
    if longest < config.max_position_embeddings:
        assert not cm.fits(config, gpu, longest + 1, 1, "int4")
    assert cm.max_context(Gemma4Config.from_preset("31b"), gpu) == 0


def test_cache_overtakes_weights_batch():
    config = Gemma4Config.from_preset("31b")
    context = 131_072
    batch = cm.cache_overtakes_weights_batch(config, context)
    need = cm.memory_needed(config, context, batch)
    before = cm.memory_needed(config, context, batch - 1)
    assert need["kv_cache"] > need["weights"] >= before["kv_cache"]
    assert (
        batch == math.floor(need["weights"] / (need["kv_cache"] / batch)) + 1
    )


def test_prefill_roofline_sums_every_position():
    config = Gemma4Config.from_preset("31b-tiny")
    cpu = cm.ONE_CORE_FP32
    step = cm.prefill_roofline(config, cpu, 2, 10, "fp32")
    flops = 2 * sum(
        cm.flops_per_token(config, c)["total"] for c in range(1, 11)
    )
    assert step.compute_seconds == pytest.approx(flops / cpu.peak_flops)
    assert step.batch == 20


def test_measure_tokens_per_second_runs_on_a_twin():
    torch.manual_seed(0)
    model = Gemma4ForCausalLM(Gemma4Config.from_preset("26b-a4b-tiny"))
    out = cm.measure_tokens_per_second(model, 2, 8, 3, repeats=1)
    assert set(out) == {"prefill", "decode"}
    assert all(v > 0 for v in out.values())


def test_component_parameters_sum_to_the_total():
    for name in ("12b", "26b-a4b", "31b", "e2b"):
        config = Gemma4Config.from_preset(name)
        parts = cm.component_parameters(config)
        assert sum(parts.values()) == cm.count_parameters(config)["total"]
    moe = cm.component_parameters(Gemma4Config.from_preset("26b-a4b"))
    assert moe["experts (idle)"] == 15 * moe["experts (used)"]


def test_device_memory_is_the_makers_capacity_in_bytes():
    h100, rtx = cm.HARDWARE["H100"], cm.HARDWARE["RTX 4090"]
    assert h100.memory_bytes == 80 * 2**30  # an "80 GB" H100 has 80 GiB
    assert rtx.memory_bytes == 24 * 2**30
    assert cm.HARDWARE["RTX 4080"].memory_bytes == 16 * 2**30
    assert cm.HARDWARE["RTX 4070"].memory_bytes == 12 * 2**30
    assert h100.usable_bytes() == pytest.approx(0.9 * 80 * 2**30)
    assert h100.usable_bytes(0.0) == h100.memory_bytes


def test_m4_max_peak_is_the_32_core_estimate_scaled_to_40_cores():
    assert cm.HARDWARE["M4 Max"].peak_tflops == pytest.approx(
        13.74 * 40 / 32, abs=0.05
    )


def test_fits_keeps_the_runtime_reserve_back():
    config = Gemma4Config.from_preset("31b")
    h100 = cm.HARDWARE["H100"]
    longest = cm.max_context(config, h100)
    assert cm.fits(config, h100, longest)
    assert not cm.fits(config, h100, longest + 1)
    assert cm.fits(config, h100, longest + 1, reserve=0.0)
    need = cm.memory_needed(config, longest)["total"]
    assert need <= 0.9 * h100.memory_bytes


@pytest.mark.parametrize("precision", ["bf16", "int4"])
def test_max_batch_is_the_last_batch_that_fits(precision):
    config = Gemma4Config.from_preset("26b-a4b")
    h100 = cm.HARDWARE["H100"]
    batch = cm.max_batch(config, h100, 4096, precision)
    assert batch > 1
    assert cm.fits(config, h100, 4096, batch, precision)
    assert not cm.fits(config, h100, 4096, batch + 1, precision)
    assert cm.max_batch(config, cm.HARDWARE["RTX 4070"], 4096, "int4") == 0


def test_fp8_uses_the_fp8_peak_only_where_the_device_has_one():
    h100, rtx = cm.HARDWARE["H100"], cm.HARDWARE["RTX 4090"]
    assert h100.peak_flops_for("fp8") == 1979e12
    assert h100.peak_flops_for("int4") == h100.peak_flops
    assert rtx.peak_flops_for("fp8") == rtx.peak_flops


def test_matmul_compute_bound_batch_by_format():
    h100 = cm.HARDWARE["H100"]
    bf16 = cm.matmul_compute_bound_batch(h100, "bf16")
    assert bf16 == pytest.approx(h100.ridge)  # 2 FLOPs per 2-byte weight
    assert cm.matmul_compute_bound_batch(h100, "int4") == pytest.approx(
        bf16 / 4
    )
    # FP8 halves the bytes and doubles the peak: the same batch
    assert cm.matmul_compute_bound_batch(h100, "fp8") == pytest.approx(
        bf16, rel=0.01
    )


def test_split_roofline_by_hand_and_never_faster_than_aggregate():
    config = Gemma4Config.from_preset("12b")
    h100 = cm.HARDWARE["H100"]
    for batch, context in ((1, 4096), (512, 1024), (64, 131_072)):
        split = cm.decode_roofline_split(config, h100, batch, context)
        moved = cm.decode_bytes(config, batch, context)
        flops = cm.flops_per_token(config, context)
        assert split["weights"] == max(
            moved["weights"] / h100.bandwidth,
            batch * flops["weights"] / h100.peak_flops,
        )
        assert split["total"] == split["weights"] + split["cache"]
        whole = cm.decode_roofline(config, h100, batch, context)
        assert split["total"] >= whole.seconds
    # at batch 512 the weight products are compute-bound, the step is not
    big = cm.decode_roofline_split(config, h100, 512, 1024)
    moved = cm.decode_bytes(config, 512, 1024)
    assert big["weights"] > moved["weights"] / h100.bandwidth
    assert cm.decode_roofline(config, h100, 512, 1024).bound == "memory"


def test_throughput_crossovers_are_where_the_order_changes():
    dense = Gemma4Config.from_preset("12b")
    moe = Gemma4Config.from_preset("26b-a4b")
    h100 = cm.HARDWARE["H100"]
    crossings = cm.throughput_crossovers(dense, moe, h100, 1024, "bf16")
    assert len(crossings) == 2  # the 12B passes, then the MoE again

    def ahead(batch):
        a = cm.decode_roofline(dense, h100, batch, 1024)
        b = cm.decode_roofline(moe, h100, batch, 1024)
        return a.total_tokens_per_second > b.total_tokens_per_second

    for batch in crossings:
        assert ahead(batch) != ahead(batch - 1)
    assert not ahead(1) and ahead(crossings[0]) and not ahead(512)


def test_best_of_reports_ties():
    assert cm.best_of({"a": 262_144, "b": 262_144, "c": 1}) == ["a", "b"]
    assert cm.best_of({"a": 1.0, "b": None, "c": 2.0}, higher=False) == ["a"]
    assert cm.best_of({"a": None}) == []


def test_chapter_8_answers():
    from gemma4_lite.book.answers import ch08

    # (15/16)^B <= 1/16: B >= ln 16 / ln(16/15) = 42.96
    expected = math.ceil(math.log(16) / math.log(16 / 15))
    assert ch08.batch_reading_120_experts() == expected == 43
    config = Gemma4Config.from_preset("26b-a4b")
    rtx = cm.HARDWARE["RTX 4090"]
    need = cm.memory_needed(config, 32_768, 1, "int4")
    room = 0.9 * 24 * 2**30 - need["weights"]
    assert ch08.rtx4090_sequences_26b_int4_32k() == int(
        room // need["kv_cache"]
    )
    assert cm.fits(config, rtx, 32_768, 12, "int4")


def test_split_step_check_accepts_the_package_and_locates_a_difference():
    from gemma4_lite.book.answers import ch08

    def right(config, hardware, batch, context, weights):
        return cm.decode_roofline_split(
            config, hardware, batch, context, weights
        )["total"]

    def aggregate(config, hardware, batch, context, weights):
        step = cm.decode_roofline(config, hardware, batch, context, weights)
        return step.seconds

    assert ch08.validate_split_step(right) is True
    message = ch08.validate_split_step(aggregate)
    assert isinstance(message, str)
    assert "batch 512" in message and "expected" in message


def test_ada_rule_reproduces_the_white_papers_rtx_4090_peak():
    assert cm.ada_tensor_tflops(128, 2.52) == 165.2
    assert cm.HARDWARE["RTX 4090"].peak_tflops == 165.2
    assert cm.HARDWARE["RTX 4080"].peak_tflops == cm.ada_tensor_tflops(
        76, 2.51
    )
