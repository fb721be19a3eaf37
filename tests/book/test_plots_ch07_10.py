"""Figures of chapters 7 and 10: every small segment carries its value,
the global layers are marked, value labels stay off the budget lines and
no two labels overprint."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402

from gemma4_lite import RELEASED, Gemma4Config  # noqa: E402
from gemma4_lite.book import cost_model as cm  # noqa: E402
from gemma4_lite.book import scaling  # noqa: E402
from gemma4_lite.book.plots import PALETTE, dense  # noqa: E402
from gemma4_lite.book.plots.scaling import (  # noqa: E402
    plot_kv_sharing,
    plot_memory,
)

LARGE = {
    "12B": Gemma4Config.from_preset("12b"),
    "26B-A4B": Gemma4Config.from_preset("26b-a4b"),
    "31B": Gemma4Config.from_preset("31b"),
}
ALL = {name.upper(): Gemma4Config.from_preset(name) for name in RELEASED}
BUDGETS = {"phone": 8, "laptop": 16, "RTX 4090": 24, "H100": 80}


def _texts(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    hidden = set()  # tick labels of axes drawn with axis("off")
    for ax in fig.axes:
        if not ax.axison:
            hidden |= {*ax.get_xticklabels(), *ax.get_yticklabels()}
    # the text itself, not an annotation's leader line
    return [
        (t, matplotlib.text.Text.get_window_extent(t, renderer))
        for t in fig.findobj(matplotlib.text.Text)
        if t.get_text().strip() and t.get_visible() and t not in hidden
    ]


def _assert_no_overlap(fig, skip=()):
    boxes = [(t, b) for t, b in _texts(fig) if t.get_text() not in skip]
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            assert not box_a.overlaps(box_b), (a.get_text(), b.get_text())


def test_stack_labels_every_visible_segment_without_overprint():
    fig = dense.plot_component_stack(LARGE)
    shown = " ".join(t.get_text() for t, _ in _texts(fig))
    for config in LARGE.values():
        for value in cm.component_parameters(config).values():
            b = value / 1e9
            if b >= 0.05:
                assert (f"{b:.1f}" if b >= 0.95 else f"{b:.2f}") in shown
    # the small segments the reader asked about are named
    for name in ("global attn 0.52", "embedding 0.74", "dense MLP 0.54"):
        assert name in shown
    _assert_no_overlap(fig)
    plt.close(fig)


def test_layer_figure_ticks_are_the_global_layers():
    fig = dense.plot_layer_parameters(LARGE)
    for ax, config in zip(fig.axes, LARGE.values()):
        assert list(ax.get_xticks()) == config.global_layers
        for label in ax.get_xticklabels():
            assert label.get_color() == PALETTE["global"]
    plt.close(fig)


def _memory_rows(context):
    return {
        name: {
            p: scaling.memory_row(c, bits, context, 16, False)
            for p, bits in scaling.PRECISIONS.items()
        }
        for name, c in ALL.items()
    }


def test_memory_value_labels_stay_off_budget_lines():
    for context in (4096, 32_768, 262_144):
        fig = plot_memory(_memory_rows(context), BUDGETS, title="t")
        ax = fig.axes[0]
        fig.canvas.draw()
        renderer = fig.canvas.get_renderer()
        lines = [ax.transData.transform((gb, 0))[0] for gb in BUDGETS.values()]
        values = [t for t in ax.texts if "GB" not in t.get_text()]
        assert len(values) == 15
        for t in values:
            box = t.get_window_extent(renderer)
            assert not any(box.x0 - 1 <= x <= box.x1 + 1 for x in lines), (
                context,
                t.get_text(),
            )
        _assert_no_overlap(fig)
        plt.close(fig)


def test_kv_sharing_names_each_lender_and_numbers_do_not_overprint():
    edge = {"E2B": ALL["E2B"], "E4B": ALL["E4B"]}
    fig = plot_kv_sharing(edge)
    shown = [t.get_text() for t, _ in _texts(fig)]
    for config in edge.values():
        for lender, readers in scaling.kv_readers(config).items():
            assert any(
                s.startswith(f"layer {lender} ")
                and f"{len(readers)} layers" in s
                for s in shown
            )
    sizes = [t.get_fontsize() for t, _ in _texts(fig)]
    assert min(sizes) >= 8
    _assert_no_overlap(fig)
    plt.close(fig)
