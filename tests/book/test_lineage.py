"""Tests for gemma4_lite.book.lineage (chapter "The evolution from Gemma 3").

The Gemma 2 and Gemma 3 figures are typed in from two reference files; these
tests re-derive every number both files give (layer counts, global layers, KV
per token) so a typo in either shows up here.
"""

from __future__ import annotations

import math

import pytest
import torch

from gemma4_lite.book import accounting, lineage
from gemma4_lite.book.overview import naive_kv_cache_bytes
from gemma4_lite.config import FULL, SLIDING, Gemma4Config
from gemma4_lite.norms import RMSNorm

BF16 = 2  # bytes
KIB, GIB = 1024, 2**30


# -------------------------------------------------------------- layer patterns
def test_periodic_layer_types():
    assert lineage.periodic_layer_types(4, 2, force_last_global=False) == (
        SLIDING,
        FULL,
        SLIDING,
        FULL,
    )
    assert lineage.periodic_layer_types(8, 6, force_last_global=False) == (
        SLIDING,
    ) * 5 + (FULL, SLIDING, SLIDING)
    assert lineage.periodic_layer_types(8, 6, force_last_global=True) == (
        SLIDING,
    ) * 5 + (FULL, SLIDING, FULL)
    with pytest.raises(ValueError):
        lineage.periodic_layer_types(4, 0, force_last_global=False)


def test_gemma2_alternates_local_first():
    m = lineage.LINEAGE["Gemma 2 27B"]
    assert m.layer_types[0] == SLIDING and m.layer_types[1] == FULL
    assert len(m.global_layers) == len(m.sliding_layers) == 23
    assert m.ratio == "1:1"


def test_gemma3_global_layers_and_unforced_last_layer():
    # [facts §10]: global where i % 6 == 5; 1B and 27B end with two sliding
    # layers
    # [comp A.3]: "27B 62 L (10 global + 52 local)"
    g3 = lineage.GEMMA3
    assert g3["Gemma 3 27B"].global_layers == list(range(5, 62, 6))
    assert (
        len(g3["Gemma 3 27B"].global_layers),
        len(g3["Gemma 3 27B"].sliding_layers),
    ) == (10, 52)
    for name in ("Gemma 3 1B", "Gemma 3 27B"):
        assert g3[name].layer_types[-2:] == (SLIDING, SLIDING)
    assert not g3[
        "Gemma 3 4B"
    ].last_layer_global  # Grootendorst's example: 34 layers end on a local one
    assert (
        g3["Gemma 3 12B"].last_layer_global
    )  # 48 is a multiple of 6: global by the pattern, not forced
    assert all(m.ratio == "5:1" for m in g3.values())


def test_gemma4_rows_follow_the_presets_and_the_fact_sheets():
    g4 = lineage.GEMMA4
    # [facts §1] and [comp A.3]:
    # (layers, #global, KV local, KV global, window, context)
    expected = {
        "Gemma 4 E2B": (35, 7, (1, 256), (1, 512), 512, 131_072, "4:1"),
        "Gemma 4 E4B": (42, 7, (2, 256), (2, 512), 512, 131_072, "5:1"),
        "Gemma 4 26B-A4B": (30, 5, (8, 256), (2, 512), 1024, 262_144, "5:1"),
        "Gemma 4 31B": (60, 10, (16, 256), (4, 512), 1024, 262_144, "5:1"),
    }
    for name, (
        layers,
        n_global,
        kv,
        kv_global,
        window,
        context,
        ratio,
    ) in expected.items():
        m = g4[name]
        assert (m.num_layers, len(m.global_layers)) == (layers, n_global)
        assert (m.kv_heads, m.head_dim) == kv and (
            m.global_kv_heads,
            m.global_head_dim,
        ) == kv_global
        assert (m.sliding_window, m.max_context, m.ratio) == (
            window,
            context,
            ratio,
        )
        assert (
            m.last_layer_global
            and m.norm_form == "x*w"
            and m.query_scale == 1.0
        )
        assert (
            m.final_softcap == 30.0
            and m.attn_softcap is None
            and m.qk_norm
            and m.v_norm
        )
    assert (
        g4["Gemma 4 31B"].k_eq_v_global and not g4["Gemma 4 E4B"].k_eq_v_global
    )
    assert (
        g4["Gemma 4 E2B"].kv_shared_layers,
        g4["Gemma 4 E4B"].kv_shared_layers,
    ) == (20, 18)


