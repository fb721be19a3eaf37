"""Figures of the chapter "Key takeaways": every model is named, no two
labels overprint, the schematic draws what each row says it reads."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import pytest  # noqa: E402

from gemma4_lite.book import comparators as C  # noqa: E402
from gemma4_lite.book.plots import takeaways as P  # noqa: E402

FAMILIES = {row.name: row.family for row in C.comparators()}


def _text_boxes(fig):
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    # the text itself, not an annotation's leader line
    return [
        (t.get_text(), matplotlib.text.Text.get_window_extent(t, renderer))
        for t in fig.findobj(matplotlib.text.Text)
        if t.get_text().strip() and t.get_visible()
    ]


def _no_overlap(boxes):
    for i, (a, box_a) in enumerate(boxes):
        for b, box_b in boxes[i + 1 :]:
            assert not box_a.overlaps(box_b), (a, b)


def test_spread_keeps_order_gap_and_bounds():
    out = P._spread([0.5, 0.51, 0.52, 0.99], 0.1, 0.0, 1.0)
    assert sorted(out) == out
    assert all(b - a >= 0.1 - 1e-9 for a, b in zip(out, out[1:]))
    assert max(out) <= 1.0 and min(out) >= 0.0


def test_log_grid():
    grid = P.log_grid(1024, 262_144)
    assert grid[0] == 1024 and grid[-1] == 262_144
    assert {4096, 131_072} <= set(grid)
    assert all(n % 128 == 0 for n in grid)
    assert grid == sorted(set(grid))


def test_tokens_label():
    assert [P.tokens_label(n) for n in C.CONTEXTS] == list(C.CONTEXT_LABELS)
    assert P.tokens_label(1000) == "1,000"


def test_memory_figure_names_every_model_without_overprint():
    curves = {}
    for row in C.comparators():
        xs = P.log_grid(1024, row.context_length)
        curves[row.name] = (xs, [C.memory(row, n)["total"] for n in xs])
    fig = P.plot_memory_vs_context(curves, FAMILIES)
    names = [t for t, _ in _text_boxes(fig) if t in FAMILIES]
    assert sorted(names) == sorted(FAMILIES)
    _no_overlap([(t, b) for t, b in _text_boxes(fig) if t in FAMILIES])
    width, _ = fig.get_size_inches()
    assert width <= 7
    plt.close(fig)


def test_design_space_labels_do_not_overprint():
    points = {
        row.name: (
            C.counted(row.name)["active_without_table_and_head"] / 1e9,
            C.kib_per_token(row, 131_072),
        )
        for row in C.comparators()
    }
    fig = P.plot_design_space(points, FAMILIES)
    boxes = _text_boxes(fig)
    assert sorted(t for t, _ in boxes if t in FAMILIES) == sorted(FAMILIES)
    _no_overlap([(t, b) for t, b in boxes if t in FAMILIES])
    plt.close(fig)


@pytest.mark.parametrize("name", ["DeepSeek-V4-Flash", "Gemma 4 E2B"])
def test_layer_memory_figure_has_one_bar_per_layer(name):
    row = C.by_name(name)
    sizes = C.layer_memory(row, 131_072)
    fig = P.plot_layer_memory(C.layer_kinds(row), sizes, name, C.LAYER_KINDS)
    bars = fig.axes[0].patches
    assert len(bars) == len(sizes)
    assert max(b.get_height() for b in bars) == max(sizes) / 2**20
    plt.close(fig)


def test_attention_scheme_colours_what_is_read():
    fig = P.plot_attention_scheme(
        ["sliding"] * 5 + ["global"],
        [dict(label="sliding", kind="sliding", raw=8),
         dict(label="global", kind="global", raw=32)],
        past=32,
    )  # fmt: skip
    colors = [matplotlib.colors.to_hex(p.get_facecolor())
              for p in fig.axes[0].patches]  # fmt: skip
    sliding = P.KIND_COLORS["sliding"].lower()
    glob = P.KIND_COLORS["global"].lower()
    # strip: 5 + 1 layers; rows: 8 of 32 sliding cells, all 32 global
    assert colors.count(sliding) == 5 + 8
    assert colors.count(glob) == 1 + 32
    plt.close(fig)


def test_seed_differences_axis_is_symmetric():
    fig = P.plot_seed_differences([("a", [0.1, 0.2, 0.3]), ("b", [-0.05])])
    low, high = fig.axes[0].get_xlim()
    assert low == -high and high >= 0.3
    plt.close(fig)


def test_loss_curves_one_line_per_run_and_the_uniform_guess():
    fig = P.plot_loss_curves(
        {"a": [3.0, 2.0], "b": [4.0, 5.0, 6.0]},
        {"a": "#000000", "b": "#E8734C"},
        uniform=8.3178,
    )
    lines = fig.axes[0].get_lines()
    assert [len(line.get_xdata()) for line in lines[:2]] == [2, 3]
    assert lines[2].get_ydata()[0] == 8.3178
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels == ["a", "b", "uniform guess (8.32)"]
    plt.close(fig)
