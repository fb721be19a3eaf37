"""Tests for the chapter "Gemma 4 at a glance"
(src/gemma4_lite/plots/overview.py).

The accounting is checked against hand-computed values and against the tensors
a model really allocates (built on the meta device, so even the 31B costs no
memory).
"""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402

from gemma4_lite import (  # noqa: E402
    PRESETS,
    Gemma4Cache,
    Gemma4Config,
    Gemma4ForCausalLM,
)
from gemma4_lite.book.accounting import (  # noqa: E402
    count_parameters,
    kv_cache_bytes,
)
from gemma4_lite.book.overview import (  # noqa: E402
    batch_where_cache_overtakes_weights,
    naive_kv_cache_bytes,
    weight_bytes,
)
from gemma4_lite.book.plots.overview import (
    human_bytes,
    kv_split,  # noqa: E402
    measured_parameter_groups,
    parameter_groups,
    plot_kv_by_layer,
    plot_kv_per_token,
    plot_kv_small_multiples,
    plot_parameter_breakdown,
    text_table,
)

NAMES = {"E2B": "e2b", "E4B": "e4b", "26B-A4B": "26b-a4b", "31B": "31b"}
K128 = 131_072


def _configs() -> dict[str, Gemma4Config]:
    return {
        label: Gemma4Config.from_preset(name) for label, name in NAMES.items()
    }


# ---------------------------------------------------------------------- tables
def test_text_table_aligns_columns():
    table = text_table(["name", "n"], [["a", 1], ["bbb", 22]])
    assert table == "name   n\n----  --\na      1\nbbb   22"


def test_text_table_rejects_ragged_rows():
    with pytest.raises(ValueError):
        text_table(["a", "b"], [[1]])


@pytest.mark.parametrize(
    "n, text",
    [
        (512, "512 B"),
        (6 * 1024, "6.00 KiB"),
        (774 * 2**20, "774 MiB"),
        (int(2.7 * 2**30), "2.70 GiB"),
        (int(20.8 * 2**30), "20.8 GiB"),
    ],
)
def test_human_bytes(n, text):
    assert human_bytes(n) == text


# ------------------------------------------------------------------ parameters
@pytest.mark.parametrize("name", sorted(PRESETS))
def test_groups_equal_the_tensors_the_model_allocates(name):
    config = Gemma4Config.from_preset(name)
    with torch.device("meta"):
        model = Gemma4ForCausalLM(config, init=False)
    measured = measured_parameter_groups(model)
    assert measured == parameter_groups(config)
    assert (
        sum(measured.values())
        == sum(p.numel() for p in model.parameters())
        == count_parameters(config)["total"]
    )


def test_e2b_groups_by_hand():
    groups = parameter_groups(Gemma4Config.from_preset("e2b"))
    assert groups["token embedding"] == 262_144 * 1536
    assert groups["PLE table"] == 262_144 * 35 * 256
    # 15 producer layers (12 sliding with 1x256 KV, 3 global with 1x512 KV) and
    # 20 shared layers (q, o only).
    q_o = 2 * 1536 * 8
    attention = (
        12 * (q_o * 256 + 256 + 2 * 1536 * 256 + 256)
        + 3 * (q_o * 512 + 512 + 2 * 1536 * 512 + 512)
        + 16 * (q_o * 256 + 256)
        + 4 * (q_o * 512 + 512)
    )
    assert groups["attention"] == attention
    assert groups["dense MLP"] == 3 * 1536 * (15 * 6144 + 20 * 12288)
    assert groups["experts (active)"] == groups["experts (idle)"] == 0


def test_moe_active_share_by_hand():
    config = Gemma4Config.from_preset("26b-a4b")
    groups = parameter_groups(config)
    experts = 30 * 128 * 3 * 704 * 2816
    assert groups["experts (active)"] + groups["experts (idle)"] == experts
    assert groups["experts (active)"] == experts // 16  # 8 of 128
    assert (
        sum(groups.values()) - groups["experts (idle)"]
        == count_parameters(config)["active_per_token"]
    )
    assert round(count_parameters(config)["active_per_token"] / 1e9, 2) == 3.82