def test_generation_wide_numerics():
    for m in lineage.GEMMA2.values():
        assert (m.attn_softcap, m.final_softcap, m.qk_norm, m.v_norm) == (
            50.0,
            30.0,
            False,
            False,
        )
        assert (m.sliding_window, m.max_context, m.norm_form) == (
            4096,
            8192,
            "x*(1+w)",
        )
    for m in lineage.GEMMA3.values():
        assert (m.attn_softcap, m.final_softcap, m.qk_norm, m.v_norm) == (
            None,
            None,
            True,
            False,
        )
    # query_pre_attn_scalar = hidden / heads on the two 27B models, the head
    # size elsewhere
    assert (
        lineage.LINEAGE["Gemma 2 27B"].query_pre_attn_scalar
        == 4608 / 32
        == 144
    )
    assert (
        lineage.LINEAGE["Gemma 3 27B"].query_pre_attn_scalar
        == 5376 / 32
        == 168
    )
    assert math.isclose(lineage.LINEAGE["Gemma 3 27B"].query_scale, 168**-0.5)


# -------------------------------------------------------------------- KV bytes
@pytest.mark.parametrize("name", list(lineage.GEMMA4))
def test_geometry_path_agrees_with_accounting_on_gemma4(name):
    """The plain-geometry rule (used for Gemma 2/3) gives the package's numbers
    when handed Gemma 4's geometry, KV sharing included: the two are one rule,
    not two."""
    m = lineage.GEMMA4[name]
    for context in (1, 7, 512, 1024, 4096, 200_000, 262_144):
        assert sum(
            lineage.geometry_layer_bytes(m, context, torch.bfloat16, 2)
        ) == accounting.kv_cache_bytes(m.config, context, batch_size=2)
        # and lineage.kv_cache_bytes, which hands Gemma 4 rows to the
        # package, passes the dtype and batch on
        assert lineage.kv_cache_bytes(m, context, torch.float32, 3) == sum(
            lineage.geometry_layer_bytes(m, context, torch.float32, 3)
        )


def test_gemma2_27b_by_hand():
    per_token_layer = (
        2 * 16 * 128 * BF16
    )  # K and V, 16 heads of 128, bf16 = 8 KiB
    m = lineage.LINEAGE["Gemma 2 27B"]
    # 8K: 23 global layers hold 8192 tokens, 23 sliding layers hold 4096
    assert (
        lineage.kv_cache_bytes(m, 8192)
        == 23 * 8192 * per_token_layer + 23 * 4096 * per_token_layer
    )
    assert lineage.kv_cache_bytes(m, 8192) == 2_315_255_808
    # below the window every layer holds every token
    assert lineage.kv_cache_bytes(m, 3000) == 46 * 3000 * per_token_layer
    assert lineage.kv_cache_split(m, 8192) == {
        "sliding": 23 * 4096 * 8192,
        "global": 23 * 8192 * 8192,
    }


def test_gemma3_27b_by_hand():
    per_token_layer = 2 * 16 * 128 * BF16
    m = lineage.LINEAGE["Gemma 3 27B"]
    assert (
        lineage.kv_cache_bytes(m, 131_072)
        == 10 * 131_072 * per_token_layer + 52 * 1024 * per_token_layer
    )
    assert lineage.kv_cache_bytes(m, 131_072) == 11_173_625_856
    assert lineage.kv_cache_bytes(m, 1000) == 62 * 1000 * per_token_layer


def test_gemma3_12b_and_1b_by_hand():
    g12 = lineage.LINEAGE["Gemma 3 12B"]  # 8 global, 40 sliding, 8 KV x 256
    assert (
        lineage.kv_cache_bytes(g12, 131_072)
        == (8 * 131_072 + 40 * 1024) * 2 * 8 * 256 * BF16
    )
    g1 = lineage.LINEAGE[
        "Gemma 3 1B"
    ]  # 4 global, 22 sliding, 1 KV x 256, window 512
    assert (
        lineage.kv_cache_bytes(g1, 32_768, torch.float32)
        == (4 * 32_768 + 22 * 512) * 2 * 1 * 256 * 4
    )


