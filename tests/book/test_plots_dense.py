"""The Part 3 figures draw, fit the text column and keep labels readable
(at least 8 pt at a width of 6.75 in)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from gemma4_lite import Gemma4Config  # noqa: E402
from gemma4_lite.book import cost_model as cm  # noqa: E402
from gemma4_lite.book.plots import dense  # noqa: E402

MODELS = {
    "12B": Gemma4Config.from_preset("12b"),
    "26B-A4B": Gemma4Config.from_preset("26b-a4b"),
    "31B": Gemma4Config.from_preset("31b"),
}
CONTEXTS = [1024 * i for i in (1, 64, 128, 256)]
DEVICES = list(cm.HARDWARE.values())


FIGURES = [
    lambda: dense.plot_component_stack(MODELS),
    lambda: dense.plot_layer_parameters(MODELS),
    lambda: dense.plot_kv_variants(
        {m: {"a": 1.0, "b": 2.0} for m in MODELS}, 262_144
    ),
    lambda: dense.plot_flops_vs_context(MODELS, CONTEXTS),
    lambda: dense.plot_expert_coverage(128, 8, [1, 8, 32], {1: 8.0, 8: 51.0}),
    lambda: dense.plot_throughput_vs_batch(
        MODELS, cm.HARDWARE["H100"], [1, 8, 64, 512], 1024
    ),
    lambda: dense.plot_device_grid(
        MODELS, DEVICES, 4096, labels=list(cm.HARDWARE)
    ),
    lambda: dense.plot_memory_vs_context(MODELS, DEVICES, CONTEXTS, "bf16"),
    lambda: dense.plot_measured_vs_model(
        {"decode, batch 1": {"dense": 0.5, "MoE": 0.4}}
    ),
]


@pytest.mark.parametrize("index", range(len(FIGURES)))
def test_figure_fits_the_column_with_readable_text(index):
    fig = FIGURES[index]()
    assert fig.get_figwidth() == pytest.approx(6.75)
    sizes = [t.get_fontsize() for t in fig.findobj(matplotlib.text.Text)
             if t.get_text().strip()]  # fmt: skip
    assert sizes and min(sizes) >= 8
    plt.close("all")


def test_component_legend_lists_only_visible_parts():
    fig = dense.plot_component_stack(MODELS)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "norms, router" not in labels
    assert "experts (idle)" in labels
    plt.close(fig)


def _texts(fig):
    return [t for t in fig.findobj(matplotlib.text.Text) if t.get_text()]


def test_device_grid_says_no_fit_in_words_and_draws_no_markers():
    fig = dense.plot_device_grid(MODELS, DEVICES, 4096)
    words = [t.get_text() for t in _texts(fig)]
    assert "no fit" in words
    assert not any("\u00d7" in w for w in words)
    # the 31B in bf16 fits the H100 (80 GiB less the reserve) at 4K
    h100 = cm.HARDWARE["H100"]
    step = cm.decode_roofline(MODELS["31B"], h100, 1, 4096, "bf16")
    assert f"{step.tokens_per_second:,.0f}" in words
    plt.close(fig)


def test_memory_labels_do_not_overprint():
    fig = dense.plot_memory_vs_context(MODELS, DEVICES, CONTEXTS, "bf16")
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    names = [hw.name.split(" (")[0] for hw in DEVICES]
    labels = [
        t.get_window_extent(renderer)
        for t in _texts(fig)
        if any(t.get_text().startswith(n + ":") for n in names)
    ]
    assert len(labels) >= 4  # the RTX 4090 and this CPU are 0.4 GB apart
    for i, a in enumerate(labels):
        for b in labels[i + 1 :]:
            assert not a.overlaps(b)
    plt.close(fig)


def test_throughput_marks_each_swap_of_the_pair():
    h100 = cm.HARDWARE["H100"]
    batches = [2**i for i in range(10)]
    fig = dense.plot_throughput_vs_batch(MODELS, h100, batches, 1024)
    words = " ".join(t.get_text() for t in _texts(fig))
    for precision in ("bf16", "int4"):
        for batch in cm.throughput_crossovers(
            MODELS["12B"], MODELS["26B-A4B"], h100, 1024, precision
        ):
            assert f"swap at {batch}" in words
    plt.close(fig)


def test_flops_figure_marks_where_attention_overtakes_the_weights():
    fig = dense.plot_flops_vs_context(MODELS, [1024 * i for i in (1, 256)])
    words = [t.get_text() for t in _texts(fig)]
    for config in MODELS.values():
        cross = dense.attention_overtakes_weights(config)
        flops = cm.flops_per_token(config, cross)
        before = cm.flops_per_token(config, cross - 1024)
        assert flops["attention"] >= flops["weights"] > before["attention"]
        assert f"{cross // 1024}K" in words
    plt.close(fig)
