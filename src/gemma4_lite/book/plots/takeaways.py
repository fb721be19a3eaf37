"""Figures of the chapter "Key takeaways"
(``notebooks/13_key_takeaways.ipynb``): the attention scheme of each
comparator, memory per sequence against context, where each design sits
(active parameters against bytes per token), memory layer by layer, and
the seeds of the small-scale experiments."""

from __future__ import annotations

import math
from typing import Any, Mapping, Sequence

from . import GENERATION_COLORS, PALETTE

# One colour per kind of layer. Gemma's kinds keep the book's palette;
# Qwen3-Next's full-attention layers are global layers; DeepSeek's
# window-only layers are sliding layers; a fixed-size recurrent state is
# neutral grey; the two compressed kinds get a brick red and the yellow.
KIND_COLORS: dict[str, str] = {
    "sliding": PALETTE["sliding"],
    "global": PALETTE["global"],
    "shared": PALETTE["shared"],
    "linear_attention": PALETTE["dense"],
    "full_attention": PALETTE["global"],
    "window_only": PALETTE["sliding"],
    "compressed_sparse_attention": "#B5523B",
    "heavily_compressed_attention": PALETTE["highlight"],
}

# Gemma 4 in the Gemma 4 generation colour, Gemma 3 in its own; the two
# other families in hues that are not layer kinds of a Gemma figure.
FAMILY_COLORS: dict[str, str] = {
    "gemma4": GENERATION_COLORS["Gemma 4"],
    "gemma3": GENERATION_COLORS["Gemma 3"],
    "qwen3_next": PALETTE["moe"],
    "deepseek_v4": PALETTE["shared"],
}
_MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")


def _spread(
    values: Sequence[float], gap: float, low: float = 0.0, high: float = 1.0
) -> list[float]:
    """``values`` moved apart so that neighbours are at least ``gap``
    apart, each as little as possible (order kept), then shifted as a
    whole into ``[low, high]`` if they stick out."""
    order = sorted(range(len(values)), key=lambda i: values[i])
    placed = [values[i] for i in order]
    for _ in range(200):
        moved = False
        for j in range(1, len(placed)):
            overlap = gap - (placed[j] - placed[j - 1])
            if overlap > 1e-9:
                placed[j - 1] -= overlap / 2
                placed[j] += overlap / 2
                moved = True
        if not moved:
            break
    if placed and placed[-1] > high:
        placed = [p - (placed[-1] - high) for p in placed]
    if placed and placed[0] < low:
        placed = [p + (low - placed[0]) for p in placed]
    out = [0.0] * len(values)
    for rank, i in enumerate(order):
        out[i] = placed[rank]
    return out


def tokens_label(n: int) -> str:
    """4096 -> "4K", 1048576 -> "1M"."""
    if n >= 2**20 and n % 2**20 == 0:
        return f"{n // 2**20}M"
    if n >= 1024 and n % 1024 == 0:
        return f"{n // 1024}K"
    return f"{n:,}"


