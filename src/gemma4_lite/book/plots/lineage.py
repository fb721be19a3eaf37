"""Figures for "The evolution from Gemma 3"
(notebooks/03_evolution_from_gemma3.ipynb).

Layer kinds use :data:`PALETTE`; generations use :data:`GENERATION_COLORS`.
matplotlib is imported inside the functions, as in the rest of
:mod:`gemma4_lite.plots`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from .. import accounting
from ..lineage import (
    LineageModel,
    context_grid,
    global_share,
    kv_cache_bytes,
    kv_curve,
    reaches,
    shaped_like,
    short_tokens,
)
from . import GENERATION_COLORS, PALETTE

if TYPE_CHECKING:
    from matplotlib.axes import Axes

GIB = 2**30
# Two models of one generation in one figure: the second gets a dashed line.
_LINESTYLES = ("-", "--", ":")


def _styles(models: Sequence[LineageModel]) -> list[tuple[str, str]]:
    seen: dict[str, int] = {}
    out = []
    for m in models:
        k = seen.get(m.generation, 0)
        seen[m.generation] = k + 1
        out.append(
            (
                GENERATION_COLORS[m.generation],
                _LINESTYLES[k % len(_LINESTYLES)],
            )
        )
    return out


def _context_axis(ax: "Axes", contexts: Sequence[int]) -> None:
    ax.set_xscale("log", base=2)
    ax.set_xticks(list(contexts))
    ax.set_xticklabels([short_tokens(n) for n in contexts])
    ax.minorticks_off()
    ax.set_xlabel("context length (tokens)")


def _gib_axis(
    ax: "Axes", label: str = "KV cache, bf16, batch 1 (GiB)"
) -> None:
    """A log y axis in GiB labelled at 1-2-5 steps (0.2, 0.5, 1, 2, 5, ...)."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullLocator

    ax.set_yscale("log")
    ax.yaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    ax.yaxis.set_minor_locator(NullLocator())
    ax.set_ylabel(label)


def _shade(color: str, amount: float) -> tuple[float, float, float]:
    """``color`` blended towards white (amount < 0) or black (amount > 0)."""
    from matplotlib.colors import to_rgb

    r, g, b = to_rgb(color)
    target = 0.0 if amount > 0 else 1.0
    a = abs(amount)
    return (r + (target - r) * a, g + (target - g) * a, b + (target - b) * a)


