"""Figures for the chapter "Sliding-window layers"
(``notebooks/01_sliding_window_layers.ipynb``).

Layer kinds keep the book's colours (``PALETTE``). The few extra categories
drawn here are not layer kinds: keys a query needed but lost (``LOST``), logits
that came out NaN (``BROKEN``), and cells that are right (``RIGHT``).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

import torch

from ...config import Gemma4Config
from ..accounting import kv_cache_layer_bytes
from ..masks import causal_mask, sliding_window_mask
from . import PALETTE, mask_heatmap

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..sliding_window import DecodeTrace, RingStep, WindowCost

LOST = "#C8453B"  # a key the query needed but the cache no longer had
BROKEN = "#2F2F2F"  # NaN: a query was left with no key at all
RIGHT = "#DCEBDD"  # matches uncached attention
MIB = 1024**2


# ----------------------------------------------------------------------- masks
def plot_mask_pair(length: int, window: int, query: int) -> Any:
    """Causal and sliding masks side by side, with one query's visible keys
    outlined.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(6.75, 3.7), dpi=100)
    for ax, (name, mask, color) in zip(
        axes,
        [
            ("causal (global layer)", causal_mask(length), PALETTE["global"]),
            (
                f"sliding window, W = {window}",
                sliding_window_mask(length, window),
                PALETTE["sliding"],
            ),
        ],
    ):
        keys = [k for k in range(length) if mask[query, k]]
        mask_heatmap(
            ax, mask, color=color, highlight=[(query, k) for k in keys]
        )
        ax.set_title(
            f"{name}\nquery {query} sees {len(keys)} keys: "
            f"{keys[0]}…{keys[-1]}",
            fontsize=9,
        )
        ax.set_xticks(range(0, length, 2))
        ax.set_yticks(range(0, length, 2))
    left = query - window + 1
    axes[1].annotate(
        f"key {left - 1} = q − W:\nfirst one dropped",
        xy=(left - 1, query),
        xytext=(0.5, length - 2.2),
        fontsize=8,
        ha="left",
        arrowprops=dict(arrowstyle="->", color=PALETTE["text"], lw=0.8),
    )
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------ ring
def draw_ring(ax: "Axes", step: "RingStep") -> None:
    """The W slots of a ring buffer as a wheel: each wedge shows the position
    it holds ('·' = empty); the slot written at this step is outlined."""
    from matplotlib.patches import Wedge

    size = len(step.slot_pos)
    span = 360.0 / size
    for slot, pos in enumerate(step.slot_pos):
        start = 90.0 - (slot + 1) * span
        newest = slot == step.written_slot
        ax.add_patch(
            Wedge(
                (0, 0),
                1.0,
                start,
                start + span,
                width=0.5,
                facecolor=PALETTE["sliding"]
                if pos >= 0
                else PALETTE["masked"],
                edgecolor=PALETTE["highlight"] if newest else "white",
                linewidth=3 if newest else 1.5,
                zorder=3 if newest else 2,
            )
        )
        mid = math.radians(start + span / 2)
        ax.text(
            0.75 * math.cos(mid),
            0.75 * math.sin(mid),
            str(pos) if pos >= 0 else "·",
            ha="center",
            va="center",
            fontsize=8,
            fontweight="bold" if newest else "normal",
            color=PALETTE["text"],
            zorder=4,
        )
        ax.text(
            1.17 * math.cos(mid),
            1.17 * math.sin(mid),
            f"s{slot}",
            ha="center",
            va="center",
            fontsize=8,
            color="#777777",
        )
    ax.text(
        0,
        0,
        f"p={step.position}",
        ha="center",
        va="center",
        fontsize=8,
    )
    ax.set_xlim(-1.4, 1.4)
    ax.set_ylim(-1.4, 1.4)
    ax.set_aspect("equal")
    ax.axis("off")


def draw_timeline(
    ax: "Axes", step: "RingStep", total: int, window: int
) -> None:
    """Positions 0..total-1 as boxes: in the query's window (blue), evicted
    (grey, struck), not yet generated (white). The query is outlined; under
    each box, the slot p % W it lives in."""
    from matplotlib.patches import Rectangle

    seen = set(step.visible)
    for p in range(total):
        if p in seen:
            face, text_color = PALETTE["sliding"], PALETTE["text"]
        elif p <= step.position:
            face, text_color = PALETTE["masked"], "#9A9A9A"
        else:
            face, text_color = "white", "#CCCCCC"
        query = p == step.position
        ax.add_patch(
            Rectangle(
                (p, 0),
                0.9,
                0.9,
                facecolor=face,
                edgecolor=PALETTE["highlight"] if query else "#D0D0D0",
                linewidth=2.5 if query else 0.6,
                zorder=3 if query else 2,
            )
        )
        ax.text(
            p + 0.45,
            0.45,
            str(p),
            ha="center",
            va="center",
            fontsize=8,
            color=text_color,
            zorder=4,
        )
        if face == PALETTE["masked"]:
            ax.plot(
                [p + 0.1, p + 0.8],
                [0.15, 0.75],
                color="#B5B5B5",
                lw=0.8,
                zorder=4,
            )
        ax.text(
            p + 0.45,
            -0.3,
            f"{p % window}",
            ha="center",
            va="center",
            fontsize=8,
            color="#888888",
        )
    lo, hi = min(seen), max(seen)
    ax.annotate(
        "",
        xy=(lo, 1.15),
        xytext=(hi + 0.9, 1.15),
        arrowprops=dict(arrowstyle="<->", color=PALETTE["text"], lw=0.8),
    )
    ax.text(
        (lo + hi + 0.9) / 2,
        1.45,
        f"query {step.position} sees {len(seen)} keys: {lo}…{hi}",
        ha="center",
        va="center",
        fontsize=8,
    )
    ax.text(-0.3, -0.3, "slot", ha="right", va="center", fontsize=8,
            color="#888888")  # fmt: skip
    ax.set_xlim(-1.6, total + 0.1)
    ax.set_ylim(-0.6, 1.8)
    ax.axis("off")


def plot_ring_step(
    trace: Sequence["RingStep"], step: int, total: int | None = None
) -> Any:
    """One decode step of the ring buffer: the wheel of slots and the timeline
    of positions.
    """
    import matplotlib.pyplot as plt

    window = len(trace[0].slot_pos)
    total = total or len(trace)
    fig, (ax_ring, ax_line) = plt.subplots(
        1,
        2,
        figsize=(6.75, 1.9),
        dpi=100,
        gridspec_kw={"width_ratios": [1.35, 3.4]},
    )
    draw_ring(ax_ring, trace[step])
    draw_timeline(ax_line, trace[step], total, window)
    fig.tight_layout()
    return fig


def plot_ring_strip(
    trace: Sequence["RingStep"], steps: Sequence[int], total: int | None = None
) -> Any:
    """Several decode steps stacked: the ring-buffer widget's static twin."""
    import matplotlib.pyplot as plt

    window = len(trace[0].slot_pos)
    total = total or len(trace)
    fig, axes = plt.subplots(
        len(steps),
        2,
        figsize=(6.75, 1.75 * len(steps)),
        dpi=100,
        gridspec_kw={"width_ratios": [1.35, 3.4]},
    )
    for row, step in enumerate(steps):
        draw_ring(axes[row, 0], trace[step])
        draw_timeline(axes[row, 1], trace[step], total, window)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------- chunked prefill
def _category_image(ax: "Axes", data: Any, colors: Sequence[str]) -> None:
    from matplotlib.colors import ListedColormap

    ax.imshow(
        data,
        cmap=ListedColormap(list(colors)),
        vmin=-0.5,
        vmax=len(colors) - 0.5,
        interpolation="nearest",
        aspect="auto",
    )


def plot_chunk_coverage(
    coverages: dict[str, tuple[torch.Tensor, torch.Tensor]],
    start: int,
    window: int,
) -> Any:
    """For each cache: the keys a chunk's queries need (rows = queries,
    columns = key positions), coloured by whether the cache still had them."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(
        1,
        len(coverages),
        figsize=(6.75, 3.4),
        dpi=100,
        squeeze=False,
    )
    for ax, (name, (needed, seen)) in zip(axes[0], coverages.items()):
        data = torch.zeros(needed.shape, dtype=torch.int64)
        data[needed & seen] = 1
        data[needed & ~seen] = 2
        data[~needed & seen] = (
            3  # would be a second bug: a key outside the window
        )
        _category_image(
            ax,
            data.numpy(),
            [PALETTE["masked"], PALETTE["sliding"], LOST, PALETTE["global"]],
        )
        lost = int((needed & ~seen).sum())
        ax.set_title(f"{name}: {lost} needed keys lost", fontsize=9)
        ax.set_yticks(
            range(needed.shape[0]),
            [str(start + q) for q in range(needed.shape[0])],
        )
        ax.set_xticks(range(needed.shape[1]))
        ax.tick_params(labelsize=8)
        ax.set_xlabel("key position")
        ax.set_ylabel("query position (chunk)")
        ax.axvline(start - 0.5, color=PALETTE["text"], lw=1, ls="--")
    fig.legend(
        handles=[
            Patch(facecolor=PALETTE["sliding"], label="needed and seen"),
            Patch(facecolor=LOST, label="needed but overwritten"),
            Patch(
                facecolor=PALETTE["masked"],
                edgecolor="#CCCCCC",
                label="outside the window",
            ),
            Line2D(
                [],
                [],
                color=PALETTE["text"],
                lw=1,
                ls="--",
                label="cached | chunk",
            ),
        ],
        loc="lower center",
        ncol=4,
        frameon=False,
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_chunk_error_grid(
    grids: dict[str, list[list[float]]],
    starts: Sequence[int],
    lengths: Sequence[int],
    window: int,
    tol: float,
) -> Any:
    """For each cache: is one prefill chunk right, wrong, or NaN, by tokens
    already cached (rows) and chunk length (columns). The staircase marks the
    free slots, max(W - start, 0)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(
        1, len(grids), figsize=(6.75, 3.9), dpi=100, squeeze=False
    )
    for ax, (name, grid) in zip(axes[0], grids.items()):
        data = [
            [2 if math.isnan(e) else (1 if e > tol else 0) for e in row]
            for row in grid
        ]
        _category_image(ax, data, [RIGHT, LOST, BROKEN])
        # staircase: chunks to the right of it are longer than the free slots
        xs, ys = [], []
        for r, s in enumerate(starts):
            free = max(window - s, 0)
            x = lengths.index(free) + 0.5 if free in lengths else -0.5
            xs += [x, x]
            ys += [r - 0.5, r + 0.5]
        ax.plot(xs, ys, color=PALETTE["highlight"], lw=2.2)
        wrong = sum(v == 1 for row in data for v in row)
        nans = sum(v == 2 for row in data for v in row)
        ax.set_title(
            f"{name}:\n{wrong} wrong, {nans} NaN of "
            f"{len(starts) * len(lengths)} chunks",
            fontsize=9,
        )
        ax.set_xticks(range(len(lengths)), [str(n) for n in lengths])
        ax.set_yticks(range(len(starts)), [str(s) for s in starts])
        ax.set_xlabel("chunk length L")
        ax.set_ylabel("tokens already cached")
        ax.tick_params(labelsize=8)
    fig.legend(
        handles=[
            Patch(
                facecolor=RIGHT, label=f"matches uncached (|error| ≤ {tol:g})"
            ),
            Patch(facecolor=LOST, label="wrong logits"),
            Patch(facecolor=BROKEN, label="NaN (a query had no key left)"),
            Patch(
                facecolor="white",
                edgecolor=PALETTE["highlight"],
                label=f"L = free slots (W = {window})",
            ),
        ],
        loc="lower center",
        ncol=2,
        frameon=False,
        fontsize=8,
    )
    fig.tight_layout(rect=(0, 0.12, 1, 1))
    return fig


# ------------------------------------------------------------- bytes and reach
def plot_kv_bytes_vs_context(
    configs: dict[str, Gemma4Config], max_context: int, points: int = 257
) -> Any:
    """KV bytes (bf16) held by one sliding and one global layer of each config
    as the context grows.
    """
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1,
        len(configs),
        figsize=(6.75, 3.2),
        dpi=100,
        squeeze=False,
    )
    contexts = [round(i * max_context / (points - 1)) for i in range(points)]
    for ax, (name, config) in zip(axes[0], configs.items()):
        sliding, glob = config.sliding_layers[0], config.global_layers[0]
        curves = [kv_cache_layer_bytes(config, t) for t in contexts]
        ax.plot(
            contexts,
            [c[sliding] / MIB for c in curves],
            color=PALETTE["sliding"],
            lw=2.2,
            label=f"sliding layer {sliding}",
        )
        ax.plot(
            contexts,
            [c[glob] / MIB for c in curves],
            color=PALETTE["global"],
            lw=2.2,
            label=f"global layer {glob}",
        )
        window = config.sliding_window
        ax.axvline(window, color="#999999", lw=0.8, ls="--")
        flat = curves[-1][sliding] / MIB
        ax.annotate(
            f"flat from W = {window}:\n{flat:g} MiB",
            xy=(window, flat),
            xytext=(
                window + 0.12 * max_context,
                flat * 0.35 + curves[-1][glob] / MIB * 0.3,
            ),
            fontsize=8,
            arrowprops=dict(arrowstyle="->", lw=0.8),
        )
        ax.set_title(f"{name}: KV bytes of one layer", fontsize=9)
        ax.set_xlabel("context length (tokens)")
        ax.set_ylabel("MiB")
        ax.set_xlim(0, max_context)
        ax.set_ylim(0, None)
        ax.legend(fontsize=8, loc="upper left", frameon=False)
        ax.grid(alpha=0.25)
    fig.tight_layout()
    return fig


def plot_ring_occupancy(trace: "DecodeTrace", window: int) -> Any:
    """Positions held by a ring layer and by a global layer while decoding
    token after token.
    """
    import matplotlib.pyplot as plt

    steps = range(1, len(trace.ring_filled) + 1)
    fig, ax = plt.subplots(figsize=(6.75, 3.0), dpi=100)
    ax.plot(
        steps,
        trace.global_held,
        color=PALETTE["global"],
        lw=2,
        label="global layer: positions held",
    )
    ax.plot(
        steps,
        trace.ring_filled,
        color=PALETTE["sliding"],
        lw=2.4,
        label="ring layer: slots filled",
    )
    ax.plot(
        steps,
        trace.ring_size,
        color=PALETTE["sliding"],
        lw=1,
        ls=":",
        label="ring layer: slots allocated",
    )
    ax.axhline(window, color="#999999", lw=0.6)
    ax.set_xlabel("tokens decoded")
    ax.set_ylabel("positions in the cache")
    ax.set_title(
        f"Decoding {len(trace.ring_filled)} = "
        f"{len(trace.ring_filled) // window}×W tokens (W = {window})",
        fontsize=9,
    )
    ax.legend(fontsize=8, frameon=False, loc="upper left")
    ax.grid(alpha=0.25)
    fig.tight_layout()
    return fig


