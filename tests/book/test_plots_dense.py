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
    lambda: dense.plot_device_grid(MODELS, DEVICES, 4096),
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