def plot_memory_vs_context(
    curves: Mapping[str, tuple[Sequence[int], Sequence[float]]],
    families: Mapping[str, str],
    marks: Sequence[int] = (4096, 131_072, 262_144, 1_048_576),
) -> Any:
    """Memory per sequence (GiB) against context (tokens), both axes
    logarithmic, one line per model up to its context length. Names sit in
    a column right of the axes, each joined to the end of its line, moved
    apart so that no two overprint."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.75, 3.9))
    fig.subplots_adjust(left=0.1, right=0.66, bottom=0.13, top=0.97)
    ends = {}
    for k, (name, (xs, ys)) in enumerate(curves.items()):
        color = FAMILY_COLORS[families[name]]
        ax.plot(xs, ys, color=color, lw=1.4, marker=_MARKERS[k % 8],
                markevery=[i for i, x in enumerate(xs) if x in marks],
                ms=4)  # fmt: skip
        ends[name] = (xs[-1], ys[-1])
    for x in marks:
        ax.axvline(x, color=PALETTE["dense"], lw=0.6, ls=":", zorder=0)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(list(marks), [tokens_label(x) for x in marks], fontsize=8)
    ax.xaxis.set_minor_locator(plt.NullLocator())
    ax.tick_params(axis="y", labelsize=8)
    ax.set_xlabel("context (tokens, log scale)", fontsize=9)
    ax.set_ylabel("GiB per sequence, bf16 (log)", fontsize=9)
    ax.grid(axis="y", which="major", color="#DDDDDD", lw=0.6)
    low, high = ax.get_ylim()
    ax.set_ylim(low, high)
    to_axes = ax.transAxes.inverted()
    fractions = [
        to_axes.transform(ax.transData.transform(end))[1]
        for end in ends.values()
    ]
    for (name, end), y in zip(
        ends.items(), _spread(fractions, 0.072, 0.03, 0.97)
    ):
        ax.annotate(
            name, xy=end, xytext=(1.04, y), textcoords="axes fraction",
            va="center", fontsize=8, color=PALETTE["text"],
            arrowprops=dict(arrowstyle="-", lw=0.5,
                            color=FAMILY_COLORS[families[name]]),
        )  # fmt: skip
    return fig


def _label_positions(fig: Any, ax: Any, points, labels) -> list:
    """For each point, the first of eight offsets (points) at which its
    label overlaps no label placed before and no marker."""
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    offsets = [
        (6, 0, "left", "center"), (-6, 0, "right", "center"),
        (0, 7, "center", "bottom"), (0, -7, "center", "top"),
        (6, 6, "left", "bottom"), (6, -6, "left", "top"),
        (-6, 6, "right", "bottom"), (-6, -6, "right", "top"),
    ]  # fmt: skip
    marker_boxes = []
    for x, y in points:
        px, py = ax.transData.transform((x, y))
        marker_boxes.append((px - 4, py - 4, px + 4, py + 4))
    placed: list[tuple[float, float, float, float]] = []
    chosen = []
    axes_box = ax.get_window_extent(renderer)

    def clash(box) -> bool:
        x0, y0, x1, y1 = box
        if x0 < axes_box.x0 or x1 > axes_box.x1:
            return True
        if y0 < axes_box.y0 or y1 > axes_box.y1:
            return True
        return any(
            x0 < b[2] and b[0] < x1 and y0 < b[3] and b[1] < y1
            for b in placed + marker_boxes
        )

    for (x, y), label in zip(points, labels):
        best = None
        for dx, dy, ha, va in offsets:
            text = ax.annotate(label, (x, y), xytext=(dx, dy),
                               textcoords="offset points", ha=ha, va=va,
                               fontsize=8)  # fmt: skip
            bb = text.get_window_extent(renderer)
            text.remove()
            box = (bb.x0, bb.y0, bb.x1, bb.y1)
            if best is None:
                best = (dx, dy, ha, va, box)
            if not clash(box):
                best = (dx, dy, ha, va, box)
                break
        placed.append(best[4])
        chosen.append(best[:4])
    return chosen


def plot_design_space(
    points: Mapping[str, tuple[float, float]],
    families: Mapping[str, str],
) -> Any:
    """Where each design sits: active parameters per token (x) against
    memory per token of context at 128K (y), both logarithmic; every
    point named beside it, no label on another label or marker."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.75, 3.6))
    fig.subplots_adjust(left=0.11, right=0.97, bottom=0.14, top=0.96)
    names = list(points)
    xy = [points[n] for n in names]
    for k, name in enumerate(names):
        x, y = points[name]
        ax.plot([x], [y], ls="", marker=_MARKERS[k % 8], ms=7,
                color=FAMILY_COLORS[families[name]])  # fmt: skip
    ax.set_xscale("log")
    ax.set_yscale("log")
    xs = [p[0] for p in xy]
    ys = [p[1] for p in xy]
    ax.set_xlim(min(xs) / 2.2, max(xs) * 2.6)
    ax.set_ylim(min(ys) / 1.8, max(ys) * 1.8)
    ax.set_xticks([1, 2, 5, 10, 20, 50], ["1", "2", "5", "10", "20", "50"])
    ax.set_yticks([5, 10, 20, 50, 100], ["5", "10", "20", "50", "100"])
    ax.minorticks_off()
    ax.tick_params(labelsize=8)
    ax.set_xlabel(
        "active parameters per token, embedding tables left out (B)",
        fontsize=9,
    )
    ax.set_ylabel("KiB per token of context at 128K", fontsize=9)
    ax.grid(color="#E6E6E6", lw=0.6)
    for (dx, dy, ha, va), (x, y), name in zip(
        _label_positions(fig, ax, xy, names), xy, names
    ):
        ax.annotate(name, (x, y), xytext=(dx, dy), textcoords="offset points",
                    ha=ha, va=va, fontsize=8)  # fmt: skip
    return fig