def test_kv_per_token_matches_comparators_table():
    """[comp A.5]: bf16 KiB per token at 128K, window buffers included, both K
    and V counted.
    """
    published = {
        "Gemma 2 27B": 190,
        "Gemma 3 27B": 83.2,
        "Gemma 4 31B": 86.2,
        "Gemma 4 26B-A4B": 21.6,
        "Gemma 4 E4B": 16.2,
        "Gemma 4 E2B": 6.0,
    }
    for name, kib in published.items():
        per_token = (
            lineage.kv_cache_bytes(lineage.LINEAGE[name], 131_072)
            / 131_072
            / KIB
        )
        assert abs(per_token - kib) <= 0.051 * (10 if kib > 100 else 1), (
            name,
            per_token,
            kib,
        )
    # "496 KiB if all-global" (Gemma 3 27B): below the window every layer
    # holds every token, as a global layer would
    assert (
        lineage.kv_cache_bytes(lineage.LINEAGE["Gemma 3 27B"], 1) / KIB == 496
    )
    # "960 KiB if all 60 layers were global" (Gemma 4 31B)
    all_global = lineage.shaped_like(
        "31b", window=1024, sliding_per_global=None
    )
    assert (
        accounting.kv_cache_bytes(all_global, 1) / KIB
        == 60 * 2 * 4 * 512 * BF16 / KIB
        == 480
    )
    # (comparators' 960 KiB counts 16 KV heads x 256 for every layer:
    # 60 * 16 KiB, the naive figure)
    naive = naive_kv_cache_bytes(Gemma4Config.from_preset("31b"), 1)
    assert naive / KIB == 960


def test_k_eq_v_stored_once_reproduces_the_report_table():
    """The Gemma 4 report's "+1.10 GB at 32K, int8" for 31B only follows if K=V
    layers store one tensor (training_and_quality.md §3.2); the package, like
    transformers, stores both."""
    m = lineage.LINEAGE["Gemma 4 31B"]
    split = lineage.kv_cache_split(m, 32_768, torch.int8)
    assert round((split["global"] / 2 + split["sliding"]) / 1e9, 2) == 1.09
    assert round((split["global"] + split["sliding"]) / 1e9, 2) == 1.76


def test_26b_is_exactly_a_quarter_of_31b():
    a, b = lineage.LINEAGE["Gemma 4 26B-A4B"], lineage.LINEAGE["Gemma 4 31B"]
    for context in lineage.context_grid():
        assert 4 * lineage.kv_cache_bytes(
            a, context
        ) == lineage.kv_cache_bytes(b, context)


def test_global_share_limits():
    m = lineage.LINEAGE["Gemma 4 31B"]
    # below the window, the share is the per-token ratio:
    # 10 * 4096 / (10 * 4096 + 50 * 8192) values
    assert math.isclose(
        lineage.global_share(m, 512), 10 * 4096 / (10 * 4096 + 50 * 8192)
    )
    # the share passes 90 % at
    # 9 x (sliding bytes) / (global bytes per token) = 92,160 tokens
    assert lineage.global_share(m, 92_160) == pytest.approx(0.9)
    assert (
        lineage.global_share(m, 92_159) < 0.9 < lineage.global_share(m, 92_161)
    )
    assert lineage.global_share(m, 0) == 0.0


def test_context_grid_and_curve_cut_at_max_context():
    grid = lineage.context_grid()
    assert grid[0] == 1024 and grid[-1] == 262_144 and len(grid) == 9
    xs, ys = lineage.kv_curve(lineage.LINEAGE["Gemma 2 27B"], grid)
    assert xs == [1024, 2048, 4096, 8192] and ys[-1] == 2_315_255_808
    xs, _ = lineage.kv_curve(
        lineage.LINEAGE["Gemma 3 1B"], [1024, 20_000, 40_000]
    )
    assert xs == [1024, 20_000, 32_768]
    with pytest.raises(ValueError):
        lineage.context_grid(0, 8)
    with pytest.raises(ValueError):
        lineage.kv_cache_bytes(lineage.LINEAGE["Gemma 3 1B"], -1)


def test_sliding_reach():
    assert lineage.sliding_reach(60, 1024) == 61_380
    assert lineage.sliding_reach(46, 4096) == 188_370
    assert lineage.sliding_reach(1, 1) == 0  # a window of 1 sees only itself
    assert lineage.sliding_reach(0, 1024) == 0
    with pytest.raises(ValueError):
        lineage.sliding_reach(-1, 1024)


def test_shaped_like_changes_only_the_pattern():
    c = lineage.shaped_like("31b", window=4096, sliding_per_global=1)
    assert (
        c.sliding_window == 4096
        and len(c.global_layers) == 30
        and c.layer_types[-1] == FULL
    )
    c = lineage.shaped_like(
        "31b", window=1024, sliding_per_global=7
    )  # 60 is not a multiple of 8
    assert c.layer_types[-1] == FULL and len(c.global_layers) == 8
    released = Gemma4Config.from_preset("31b")
    same = lineage.shaped_like("31b", window=1024, sliding_per_global=5)
    assert same.layer_types == released.layer_types
    assert accounting.kv_cache_bytes(
        same, 262_144
    ) == accounting.kv_cache_bytes(released, 262_144)