# -------------------------------------------------------------------- KV cache
def test_kv_split_e2b_by_hand():
    split = kv_split(Gemma4Config.from_preset("e2b"), K128)
    # 12 producer sliding layers keep 512 tokens of 1 KV head x 256; 3 producer
    # globals keep all of 1 x 512.
    assert split["sliding"] == 12 * 2 * 512 * 1 * 256 * 2
    assert split["global"] == 3 * 2 * K128 * 1 * 512 * 2
    assert (split["n_sliding"], split["n_global"], split["n_shared"]) == (
        12,
        3,
        20,
    )


def test_naive_over_exact_31b_by_hand():
    config = Gemma4Config.from_preset("31b")
    naive = 60 * 2 * K128 * 16 * 256 * 2
    exact = 50 * 2 * 1024 * 16 * 256 * 2 + 10 * 2 * K128 * 4 * 512 * 2
    got_naive = naive_kv_cache_bytes(config, K128)
    got_exact = kv_cache_bytes(config, K128)
    assert (got_naive, got_exact) == (naive, exact)
    assert round(got_naive / got_exact, 2) == 11.13


@pytest.mark.parametrize("label", list(NAMES))
def test_kv_split_equals_an_allocated_cache(label):
    config = _configs()[label]
    split = kv_split(config, K128)
    cache = Gemma4Cache(
        config, max_length=K128, dtype=torch.bfloat16, device="meta"
    )
    assert (
        cache.nbytes()
        == split["sliding"] + split["global"]
        == kv_cache_bytes(config, K128)
    )
    assert (
        split["n_sliding"] + split["n_global"] + split["n_shared"]
        == config.num_hidden_layers
    )


def test_tiny_cache_after_a_real_forward_pass_matches_kv_split():
    config = Gemma4Config.from_preset("e2b-tiny")
    torch.manual_seed(0)
    model = Gemma4ForCausalLM(config).eval()
    cache = model.new_cache(1, max_length=40)
    with torch.no_grad():
        model(torch.randint(3, config.vocab_size, (1, 40)), cache)
    split = kv_split(config, 40, torch.float32)
    assert cache.nbytes() == split["sliding"] + split["global"]


# --------------------------------------------------------------------- figures
def test_figures_draw():
    configs = _configs()
    figures = [
        plot_parameter_breakdown(
            configs,
            {"E2B": 5.1, "E4B": 8, "26B-A4B": 25.2, "31B": 30.7},
            {"26B-A4B": 3.8},
        ),
        plot_kv_per_token(configs, K128),
        plot_kv_by_layer(
            configs["E4B"], 262_144, "E4B"
        ),  # past the context: drawn with a note
        plot_kv_small_multiples(configs, [4096, K128, 262_144]),
    ]
    # kv per token: 4 variants and the legend panel in a 2 x 3 grid
    assert [len(f.axes) for f in figures] == [2, 6, 2, 12]
    for fig in figures:
        plt.close(fig)


@pytest.mark.parametrize("name", ["e2b", "12b", "31b"])
def test_batch_where_cache_overtakes_weights(name):
    config = Gemma4Config.from_preset(name)
    weights = weight_bytes(config)
    assert weights == 2 * count_parameters(config)["total"]
    for context in (32_768, 131_072):
        batch = batch_where_cache_overtakes_weights(config, context)
        assert kv_cache_bytes(config, context, batch_size=batch) > weights
        assert kv_cache_bytes(config, context, batch_size=batch - 1) <= weights


def test_31b_cache_overtakes_weights_at_batch_6_for_128k():
    config = Gemma4Config.from_preset("31b")
    assert batch_where_cache_overtakes_weights(config, 131_072) == 6