def plot_layer_memory(
    kinds: Sequence[str],
    sizes: Sequence[int],
    title: str,
    names: Mapping[str, str],
) -> Any:
    """One bar per layer: the bytes that layer keeps (MiB), coloured by
    the kind of layer, with a legend of the kinds present."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(6.75, 2.5))
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.2, top=0.78)
    mib = [s / 2**20 for s in sizes]
    ax.bar(range(len(sizes)), mib, width=0.85,
           color=[KIND_COLORS[k] for k in kinds])  # fmt: skip
    ax.set_xlim(-0.8, len(sizes) - 0.2)
    ax.set_xlabel("layer", fontsize=9)
    ax.set_ylabel("MiB", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_title(title, fontsize=9, loc="left", pad=24)
    present = list(dict.fromkeys(kinds))
    ax.legend(
        handles=[Patch(color=KIND_COLORS[k], label=names[k])
                 for k in present],
        ncol=min(3, len(present)), fontsize=8, frameon=False,
        loc="lower left", bbox_to_anchor=(0, 1.0), borderaxespad=0.2,
    )  # fmt: skip
    return fig


def plot_attention_scheme(
    strip: Sequence[str],
    rows: Sequence[Mapping[str, Any]],
    past: int = 32,
) -> Any:
    """A small schematic of one model's attention: a strip of its layers
    coloured by kind, then one row per kind of layer showing what a new
    token (at the right end) reads among the ``past`` tokens before it.

    Each row is a mapping with ``label``, ``kind``, and any of: ``raw``
    (how many of the latest tokens are read raw, ``past`` for all),
    ``state`` (True: everything is folded into one fixed-size state),
    ``block`` (tokens pooled into one compressed entry) with ``selected``
    (indices of the entries read, None for all)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    heights = [1.0] + [1.0 + (0.8 if r.get("block") else 0) for r in rows]
    total = sum(heights) + 0.9
    fig, ax = plt.subplots(figsize=(6.75, 0.33 * total + 0.25))
    fig.subplots_adjust(left=0.005, right=0.995, bottom=0.02, top=0.98)
    left, right = 34.0, 99.0
    ax.set_xlim(0, 100)
    ax.set_ylim(-total, 0)
    ax.axis("off")
    y = -0.15
    n = len(strip)
    w = (right - left) / n
    ax.text(left - 1.5, y - 0.4, f"the {n} layers", ha="right", va="center",
            fontsize=8)  # fmt: skip
    for i, kind in enumerate(strip):
        ax.add_patch(Rectangle((left + i * w, y - 0.75), w * 0.88, 0.7,
                               color=KIND_COLORS[kind], lw=0))  # fmt: skip
    y -= heights[0] + 0.15
    state_w = 6.0
    cell = (right - left - state_w) / past
    for row, h in zip(rows, heights[1:]):
        color = KIND_COLORS[row["kind"]]
        mid = y - 0.4
        ax.text(left - 1.5, y - h / 2 + 0.1, row["label"], ha="right",
                va="center", fontsize=8)  # fmt: skip
        raw = row.get("raw", 0)
        for t in range(past):
            read = t >= past - raw
            face = color if read else "white"
            if row.get("state"):
                face = "#E4E4E4"
            ax.add_patch(Rectangle(
                (left + t * cell, mid - 0.32), cell * 0.86, 0.64,
                facecolor=face, edgecolor="#BBBBBB", lw=0.4))  # fmt: skip
        if row.get("state"):
            ax.add_patch(Rectangle((right - state_w + 1, mid - 0.4),
                                   state_w - 1.2, 0.8, facecolor=color,
                                   edgecolor="none"))  # fmt: skip
            ax.text(right - state_w / 2 + 0.4, mid, "S", ha="center",
                    va="center", fontsize=8, color="white")  # fmt: skip
        block = row.get("block")
        if block:
            low = mid - 0.85
            selected = row.get("selected")
            for b in range(past // block):
                on = selected is None or b in selected
                ax.add_patch(Rectangle(
                    (left + b * block * cell, low - 0.3),
                    block * cell - cell * 0.14, 0.6,
                    facecolor=KIND_COLORS[row["block_kind"]] if on
                    else "white",
                    edgecolor="#999999", lw=0.5))  # fmt: skip
        y -= h
    ax.annotate("", xy=(right - state_w, -total + 0.35),
                xytext=(left, -total + 0.35),
                arrowprops=dict(arrowstyle="->", lw=0.6,
                                color="#777777"))  # fmt: skip
    ax.text(left - 1.5, -total + 0.35, f"the {past} tokens before a new one",
            ha="right", va="center", fontsize=8, color="#555555")  # fmt: skip
    return fig


def plot_seed_differences(
    rows: Sequence[tuple[str, Sequence[float]]],
    xlabel: str = "held-out loss minus the reference (nats per token)",
) -> Any:
    """One row per comparison: each seed's paired difference (dots), their
    mean (a bar) and one standard deviation either side (a line), with the
    zero line of "no difference"."""
    import statistics

    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.75, 0.42 * len(rows) + 1.0))
    fig.subplots_adjust(left=0.42, right=0.97, bottom=0.8 / (
        0.42 * len(rows) + 1.0), top=0.97)  # fmt: skip
    ax.axvline(0, color=PALETTE["text"], lw=0.8)
    for i, (label, diffs) in enumerate(rows):
        if not diffs:
            continue
        mean = statistics.fmean(diffs)
        std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
        ax.plot([mean - std, mean + std], [i, i], color=PALETTE["sliding"],
                lw=2, solid_capstyle="butt")  # fmt: skip
        ax.plot([mean], [i], marker="|", ms=14, mew=2,
                color=PALETTE["text"])  # fmt: skip
        ax.plot(diffs, [i] * len(diffs), ls="", marker="o", ms=4,
                color=PALETTE["global"], alpha=0.9)  # fmt: skip
    ax.set_yticks(range(len(rows)), [r[0] for r in rows], fontsize=8)
    ax.set_ylim(len(rows) - 0.5, -0.5)
    ax.tick_params(axis="x", labelsize=8)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.grid(axis="x", color="#E6E6E6", lw=0.6)
    low, high = ax.get_xlim()
    reach = max(abs(low), abs(high))
    ax.set_xlim(-reach, reach)
    return fig