# ---------------------------------------------------------------------- strips
def plot_lineage_strips(
    models: Sequence[LineageModel],
    *,
    figsize: tuple[float, float] | None = None,
) -> Any:
    """One row of boxes per model (blue sliding, orange global); the last layer
    is outlined, since whether it is global is one of the changes between Gemma
    3 and Gemma 4."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    depth = max(m.num_layers for m in models)
    fig, ax = plt.subplots(
        figsize=figsize or (6.75, 0.62 * len(models) + 1.3), dpi=100
    )
    for row, m in enumerate(models):
        y = -row * 1.25
        for i, kind in enumerate(m.layer_types):
            colour = (
                PALETTE["sliding"]
                if kind == "sliding_attention"
                else PALETTE["global"]
            )
            last = i == m.num_layers - 1
            ax.add_patch(
                Rectangle(
                    (i, y),
                    0.9,
                    0.8,
                    facecolor=colour,
                    edgecolor=PALETTE["text"] if last else "white",
                    linewidth=1.6 if last else 0.4,
                )
            )
        ax.text(
            -1.0,
            y + 0.4,
            f"{m.name}\n{m.ratio}, W={m.sliding_window}, "
            f"{short_tokens(m.max_context)}",
            ha="right",
            va="center",
            fontsize=8,
            color=PALETTE["text"],
        )
    bottom = -1.25 * (len(models) - 1)
    for i in range(0, depth, 10):  # layer numbers under the last strip
        ax.text(i + 0.45, bottom - 0.35, str(i), ha="center", va="center",
                fontsize=8, color=PALETTE["text"])  # fmt: skip
    ax.text(-1.0, bottom - 0.35, "layer", ha="right", va="center",
            fontsize=8, color=PALETTE["text"])  # fmt: skip
    ax.set_xlim(-21, depth + 0.5)
    ax.set_ylim(bottom - 0.7, 1.0)
    ax.axis("off")
    handles = [
        Patch(facecolor=PALETTE["sliding"], label="sliding window (local)"),
        Patch(facecolor=PALETTE["global"], label="global"),
        Patch(
            facecolor="white",
            edgecolor=PALETTE["text"],
            linewidth=1.6,
            label="last layer",
        ),
    ]
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=3,
        frameon=False,
        fontsize=8,
    )
    ax.set_title(
        "Layer patterns: local:global ratio, window, maximum context",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------- KV curves
def plot_kv_vs_context(
    ax: "Axes",
    models: Sequence[LineageModel],
    contexts: Sequence[int],
    *,
    label_below: Sequence[str] = (),
) -> None:
    """bf16 KV-cache GiB against context, each model drawn only up to its own
    maximum context (a dot marks the end; the legend gives its value, so no
    label can overlap a curve). ``label_below`` is kept for compatibility
    and no longer used."""
    top = 0.0
    for m, (colour, style) in zip(models, _styles(models)):
        xs, ys = kv_curve(m, contexts)
        gib = [y / GIB for y in ys]
        top = max(top, gib[-1])
        ax.plot(
            xs,
            gib,
            color=colour,
            linestyle=style,
            linewidth=2.2,
            label=f"{m.name}: {gib[-1]:.1f} GiB at {short_tokens(xs[-1])}",
        )
        ax.plot(
            xs[-1],
            gib[-1],
            "o",
            color=colour,
            markersize=7,
            markeredgecolor="white",
            zorder=3,
        )
    _context_axis(ax, contexts)
    _gib_axis(ax)
    ax.set_ylim(top=top * 2.2)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", frameon=False)


def plot_global_share(
    ax: "Axes", models: Sequence[LineageModel], contexts: Sequence[int]
) -> None:
    """Share of the KV bytes held by global layers, against context (same
    cut-off and end marks). Curves that coincide exactly are drawn once and
    named together in the legend."""
    drawn: dict[tuple[float, ...], int] = {}
    labels: list[str] = []
    lines = []
    for m, (colour, style) in zip(models, _styles(models)):
        xs, _ = kv_curve(m, contexts)
        share = [100 * global_share(m, n) for n in xs]
        key = tuple(round(v, 9) for v in share) + tuple(float(x) for x in xs)
        if key in drawn:
            labels[drawn[key]] += (
                f" = {m.name.replace(m.generation + ' ', '')}"
            )
            continue
        drawn[key] = len(labels)
        labels.append(m.name)
        (line,) = ax.plot(
            xs, share, color=colour, linestyle=style, linewidth=2.2
        )
        lines.append(line)
        ax.plot(
            xs[-1],
            share[-1],
            "o",
            color=colour,
            markersize=7,
            markeredgecolor="white",
            zorder=3,
        )
    _context_axis(ax, contexts)
    ax.set_ylim(0, 100)
    ax.set_ylabel("KV bytes in global layers (%)")
    ax.grid(True, alpha=0.3)
    ax.legend(lines, labels, fontsize=8, loc="lower right", frameon=False)


def plot_kv_lineage(
    models: Sequence[LineageModel],
    contexts: Sequence[int] | None = None,
    *,
    label_below: Sequence[str] = (),
) -> Any:
    """The chapter's main figure: KV bytes (left) and the global layers' share
    of them (right).
    """
    import matplotlib.pyplot as plt

    contexts = list(contexts or context_grid())
    fig, (left, right) = plt.subplots(2, 1, figsize=(6.75, 7.6), dpi=100)
    plot_kv_vs_context(left, models, contexts, label_below=label_below)
    left.set_title(
        "KV cache against context, up to each model's maximum", fontsize=9.5
    )
    plot_global_share(right, models, contexts)
    right.set_title(
        "Where the bytes live: share in global layers", fontsize=9.5
    )
    fig.tight_layout()
    return fig


# ----------------------------------------------------------------------- reach
def plot_sliding_reach(models: Sequence[LineageModel]) -> Any:
    """Per model, on a linear axis: how far back sliding attention alone
    could carry information if every layer were sliding, L x (W - 1)
    (the "all sliding" case of
    :data:`~gemma4_lite.book.receptive_field.REACH_CASES`), against the
    maximum context (black tick). Where the bar stops short of the tick,
    only the global layers reach the start of the context."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.75, 0.5 * len(models) + 1.4), dpi=100)
    right = max(max(reaches(m)["all sliding"], m.max_context) for m in models)
    for row, m in enumerate(models):
        reach = reaches(m)["all sliding"]
        ax.barh(row, reach, color=GENERATION_COLORS[m.generation], height=0.6)
        ax.plot(
            [m.max_context] * 2,
            [row - 0.42, row + 0.42],
            color=PALETTE["text"],
            linewidth=2,
        )
        ax.text(
            max(reach, m.max_context) + 0.02 * right,
            row,
            f"{reach:,} = {reach / m.max_context:.2f} x context",
            va="center",
            fontsize=8,
        )
    ax.set_yticks(range(len(models)))
    ax.set_yticklabels([m.name for m in models], fontsize=8)
    ax.invert_yaxis()
    ticks = [0, 65_536, 131_072, 196_608, 262_144]
    ticks = [t for t in ticks if t <= right * 1.05] + (
        [] if right <= 262_144 else [right]
    )
    ax.set_xticks(ticks, [short_tokens(t) for t in ticks], fontsize=8)
    ax.set_xlim(0, right * 1.75)
    ax.set_xlabel(
        "tokens back (bars: every layer sliding, L(W - 1); "
        "tick: maximum context)",
        fontsize=8,
    )
    ax.set_title(
        "Reach of sliding windows alone, against the context to cover",
        fontsize=9.5,
    )
    ax.grid(True, axis="x", alpha=0.3)
    fig.tight_layout()
    return fig


