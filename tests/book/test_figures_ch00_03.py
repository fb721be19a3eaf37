"""Figures of chapters 00-03 that were redesigned for the book's text column
(about 675 px): they draw, are at most 6.75 inches wide, and label nothing in
a font smaller than 8 points."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from gemma4_lite import Gemma4Config  # noqa: E402
from gemma4_lite.book import lineage  # noqa: E402
from gemma4_lite.book import sliding_window as sw  # noqa: E402
from gemma4_lite.book.plots import global_attention as gplots  # noqa: E402
from gemma4_lite.book.plots import lineage as lplots  # noqa: E402
from gemma4_lite.book.plots import overview as oplots  # noqa: E402
from gemma4_lite.book.plots import plot_layer_strips  # noqa: E402
from gemma4_lite.book.plots import sliding as splots  # noqa: E402

NAMES = {"E2B": "e2b", "E4B": "e4b", "12B": "12b", "26B-A4B": "26b-a4b",
         "31B": "31b"}  # fmt: skip


def _configs():
    return {k: Gemma4Config.from_preset(v) for k, v in NAMES.items()}


def _figures():
    configs = _configs()
    models = [lineage.LINEAGE[n] for n in lineage.KV_COMPARISON]
    costs = {
        name: (sw.window_cost(c), sw.window_cost(c, 1536 - c.sliding_window))
        for name, c in configs.items()
    }
    return {
        "strips": plot_layer_strips(configs),
        "parameters": oplots.plot_parameter_breakdown(
            configs, {"E2B": 5.1, "31B": 30.7}
        ),
        "kv per token": oplots.plot_kv_per_token(configs, 131_072),
        "kv small multiples": oplots.plot_kv_small_multiples(
            configs, [4096, 131_072]
        ),
        "window trade-off": splots.plot_window_tradeoff(costs),
        "receptive grid": gplots.plot_receptive_field_grid(
            configs, {k: [8192] for k in configs}
        ),
        "kv lineage": lplots.plot_kv_lineage(models),
        "reach": lplots.plot_sliding_reach(models),
        "lineage strips": lplots.plot_lineage_strips(models),
        "window x ratio": lplots.plot_window_ratio_grid(
            "31b", (512, 1024), (1, 5, 11)
        ),
        "masks": splots.plot_mask_pair(length=14, window=5, query=10),
        "ring": splots.plot_ring_strip(sw.ring_trace(8, 24), steps=[2, 13]),
        "chunk coverage": splots.plot_chunk_coverage(
            {"naive": sw.chunk_coverage(8, 6, 5, naive=True)},
            start=6,
            window=8,
        ),
    }


@pytest.fixture(scope="module")
def figures():
    figs = _figures()
    yield figs
    for fig in figs.values():
        plt.close(fig)


def test_figures_fit_the_text_column(figures):
    for name, fig in figures.items():
        assert fig.get_figwidth() <= 6.75 + 1e-9, name


def test_no_text_below_8_points(figures):
    for name, fig in figures.items():
        fig.canvas.draw()
        texts = fig.findobj(matplotlib.text.Text)
        small = [
            t.get_text()
            for t in texts
            if t.get_text().strip() and t.get_fontsize() < 8
        ]
        assert not small, (name, small[:5])


def test_strips_number_every_layer(figures):
    texts = {t.get_text() for t in figures["strips"].axes[0].texts}
    assert {str(i) for i in range(60)} <= texts