def log_grid(
    low: int, high: int, per_octave: int = 4, multiple: int = 128
) -> list[int]:
    """Token counts from ``low`` to ``high`` spaced evenly on a log axis
    (``per_octave`` per doubling, the powers of two among them), each a
    multiple of ``multiple`` (so that no compression window of 4 or 128
    tokens is half full at a grid point)."""
    steps = round(math.log2(high / low) * per_octave)
    values = {
        multiple * round(low * 2 ** (i / per_octave) / multiple)
        for i in range(steps + 1)
    }
    return sorted(values | {high})


def plot_loss_curves(
    curves: Mapping[str, Sequence[float]],
    colors: Mapping[str, str],
    uniform: float | None = None,
) -> Any:
    """Training loss per step of a few runs (nats per token), one line
    each, named in a legend; ``uniform``, if given, is drawn as a dashed
    line: the loss of a uniform guess over the vocabulary."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.75, 2.6))
    fig.subplots_adjust(left=0.1, right=0.98, bottom=0.18, top=0.96)
    for name, losses in curves.items():
        ax.plot(range(1, len(losses) + 1), losses, color=colors[name],
                lw=1.3, label=name)  # fmt: skip
    if uniform is not None:
        ax.axhline(uniform, color=PALETTE["dense"], lw=1, ls="--",
                   label=f"uniform guess ({uniform:.2f})")  # fmt: skip
    ax.set_xlabel("step", fontsize=9)
    ax.set_ylabel("training loss (nats/token)", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.grid(color="#E6E6E6", lw=0.6)
    ax.legend(fontsize=8, frameon=False)
    return fig
