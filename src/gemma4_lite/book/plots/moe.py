"""Figures for Part 2 (mixture of experts): how dispatch groups tokens by
expert, what one layer stores and uses per token, and routing seen layer by
layer. Chapters: "Expert architecture" and "When MoE meets hybrid attention".
Every colour comes from the book's PALETTE.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

from ...config import Gemma4Config
from . import PALETTE, layer_kind

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# Colours of the parts of a layer (attention takes the colour of the layer's
# kind).
PART_COLORS: dict[str, str] = {
    "attention_sliding": PALETTE["sliding"],
    "attention_global": PALETTE["global"],
    "mlp": PALETTE["dense"],
    "router": PALETTE["highlight"],
    "experts": PALETTE["moe"],
    "embedding": "#C9B79C",
}
PART_LABELS: dict[str, str] = {
    "attention": "attention projections",
    "attention_scores": "attention scores (q·k, weights·v)",
    "mlp": "dense MLP",
    "router": "router",
    "experts": "experts",
}


def _millions(value: float) -> str:
    return f"{value / 1e6:,.1f}M"


def _expert_cmap():
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(
        "moe", ["#FFFFFF", PALETTE["moe"], "#145A38"]
    )


# ------------------------------------------------------------------ chapter 05
def plot_dispatch_sorting(
    experts: Any,
    num_experts: int,
    *,
    figsize: tuple[float, float] = (6.75, 3.4),
) -> Any:
    """Top: the [tokens, k] table of chosen experts as the router returns it
    (one column per token). Bottom: the same N*k assignments after one
    stable sort by expert id: each expert's tokens are now one contiguous
    block, so each used expert runs once on a block of rows."""
    import matplotlib.pyplot as plt
    import numpy as np

    table = np.asarray(experts)
    n, k = table.shape
    flat = table.reshape(-1)
    order = np.argsort(flat, kind="stable")
    cmap = plt.get_cmap("tab20" if num_experts <= 20 else "turbo", num_experts)
    shade = dict(cmap=cmap, vmin=-0.5, vmax=num_experts - 0.5)
    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=figsize, gridspec_kw={"height_ratios": [k, 1.6]}
    )
    top.imshow(table.T, aspect="auto", **shade)
    for t in range(n):
        for c in range(k):
            top.text(
                t,
                c,
                str(table[t, c]),
                ha="center",
                va="center",
                fontsize=10,
                color="white",
                fontweight="bold",
            )
    top.set_xticks(range(n), [f"token {t}" for t in range(n)], fontsize=9)
    top.set_yticks(range(k), [f"choice {c + 1}" for c in range(k)], fontsize=9)
    top.set_title(
        "router output experts[N, k] (expert id in each cell)",
        fontsize=9,
        loc="left",
    )
    sorted_experts = flat[order][None, :]
    bottom.imshow(sorted_experts, aspect="auto", **shade)
    for j, pos in enumerate(order):
        bottom.text(
            j,
            0,
            str(flat[pos]),
            ha="center",
            va="center",
            fontsize=10,
            color="white",
            fontweight="bold",
        )
    bottom.set_xticks(
        range(len(order)), [f"t{p // k}" for p in order], fontsize=9
    )
    bounds = np.flatnonzero(np.diff(sorted_experts[0])) + 0.5
    for edge in bounds:
        bottom.axvline(edge, color=PALETTE["text"], linewidth=2)
    bottom.set_yticks([])
    bottom.set_title(
        "after one stable argsort: one block per used expert "
        "(token below each cell)",
        fontsize=9,
        loc="left",
    )
    fig.tight_layout()
    return fig


SCHEME_COLORS: dict[str, str] = {
    "token_loop": PALETTE["highlight"],
    "expert_loop": PALETTE["dense"],
    "sorted": PALETTE["shared"],
    "grouped": PALETTE["moe"],
    "hf_eager": PALETTE["sliding"],
    "hf_grouped_mm": PALETTE["global"],
}


def plot_dispatch_times(
    times: Mapping[int, Mapping[str, Sequence[float]]],
    *,
    caption: str = "",
    figsize: tuple[float, float] = (6.75, 5.0),
) -> Any:
    """One panel per token count: each scheme's median time in milliseconds
    (bar, value written beside it) and the range over the repeated runs
    (whisker), on a linear axis that starts at zero."""
    import matplotlib.pyplot as plt
    import numpy as np

    counts = list(times)
    cols = 2
    rows = (len(counts) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=figsize, squeeze=False)
    for ax, n in zip(axes.flat, counts):
        names = list(times[n])
        ms = [1e3 * np.asarray(times[n][name]) for name in names]
        med = [float(np.median(m)) for m in ms]
        lo = [m - float(a.min()) for m, a in zip(med, ms)]
        hi = [float(a.max()) - m for m, a in zip(med, ms)]
        y = np.arange(len(names))
        ax.barh(
            y,
            med,
            color=[SCHEME_COLORS.get(a, "grey") for a in names],
            xerr=[lo, hi],
            error_kw=dict(lw=0.8, capsize=2),
        )
        top = max(m + h for m, h in zip(med, hi))
        for yy, m in zip(y, med):
            ax.text(
                m + 0.02 * top, yy + 0.3, f"{m:.3g}", fontsize=8, va="center"
            )
        ax.set_yticks(y, names, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, top * 1.15)
        ax.tick_params(axis="x", labelsize=8)
        ax.set_title(
            f"{n} token{'s' if n > 1 else ''}: ms per call",
            fontsize=9,
            loc="left",
        )
        ax.spines[["top", "right"]].set_visible(False)
    for ax in list(axes.flat)[len(counts) :]:
        ax.axis("off")
    if caption:
        fig.suptitle(caption, fontsize=9)
    fig.tight_layout()
    return fig


def plot_time_vs_bytes(
    megabytes: Mapping[int, float],
    times: Mapping[int, Mapping[str, Sequence[float]]],
    schemes: Sequence[str],
    *,
    caption: str = "",
    figsize: tuple[float, float] = (6.75, 3.4),
) -> Any:
    """Median time per call against the megabytes of expert weights the call
    has to read, one line per scheme and one point per token count
    (labelled), both axes linear from zero."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=figsize)
    counts = list(times)
    for name in schemes:
        xs = [megabytes[n] for n in counts if name in times[n]]
        ys = [
            1e3 * float(np.median(times[n][name]))
            for n in counts
            if name in times[n]
        ]
        ax.plot(
            xs,
            ys,
            "o-",
            color=SCHEME_COLORS.get(name, "grey"),
            label=name,
            lw=1.4,
            ms=4,
        )
    first = schemes[0]
    for n in counts:
        if first in times[n]:
            y = 1e3 * float(np.median(times[n][first]))
            ax.annotate(
                f"{n} tok",
                (megabytes[n], y),
                fontsize=8,
                xytext=(-6, 6),
                textcoords="offset points",
                ha="right",
            )
    ax.set_xlim(0, None)
    ax.set_ylim(0, None)
    ax.set_xlabel("MB of expert weights read per call", fontsize=8)
    ax.set_ylabel("median ms per call", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.legend(frameon=False, fontsize=8, loc="upper left")
    ax.spines[["top", "right"]].set_visible(False)
    if caption:
        ax.set_title(caption, fontsize=9, loc="left")
    fig.tight_layout()
    return fig


def _budget_stack(
    ax: "Axes",
    y: float,
    budget: Mapping[str, Mapping[str, int]],
    key: str,
    kind: str,
    scale: float,
    height: float = 0.6,
) -> float:
    left = 0.0
    for part in ("attention", "attention_scores", "mlp", "router", "experts"):
        value = budget[part][key] / scale
        if value <= 0:
            continue
        color = (
            PART_COLORS[f"attention_{kind}"]
            if part.startswith("attention")
            else PART_COLORS[part]
        )
        ax.barh(
            y,
            value,
            left=left,
            height=height,
            color=color,
            edgecolor="white",
            linewidth=0.6,
            hatch="..." if part == "attention_scores" else None,
        )
        left += value
    return left


def plot_layer_budget(
    budgets: Mapping[str, Mapping[str, Mapping[str, int]]],
    *,
    context_length: int,
    figsize: tuple[float, float] = (6.75, 5.4),
) -> Any:
    """Three panels for one sliding and one global layer: parameters stored,
    parameters one token uses, and FLOPs per token (at ``context_length``),
    each stacked by part."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    fig, axes = plt.subplots(3, 1, figsize=figsize, sharey=True)
    panels = [
        ("stored", 1e6, "parameters stored (millions)"),
        ("active", 1e6, "parameters one token uses (millions)"),
        ("flops", 1e6, f"MFLOPs per token (context {context_length:,})"),
    ]
    for ax, (key, scale, title) in zip(axes, panels):
        for row, (kind, budget) in enumerate(budgets.items()):
            end = _budget_stack(ax, row, budget, key, kind, scale)
            ax.text(end, row, f"  {end:,.0f}", va="center", fontsize=8)
        ax.set_title(title, fontsize=9, loc="left")
        ax.set_yticks(
            range(len(budgets)), [f"{kind} layer" for kind in budgets]
        )
        ax.tick_params(labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
        ax.set_xlim(0, ax.get_xlim()[1] * 1.08)
        ax.invert_yaxis() if ax is axes[0] else None
    handles = [
        Patch(facecolor=PALETTE["sliding"], label="attention (sliding)"),
        Patch(facecolor=PALETTE["global"], label="attention (global)"),
        Patch(
            facecolor="white",
            edgecolor=PALETTE["text"],
            hatch="...",
            label="scores (no weights)",
        ),
        Patch(facecolor=PART_COLORS["mlp"], label="dense MLP 2112"),
        Patch(facecolor=PART_COLORS["router"], label="router"),
        Patch(facecolor=PART_COLORS["experts"], label="experts"),
    ]
    fig.legend(
        handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=8
    )
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def plot_active_vs_total(
    grid: Mapping[int, Mapping[int, tuple[int, int]]],
    *,
    released: tuple[int, int],
    figsize: tuple[float, float] = (6.75, 3.4),
) -> Any:
    """The widget's static twin. ``grid[width][top_k] = (active, stored)``
    parameters of one layer. Left: active parameters per token against top-k,
    one line per expert width; right: stored parameters per expert width (top-k
    does not change them). The released (width, k) is marked."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(
        1, 2, figsize=figsize, gridspec_kw={"width_ratios": [3, 2]}
    )
    widths = sorted(grid)
    shades = plt.get_cmap("Greens")(
        [0.45 + 0.5 * i / max(len(widths) - 1, 1) for i in range(len(widths))]
    )
    for width, shade in zip(widths, shades):
        ks = sorted(grid[width])
        left.plot(
            ks,
            [grid[width][k][0] / 1e6 for k in ks],
            marker="o",
            markersize=3,
            color=shade,
            label=f"expert width {width}",
        )
    w0, k0 = released
    left.plot(
        [k0],
        [grid[w0][k0][0] / 1e6],
        marker="*",
        markersize=14,
        color=PALETTE["highlight"],
        markeredgecolor=PALETTE["text"],
        linestyle="none",
        label=f"released: {k0} of 128, width {w0}",
    )
    left.set_xlabel("experts per token (top-k)", fontsize=8)
    left.set_ylabel("active parameters per layer (M)", fontsize=8)
    left.legend(frameon=False, fontsize=8)
    stored = [grid[w][min(grid[w])][1] / 1e6 for w in widths]
    bars = right.bar([str(w) for w in widths], stored, color=shades)
    for bar, value in zip(bars, stored):
        right.text(
            bar.get_x() + bar.get_width() / 2,
            value,
            f"{value:,.0f}",
            ha="center",
            va="bottom",
            fontsize=8,
        )
    right.set_xlabel("expert width", fontsize=8)
    right.set_ylabel("stored parameters per layer (M)", fontsize=8)
    for ax in (left, right):
        ax.tick_params(labelsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------ chapter 06
def _layer_title(
    ax: "Axes", config: Gemma4Config, layer: int, fontsize: int = 9
) -> None:
    kind = layer_kind(config, layer)
    ax.set_title(
        f"layer {layer} ({kind})",
        fontsize=fontsize,
        color=PALETTE[kind],
        fontweight="bold",
    )


def draw_token_expert_map(
    ax: "Axes",
    assignment: Any,
    config: Gemma4Config,
    layer: int,
    *,
    token_labels: Sequence[str] | None = None,
    vmax: float | None = None,
) -> Any:
    """One layer's [tokens, experts] map: colour = the token's combination
    weight for that expert.
    """
    import numpy as np

    data = np.asarray(assignment, dtype=float)
    image = ax.imshow(
        data,
        cmap=_expert_cmap(),
        vmin=0,
        vmax=vmax or data.max(),
        aspect="auto",
        interpolation="nearest",
    )
    _layer_title(ax, config, layer)
    ax.set_xlabel("expert", fontsize=8)
    step = max(1, data.shape[1] // 4)
    ax.set_xticks(range(0, data.shape[1], step))
    ax.tick_params(labelsize=8)
    if token_labels is not None:
        ax.set_yticks(
            range(len(token_labels)),
            token_labels,
            fontsize=8,
            family="monospace",
        )
    else:
        ax.set_ylabel("token position", fontsize=8)
    return image


def plot_token_expert_maps(
    assignments: Sequence[Any],
    config: Gemma4Config,
    *,
    layers: Sequence[int] | None = None,
    token_labels: Sequence[str] | None = None,
    columns: int = 3,
    figsize: tuple[float, float] | None = None,
) -> Any:
    """Small multiples of the token-to-expert map, one panel per layer (the
    widget's static twin).
    """
    import matplotlib.pyplot as plt
    import numpy as np

    layers = list(range(len(assignments))) if layers is None else list(layers)
    rows = -(-len(layers) // columns)
    fig, axes = plt.subplots(
        rows,
        columns,
        figsize=figsize or (6.75, 5.4 * rows),
        squeeze=False,
        layout="constrained",
    )
    vmax = max(float(np.asarray(assignments[i]).max()) for i in layers)
    image = None
    for ax, layer in zip(axes.flat, layers):
        image = draw_token_expert_map(
            ax,
            assignments[layer],
            config,
            layer,
            token_labels=token_labels,
            vmax=vmax,
        )
        if ax not in axes[:, 0]:
            ax.set_yticklabels([])
            ax.set_ylabel("")
    for ax in list(axes.flat)[len(layers) :]:
        ax.axis("off")
    bar = fig.colorbar(image, ax=axes, shrink=0.5, aspect=30)
    bar.set_label("combination weight", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    return fig


def plot_expert_usage(
    usage: Any,
    config: Gemma4Config,
    *,
    title: str | None = None,
    figsize: tuple[float, float] = (6.75, 3.0),
) -> Any:
    """Heatmap of layers x experts: each expert's share of the layer's
    assignments, relative to the balanced share 1/E (1.0 = exactly balanced).
    Row labels are coloured by attention kind."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    data = np.asarray(usage, dtype=float) * config.num_experts
    fig, ax = plt.subplots(figsize=figsize)
    top = max(2.0, float(data.max()))
    image = ax.imshow(
        data,
        cmap="PuOr_r",
        norm=TwoSlopeNorm(vmin=0.0, vcenter=1.0, vmax=top),
        aspect="auto",
        interpolation="nearest",
    )
    ax.set_yticks(
        range(data.shape[0]),
        [f"layer {i} ({layer_kind(config, i)})" for i in range(data.shape[0])],
        fontsize=8,
    )
    for label, i in zip(ax.get_yticklabels(), range(data.shape[0])):
        label.set_color(PALETTE[layer_kind(config, i)])
    ax.set_xlabel("expert", fontsize=8)
    ax.set_xticks(range(0, data.shape[1], max(1, data.shape[1] // 16)))
    ax.tick_params(axis="x", labelsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    bar = fig.colorbar(image, ax=ax)
    bar.set_label("load / balanced load", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig


def plot_overlap(
    rows: Sequence[Mapping[str, float]],
    config: Gemma4Config,
    *,
    errors: Sequence[Mapping[str, float]] | None = None,
    title: str = "",
    figsize: tuple[float, float] = (6.75, 3.8),
) -> Any:
    """Shared experts per layer (rows of
    :func:`~gemma4_lite.book.routing.overlap_table`): neighbouring tokens,
    repeats of the same token, and any two tokens, with error bars from
    ``errors`` (same keys), against the chance level k^2/E (dashed line) and
    the load-adjusted chance k^2 sum u^2 (a black tick per layer)."""
    import matplotlib.pyplot as plt
    import numpy as np

    fig, ax = plt.subplots(figsize=figsize)
    k = config.top_k_experts
    width = 0.27
    layers = np.arange(len(rows))
    colors = [PALETTE[layer_kind(config, i)] for i in layers]
    bars = (
        ("adjacent", -width, dict(color=colors), "neighbouring tokens"),
        (
            "same_token",
            0.0,
            dict(color=colors, alpha=0.45, hatch="//", edgecolor="white"),
            "same token, other position",
        ),
        (
            "any_pair",
            width,
            dict(color=PALETTE["dense"], alpha=0.6),
            "any two tokens",
        ),
    )
    for key, shift, style, label in bars:
        err = None if errors is None else [e[key] for e in errors]
        ax.bar(
            layers + shift,
            [r[key] for r in rows],
            width,
            yerr=err,
            error_kw=dict(lw=0.9, capsize=2),
            label=label,
            **style,
        )
    ax.hlines(
        [r["load_chance"] for r in rows],
        layers - 1.5 * width,
        layers + 1.5 * width,
        color=PALETTE["text"],
        linewidth=1.6,
        label="chance given the layer's load",
    )
    ax.axhline(
        rows[0]["chance"],
        color=PALETTE["text"],
        linestyle="--",
        linewidth=1,
        label=f"chance k²/E = {rows[0]['chance']:.2f}",
    )
    ax.set_xticks(layers, [f"{i}" for i in layers], fontsize=8)
    for tick, i in zip(ax.get_xticklabels(), layers):
        tick.set_color(PALETTE[layer_kind(config, i)])
    ax.set_xlabel("layer (blue sliding, orange global)", fontsize=8)
    ax.tick_params(axis="y", labelsize=8)
    if title:
        ax.set_title(title, fontsize=9, loc="left")
    top = max(
        r[key] + (0 if errors is None else e[key])
        for r, e in zip(rows, errors or [{}] * len(rows))
        for key in ("adjacent", "same_token", "any_pair")
        if r[key] == r[key]
    )
    ax.set_ylim(0, max(top, rows[0]["chance"]) * 1.45)
    ax.spines[["top", "right"]].set_visible(False)
    ax.set_ylabel(f"shared experts (of k = {k})", fontsize=8)
    ax.legend(frameon=False, fontsize=8, loc="upper center", ncol=3)
    fig.tight_layout()
    return fig


def plot_active_parameters(
    counts: Mapping[str, int],
    config: Gemma4Config,
    *,
    figsize: tuple[float, float] = (6.75, 3.4),
) -> Any:
    """Two stacked bars from
    :func:`~gemma4_lite.book.accounting.count_parameters`, each on its own
    scale: everything stored, and what one token uses (embedding, attention,
    dense MLP, router, k of the E experts)."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    k, e = config.top_k_experts, config.num_experts
    rest = (
        counts["norms"]
        + counts["per_layer_input"]
        + counts["per_layer_embedding_table"]
        + counts["per_layer_embedding_other"]
    )
    stored = [
        (
            "embedding (tied head)",
            counts["embedding"],
            PART_COLORS["embedding"],
        ),
        ("attention", counts["attention"], PALETTE["sliding"]),
        ("dense MLP", counts["mlp"], PART_COLORS["mlp"]),
        ("routers + norms", counts["router"] + rest, PART_COLORS["router"]),
        ("experts", counts["experts"], PART_COLORS["experts"]),
    ]
    active = [
        (n, v * k // e if n == "experts" else v, c) for n, v, c in stored
    ]
    fig, axes = plt.subplots(2, 1, figsize=figsize)
    for ax, parts, title in zip(
        axes, (stored, active), ("stored", "used per token")
    ):
        total = sum(v for _, v, _ in parts) / 1e9
        left = 0.0
        for name, value, color in parts:
            ax.barh(
                0,
                value / 1e9,
                left=left,
                color=color,
                edgecolor="white",
                linewidth=0.8,
            )
            if value / 1e9 > 0.06 * total:
                ax.text(
                    left + value / 2e9,
                    0,
                    f"{value / 1e9:.2f}",
                    ha="center",
                    va="center",
                    fontsize=8,
                )
            left += value / 1e9
        ax.text(
            left,
            0,
            f"  {left:.2f}B",
            va="center",
            fontsize=9,
            fontweight="bold",
        )
        ax.set_xlim(0, total * 1.12)
        ax.set_yticks([0], [title])
        ax.set_xlabel("parameters (billions)", fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
    handles = [Patch(facecolor=c, label=n) for n, _, c in stored]
    fig.legend(
        handles=handles, loc="lower center", ncol=5, frameon=False, fontsize=8
    )
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig
