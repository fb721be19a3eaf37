"""Figures of the chapter "The full model": where two implementations part
(the layer-by-layer debugger), what the KV cache holds while generating,
and what the sampling settings leave of the next-token distribution.

Every figure is drawn for the site's text column (at most 6.75 inches
wide), labels at 8 points or more; the figures with many small labels are
narrower, so that a phone shrinks them less.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Sequence

from . import PALETTE

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..debugger import LayerReport

WIDTH = 6.75
FLOOR = 1e-9  # where bitwise-equal (zero) differences are drawn
# Distinct line colours for comparisons (none is a layer kind's colour).
LINES = ["#222222", "#C0392B", "#7D3C98", "#1F77B4", "#B7950B"]
SHORT = {"per-layer input": "PLE"}


def _log_ticks(ax: "Axes", low: float, high: float) -> None:
    """Value-labelled powers of ten, the floor labelled "0 (equal)"."""
    first, last = math.floor(math.log10(low)), math.ceil(math.log10(high))
    stride = 2 if last - first > 8 else 1
    ticks = [10.0**e for e in range(first, last + 1, stride)]
    labels = [f"1e{int(round(math.log10(t)))}" for t in ticks]
    if low == FLOOR:
        ticks[0], labels[0] = FLOOR, "0 (equal)"
    ax.set_yticks(ticks, labels)
    ax.set_ylim(low / 2, high * 3)


def _global_spans(ax: "Axes", config) -> None:
    for i in config.global_layers:
        ax.axvspan(
            i - 0.5, i + 0.5, color=PALETTE["global"], alpha=0.12, linewidth=0
        )


def plot_divergence(
    reports: dict[str, "LayerReport"],
    *,
    stage: str = "output",
    relative: bool = True,
    title: str | None = None,
) -> Any:
    """The largest difference of the residual stream at each layer's exit
    (by default relative to the largest value the reference holds there),
    one line per comparison, on a value-labelled log axis (zero, i.e.
    bitwise equal, drawn at the bottom). Global layers are shaded."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, ax = plt.subplots(figsize=(WIDTH, 3.4))
    config = next(iter(reports.values())).config
    _global_spans(ax, config)
    layers = list(range(config.num_hidden_layers))
    high = FLOOR
    for (label, report), color in zip(reports.items(), LINES):
        diffs = report.per_layer(stage, relative=relative)
        values = [max(v, FLOOR) for v in diffs]
        high = max(high, *values)
        ax.plot(
            layers,
            values,
            marker="o",
            markersize=4,
            color=color,
            label=label,
            linewidth=1.5,
        )
    ax.set_yscale("log")
    _log_ticks(ax, FLOOR, high)
    ax.minorticks_off()
    ax.set_xticks(layers)
    ax.set_xlabel("layer", fontsize=9)
    ax.set_ylabel(
        "max |difference| / max |value|" if relative else "max |difference|",
        fontsize=9,
    )
    ax.tick_params(labelsize=8)
    handles, labels = ax.get_legend_handles_labels()
    handles.append(Patch(color=PALETTE["global"], alpha=0.3))
    labels.append("global layer")
    ax.legend(
        handles,
        labels,
        fontsize=8,
        loc="upper left",
        bbox_to_anchor=(1.01, 1.0),
        frameon=False,
    )
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def plot_stage_map(reports: dict[str, "LayerReport"]) -> Any:
    """One panel per report: layers across, sub-blocks down; the bottom
    row (each layer's output, the residual stream) continues with the final
    norm and the logits. Coloured by the largest difference on one
    logarithmic scale for all panels, which reaches below 1e-2 so that
    small differences keep a colour of their own; cells that are bitwise
    equal are light grey and marked 0."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm

    n = len(reports)
    first = next(iter(reports.values()))
    stages = first.stages
    fig, axes = plt.subplots(
        n,
        1,
        figsize=(5.2, (0.42 * len(stages) + 0.75) * n + 0.6),
        squeeze=False,
        layout="constrained",
    )
    values = [
        v
        for r in reports.values()
        for v in [r.final_norm, r.logits]
        + [x for row in r.layers for x in row.values()]
        if v > 0
    ]
    low = min(values + [1e-3])
    high = max(values + [1.0])
    norm = LogNorm(
        vmin=10.0 ** math.floor(math.log10(min(low, 1e-2))),
        vmax=10.0 ** math.ceil(math.log10(high)),
    )
    cmap = plt.get_cmap("viridis").with_extremes(bad=PALETTE["masked"])
    image = None
    for ax, (label, report) in zip(axes[:, 0], reports.items()):
        layers = len(report.layers)
        data = np.full((len(stages), layers + 2), np.nan)
        for i, row in enumerate(report.layers):
            for j, stage in enumerate(stages):
                data[j, i] = row[stage]
        data[-1, layers] = report.final_norm
        data[-1, layers + 1] = report.logits
        shown = np.ma.masked_invalid(np.where(data > 0, data, np.nan))
        image = ax.imshow(shown, cmap=cmap, norm=norm, aspect="auto")
        for (y, x), value in np.ndenumerate(data):
            if np.isnan(value):
                continue
            text = "0" if value == 0 else f"{value:.0e}".replace("e-0", "e-")
            text = text.replace("e+00", "").replace("e+0", "e")
            dark = value > 0 and norm(value) < 0.6
            ax.text(
                x,
                y,
                text,
                ha="center",
                va="center",
                fontsize=8,
                color="white" if dark else PALETTE["text"],
            )
        ax.set_yticks(range(len(stages)), [SHORT.get(s, s) for s in stages])
        ax.set_xticks(
            range(layers + 2),
            # staggered: two narrow columns side by side
            [str(i) for i in range(layers)] + ["norm\n", "\nlogits"],
        )
        ax.tick_params(labelsize=8)
        for i in report.config.global_layers:
            ax.get_xticklabels()[i].set_color(PALETTE["global"])
            ax.get_xticklabels()[i].set_fontweight("bold")
        ax.axvline(layers - 0.5, color="white", linewidth=3)
        ax.set_title(label, fontsize=9)
    axes[-1, 0].set_xlabel(
        "layer (global in bold orange), then final norm and logits",
        fontsize=8,
    )
    bar = fig.colorbar(image, ax=axes[:, 0], shrink=0.9)
    bar.set_label("max |difference|", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    return fig


def plot_cache_bytes(
    steps: Sequence[int],
    series: dict[str, Sequence[int]],
    *,
    title: str | None = None,
) -> Any:
    """Bytes of the KV cache against the number of tokens it holds, one
    line per series (measured buffers and the accounting formula)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
    styles = ["-", "--", ":"]
    for (label, values), color, style in zip(series.items(), LINES, styles):
        ax.plot(
            steps,
            [v / 1024 for v in values],
            style,
            color=color,
            label=label,
            linewidth=2,
        )
    ax.set_xlabel("tokens in the cache", fontsize=9)
    ax.set_ylabel("KiB", fontsize=9)
    ax.set_ylim(bottom=0)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    ax.grid(alpha=0.3)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    return fig


def token_label(piece: str) -> str:
    """A token as a reader can see it: a leading space as "_", a newline
    as "\\n", nothing else escaped."""
    shown = piece.replace("\n", "\\n")
    if shown.startswith(" "):
        shown = "_" + shown[1:]
    return shown or "(empty)"


def sampling_panel(
    ax: "Axes",
    pieces: Sequence[str],
    probs: Sequence[float],
    title: str,
) -> None:
    """Horizontal bars of the next-token probabilities after the sampling
    settings, best token at the top, its text as the label; tokens the
    settings removed show as light grey rows."""
    ys = list(range(len(pieces)))
    colors = [
        PALETTE["sliding"] if p > 0 else PALETTE["masked"] for p in probs
    ]
    removed = [1.0 if p == 0 else 0.0 for p in probs]
    ax.barh(ys, removed, color=PALETTE["masked"], alpha=0.5, linewidth=0)
    ax.barh(
        ys,
        probs,
        color=colors,
        edgecolor=PALETTE["dense"],
        linewidth=0.5,
    )
    ax.set_yticks(ys, [token_label(p) for p in pieces], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, 1)
    ax.set_xticks([0, 0.5, 1.0])
    ax.tick_params(axis="x", labelsize=8)
    kept = sum(p > 0 for p in probs)
    ax.set_title(f"{title}: {kept} of {len(probs)} kept", fontsize=9)


def plot_sampling_grid(
    panels: Sequence[tuple[str, Sequence[str], Sequence[float]]],
) -> Any:
    """One :func:`sampling_panel` per setting, two per row."""
    import matplotlib.pyplot as plt

    rows = math.ceil(len(panels) / 2)
    fig, axes = plt.subplots(rows, 2, figsize=(5.2, 2.9 * rows), squeeze=False)
    for ax, (title, pieces, probs) in zip(axes.flat, panels):
        sampling_panel(ax, pieces, probs, title)
    for ax in axes.flat[len(panels) :]:
        ax.axis("off")
    for ax in axes[-1, :]:
        ax.set_xlabel("probability", fontsize=8)
    fig.tight_layout()
    return fig


def plot_trace_strips(
    configs: dict[str, Any], traces: dict[str, list[dict]]
) -> Any:
    """One row of boxes per model, one box per layer (numbered below):
    colour = attention kind, hatched = KV-shared, green bar = MoE beside
    the dense MLP; the number in a box is the KiB its cache holds after
    the traced prompt (0: it reads another layer's keys and values)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    depth = max(c.num_hidden_layers for c in configs.values())
    rows = len(configs)
    fig, ax = plt.subplots(figsize=(WIDTH, 0.62 * rows + 1.1))
    for r, (name, config) in enumerate(configs.items()):
        y = -r * 1.25
        for i in range(config.num_hidden_layers):
            sliding, shared = config.is_sliding(i), config.is_kv_shared(i)
            kind = "sliding" if sliding else "global"
            ax.add_patch(
                Rectangle(
                    (i, y),
                    0.92,
                    0.8,
                    facecolor=PALETTE[kind],
                    edgecolor=PALETTE["shared"] if shared else "white",
                    hatch="////" if shared else None,
                    linewidth=0.8,
                )
            )
            if config.enable_moe_block:
                # inside the layer's own box, along its bottom edge
                ax.add_patch(
                    Rectangle(
                        (i, y),
                        0.92,
                        0.16,
                        facecolor=PALETTE["moe"],
                        linewidth=0,
                    )
                )
            kib = traces[name][i]["bytes"] / 1024
            ax.text(
                i + 0.46,
                y + 0.48,
                f"{kib:g}",
                ha="center",
                va="center",
                fontsize=8,
                color=PALETTE["text"] if sliding else "white",
                fontweight="bold",
            )
        ax.text(-0.3, y + 0.4, name, ha="right", va="center", fontsize=9)
    ax.set_xlim(-2.6, depth + 0.1)
    ax.set_ylim(-1.25 * (rows - 1) - 0.5, 0.95)
    ax.set_xticks([i + 0.46 for i in range(depth)], range(depth))
    ax.tick_params(axis="x", labelsize=8, length=0)
    ax.set_yticks([])
    for side in ("top", "right", "left", "bottom"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(
        "layer  (number in a box: KiB of cache it holds)", fontsize=9
    )
    handles = [
        Patch(facecolor=PALETTE["sliding"], label="sliding"),
        Patch(facecolor=PALETTE["global"], label="global"),
        Patch(
            facecolor="white",
            edgecolor=PALETTE["shared"],
            hatch="////",
            label="KV-shared",
        ),
        Patch(facecolor=PALETTE["moe"], label="MoE beside the MLP (band)"),
    ]
    ax.legend(
        handles=handles,
        loc="lower center",
        ncol=4,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 1.0),
    )
    fig.tight_layout()
    return fig