# ----------------------------------------------------------------------- norms
def _gemma3_rmsnorm(
    x: torch.Tensor, w: torch.Tensor, eps: float = 1e-6
) -> torch.Tensor:
    xf = x.float()
    return (
        xf
        * torch.pow(xf.pow(2).mean(-1, keepdim=True) + eps, -0.5)
        * (1.0 + w.float())
    ).to(x.dtype)


def test_converted_gemma3_gain_reproduces_gemma3_norm():
    torch.manual_seed(0)
    x, w = torch.randn(3, 5, 64), 0.1 * torch.randn(64)
    norm = RMSNorm(64)
    with torch.no_grad():
        norm.weight.copy_(lineage.gemma3_norm_weight_to_gemma4(w))
    assert torch.equal(norm(x), _gemma3_rmsnorm(x, w))
    with torch.no_grad():
        norm.weight.copy_(w)  # forgetting the +1
    assert not torch.allclose(norm(x), _gemma3_rmsnorm(x, w), atol=1e-2)
    assert (
        lineage.gemma3_norm_weight_to_gemma4(w.bfloat16()).dtype
        == torch.float32
    )


# -------------------------------------------------------------------- printing
def test_tables():
    text = lineage.format_table(("a", "bb"), [["x", 1], ["yyy", 22]])
    assert text.splitlines() == ["a    bb", "---  --", "x     1", "yyy  22"]
    assert (
        lineage.short_tokens(131_072) == "128K"
        and lineage.short_tokens(1000) == "1000"
    )
    geo = lineage.geometry_rows([lineage.LINEAGE["Gemma 4 31B"]])[0]
    assert geo[2:] == ["5:1", 10, "yes", 1024, "256K", "16x256", "4x512 K=V"]
    num = lineage.numerics_rows([lineage.LINEAGE["Gemma 3 27B"]])[0]
    assert num == [
        "Gemma 3 27B",
        "x*(1+w)",
        "168^-1/2 = 0.0772",
        "-",
        "-",
        "yes",
        "no",
        "10k / 1M, linear x8",
    ]
    header, rows = lineage.columns(
        lineage.NUMERICS_HEADER, [num], ["model", "RoPE base"]
    )
    assert header == ["model", "RoPE base"]
    assert rows == [["Gemma 3 27B", "10k / 1M, linear x8"]]
    g4 = lineage.numerics_rows([lineage.LINEAGE["Gemma 4 12B"]])[0]
    assert g4[-1] == "10k / 1M, 64 of 256 pairs"


def test_reaches_follow_receptive_field():
    assert lineage.reaches(lineage.LINEAGE["Gemma 3 27B"]) == {
        "one run": 5 * 1023,
        "globals off": 52 * 1023,
        "all sliding, shared": 62 * 1023,
        "all sliding": 62 * 1023,
    }
    e2b = lineage.reaches(lineage.LINEAGE["Gemma 4 E2B"])
    assert e2b["globals off"] == 12 * 511 and e2b["all sliding"] == 35 * 511


def test_model_validation():
    m = lineage.LINEAGE["Gemma 3 1B"]
    with pytest.raises(ValueError):
        lineage.LineageModel(
            **{
                **{f: getattr(m, f) for f in m.__dataclass_fields__},
                "num_layers": 5,
            }
        )
    with pytest.raises(ValueError):
        lineage.LineageModel(
            **{
                **{f: getattr(m, f) for f in m.__dataclass_fields__},
                "norm_form": "x",
            }
        )


# --------------------------------------------------------------------- figures
def test_figures_draw_and_merge_identical_curves():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gemma4_lite.book.plots import lineage as lp

    models = [lineage.LINEAGE[name] for name in lineage.KV_COMPARISON]
    fig = lp.plot_kv_lineage(models, label_below=("Gemma 3 27B",))
    left, right = fig.axes
    assert len(left.get_legend().get_texts()) == 4
    # 31B and 26B-A4B have the same global share at every context: one line,
    # one merged legend entry
    assert [t.get_text() for t in right.get_legend().get_texts()][
        -1
    ] == "Gemma 4 31B = 26B-A4B"
    xs, _ = left.get_lines()[0].get_data()
    assert max(xs) == 8192  # Gemma 2 stops at its own maximum context
    for figure in (
        fig,
        lp.plot_lineage_strips(models),
        lp.plot_sliding_reach(models),
        lp.plot_window_ratio_grid("31b", (512, 1024), (1, 5)),
    ):
        plt.close(figure)
    fig, ax = plt.subplots()
    value = lp.plot_shaped_curve(
        ax, "31b", 1024, 5, lineage.context_grid(), reference=models[2]
    )
    assert value == accounting.kv_cache_bytes(
        Gemma4Config.from_preset("31b"), 262_144
    )
    plt.close(fig)