def plot_influence(rows: dict[str, tuple[list[int], int, int]]) -> Any:
    """One strip per model: which input positions the last position's output
    depends on (blue, measured) and the predicted receptive field (the
    bracket). ``rows[label] = (measured positions, query position, predicted
    number of positions)``.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, ax = plt.subplots(figsize=(6.75, 1.0 + 0.8 * len(rows)), dpi=100)
    for r, (label, (found, query, predicted)) in enumerate(rows.items()):
        y = -1.3 * r
        found_set = set(found)
        for p in range(query + 1):
            ax.add_patch(
                Rectangle(
                    (p, y),
                    0.88,
                    0.8,
                    linewidth=0,
                    facecolor=PALETTE["sliding"]
                    if p in found_set
                    else PALETTE["masked"],
                )
            )
        lo = query - predicted + 1
        ax.plot(
            [lo, lo, query + 0.88, query + 0.88],
            [y + 0.85, y + 0.95, y + 0.95, y + 0.85],
            color=PALETTE["text"],
            lw=0.9,
        )
        ax.text(
            -1.0,
            y + 0.4,
            f"{label}\nreach {len(found) - 1} tokens back\n"
            f"(predicted {predicted - 1})",
            ha="right",
            va="center",
            fontsize=8,
        )
    ax.set_xlim(-16, query + 1.5)
    ax.set_ylim(-1.3 * (len(rows) - 1) - 0.3, 1.2)
    ax.set_yticks([])
    ax.set_xticks(range(0, query + 1, 10))
    ax.set_xlabel("input position")
    for side in ("left", "right", "top"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def plot_window_tradeoff(
    costs: dict[str, tuple["WindowCost", "WindowCost"]],
) -> Any:
    """Each variant with its real window (filled) and with the other one
    (hollow), one marker shape per variant: what the sliding layers cost
    (cache bytes, top; share of the token's compute, bottom) against the
    reach of a run of sliding layers between two globals. Sized for the
    book's text column; a legend instead of labels, so nothing overlaps."""
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D

    markers = ["o", "s", "D", "^", "v", "P", "X"]
    fig, axes = plt.subplots(2, 1, figsize=(6.75, 6.9), dpi=100, sharex=True)
    handles = []
    for (name, (real, other)), marker in zip(costs.items(), markers):
        for ax, get in (
            (axes[0], lambda c: c.sliding_kv_bytes / MIB),
            (axes[1], lambda c: 100 * c.sliding_flops_share),
        ):
            ax.annotate(
                "",
                xy=(other.run_reach, get(other)),
                xytext=(real.run_reach, get(real)),
                arrowprops=dict(
                    arrowstyle="->", color="#AAAAAA", lw=1, shrinkA=6,
                    shrinkB=6,
                ),
            )  # fmt: skip
            ax.scatter(
                [real.run_reach], [get(real)], s=60, marker=marker,
                color=PALETTE["sliding"], edgecolor=PALETTE["text"],
                lw=0.8, zorder=3,
            )  # fmt: skip
            ax.scatter(
                [other.run_reach], [get(other)], s=60, marker=marker,
                facecolor="white", edgecolor=PALETTE["sliding"], lw=1.5,
                zorder=3,
            )  # fmt: skip
        handles.append(
            Line2D(
                [], [], marker=marker, ls="none", color=PALETTE["sliding"],
                markeredgecolor=PALETTE["text"], markersize=8, label=name,
            )
        )  # fmt: skip
    handles += [
        Line2D([], [], marker="o", ls="none", color=PALETTE["sliding"],
               markersize=8, label="released window"),
        Line2D([], [], marker="o", ls="none", markerfacecolor="white",
               markeredgecolor=PALETTE["sliding"], markersize=8,
               label="other window (512 / 1024)"),
    ]  # fmt: skip
    axes[0].set_yscale("log")
    ticks = [5, 10, 20, 50, 100, 200, 500, 1000]
    axes[0].set_yticks(ticks, [str(t) for t in ticks])
    axes[0].set_ylabel("sliding KV cache, MiB")
    axes[1].set_ylabel("sliding attention,\n% of weight FLOPs")
    axes[1].set_xlabel("reach of one run of sliding layers (tokens back)")
    axes[1].set_ylim(0, None)
    for ax in axes:
        ax.grid(alpha=0.25)
        ax.tick_params(labelsize=8)
    axes[0].set_title(
        "What the window costs in bytes (bf16, one sequence)", fontsize=9
    )
    axes[1].set_title("What it costs in compute", fontsize=9)
    fig.legend(
        handles=handles, fontsize=8, loc="lower center", frameon=False,
        ncol=4,
    )  # fmt: skip
    fig.tight_layout(rect=(0, 0.09, 1, 1))
    return fig