# -------------------------------------------------------------------- what-ifs
def ratio_label(sliding_per_global: int | None) -> str:
    return (
        "all global"
        if sliding_per_global is None
        else f"{sliding_per_global}:1"
    )


def plot_shaped_curve(
    ax: "Axes",
    preset: str,
    window: int,
    sliding_per_global: int | None,
    contexts: Sequence[int],
    *,
    reference: LineageModel | None = None,
    mark_context: int | None = None,
) -> int:
    """KV GiB of ``preset`` re-shaped to ``window`` and ``sliding_per_global``
    (the widget's panel), with the released model as a grey reference. Returns
    the bytes at ``mark_context`` (or the last context)."""
    config = shaped_like(
        preset, window=window, sliding_per_global=sliding_per_global
    )
    ys = [accounting.kv_cache_bytes(config, n) / GIB for n in contexts]
    if reference is not None:
        ref = [kv_cache_bytes(reference, n) / GIB for n in contexts]
        ax.plot(
            contexts,
            ref,
            color=PALETTE["dense"],
            linewidth=1.5,
            linestyle="--",
            label=f"released ({reference.ratio}, "
            f"W={reference.sliding_window})",
        )
    ax.plot(
        contexts,
        ys,
        color=GENERATION_COLORS["Gemma 4"],
        linewidth=2.4,
        label=f"{ratio_label(sliding_per_global)}, W={window}",
    )
    at = mark_context if mark_context is not None else contexts[-1]
    value = accounting.kv_cache_bytes(config, at)
    ax.plot(
        at,
        value / GIB,
        "o",
        color=PALETTE["highlight"],
        markersize=8,
        markeredgecolor=PALETTE["text"],
    )
    _context_axis(ax, contexts)
    _gib_axis(ax)
    ax.grid(True, alpha=0.3)
    ax.legend(fontsize=8.5, loc="upper left", frameon=False)
    return value


def plot_window_ratio_grid(
    preset: str,
    windows: Sequence[int],
    ratios: Sequence[int | None],
    contexts: Sequence[int] | None = None,
    *,
    released: tuple[int, int] = (1024, 5),
) -> Any:
    """Static twin of the widget: one panel per local:global ratio, one line
    per window (darker = wider), all panels on the same axes; a yellow dot
    marks the released setting ``(window, ratio)`` at the longest context."""
    import matplotlib.pyplot as plt

    contexts = list(contexts or context_grid())
    cols = 2
    rows = -(-len(ratios) // cols)
    fig, grid = plt.subplots(
        rows, cols, figsize=(6.75, 2.7 * rows + 0.5), dpi=100, sharey=True,
        squeeze=False,
    )  # fmt: skip
    axes = [ax for row in grid for ax in row]
    for ax in axes[len(ratios) :]:
        ax.axis("off")
    axes = axes[: len(ratios)]
    for ax, ratio in zip(axes, ratios):
        for k, window in enumerate(windows):
            config = shaped_like(
                preset, window=window, sliding_per_global=ratio
            )
            ys = [accounting.kv_cache_bytes(config, n) / GIB for n in contexts]
            amount = -0.55 + 1.0 * k / max(len(windows) - 1, 1)
            ax.plot(
                contexts,
                ys,
                color=_shade(PALETTE["sliding"], amount),
                linewidth=2.0,
                label=f"W={window}",
            )
            if (window, ratio) == released:
                ax.plot(
                    contexts[-1],
                    ys[-1],
                    "o",
                    color=PALETTE["highlight"],
                    markersize=9,
                    markeredgecolor=PALETTE["text"],
                    zorder=3,
                    label="released 31B",
                )
        ax.set_title(f"local:global = {ratio_label(ratio)}", fontsize=9)
        _context_axis(ax, contexts)
        ax.set_xticks(contexts[::2])
        ax.set_xticklabels([short_tokens(n) for n in contexts[::2]])
        _gib_axis(ax, "")
        ax.grid(True, alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.xaxis.label.set_fontsize(8)
    for n, ax in enumerate(axes):
        if n % cols == 0:
            ax.set_ylabel("KV cache, bf16 (GiB)", fontsize=8)
        else:
            ax.tick_params(labelleft=False)
    handles, labels = [], []
    for ax in axes:
        for h, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(h)
                labels.append(label)
    axes[0].legend(
        handles, labels, fontsize=8, loc="upper left", frameon=False
    )
    fig.suptitle(
        f"A {preset.upper()}-shaped model: KV cache for other windows and "
        "ratios",
        fontsize=9,
    )
    fig.tight_layout()
    return fig
