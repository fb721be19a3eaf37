"""Figures for Part 3, the dense models: "Architectural choices" and
"Performance trade-offs". Every number drawn comes from
:mod:`gemma4_lite.book.accounting` or :mod:`gemma4_lite.book.cost_model`.
Figures are 6.75 in wide (the site's text column) with labels of 8 pt or
more.
"""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ...config import Gemma4Config
from .. import cost_model as cm
from ..accounting import layer_parameters
from . import PALETTE

WIDTH = 6.75
# Parameter components: layer kinds keep the book's colours (sliding blue,
# global orange, experts green); the rest are neutral.
COMPONENT_COLORS: dict[str, str] = {
    "embedding": "#B8860B",
    "sliding attention": PALETTE["sliding"],
    "global attention": PALETTE["global"],
    "dense MLP": PALETTE["dense"],
    "experts (used)": PALETTE["moe"],
    "experts (idle)": "#BFE3CF",
    "norms, router": "#444444",
}
# The three large models, one colour each, for line and bar charts
MODEL_COLORS: dict[str, str] = {
    "12B": "#6A4C93",
    "26B-A4B": PALETTE["moe"],
    "31B": "#1F3A5F",
}


# Short names for the callouts of segments too narrow to hold a label
SHORT_NAMES: dict[str, str] = {
    "embedding": "embedding",
    "sliding attention": "sliding attn",
    "global attention": "global attn",
    "dense MLP": "dense MLP",
    "experts (used)": "experts used",
    "experts (idle)": "experts idle",
    "norms, router": "norms, router",
}


def plot_component_stack(configs: Mapping[str, Gemma4Config]) -> Any:
    """One horizontal bar per model: billions of parameters by component.
    Every segment of at least 0.05B carries its value: inside the bar when
    it is wide enough, otherwise in a named callout, above and below the
    bar in turn and spread out so that callouts never overprint (chapter
    7, "Where the parameters go")."""
    import matplotlib.pyplot as plt

    names = list(configs)
    fig, ax = plt.subplots(figsize=(WIDTH, 1.1 * len(names) + 1.4))
    right = (
        max(cm.count_parameters(c)["total"] for c in configs.values())
        / 1e9
        * 1.12
    )
    ax.set_xlim(0, right)
    # billions per typographic point: the axes are about 5.6 in wide
    per_point = right / (5.6 * 72)
    step = 1.7  # rows far enough apart for callouts above and below
    for row, name in enumerate(names):
        y = row * step
        parts = cm.component_parameters(configs[name])
        left = 0.0
        free = [0.0, 0.0]  # where the next callout may start, per side
        side = 0  # callouts alternate above (0) and below (1) the bar
        for part, value in parts.items():
            b = value / 1e9
            if not value:
                continue
            ax.barh(
                y,
                b,
                0.5,
                left=left,
                color=COMPONENT_COLORS[part],
                edgecolor="white",
                linewidth=0.5,
            )
            text = f"{b:.1f}" if b >= 0.95 else f"{b:.2f}"
            if b / per_point >= 5 * len(text) + 2:
                dark = part in ("global attention", "norms, router")
                ax.text(
                    left + b / 2,
                    y,
                    text,
                    ha="center",
                    va="center",
                    fontsize=8,
                    color="white" if dark else PALETTE["text"],
                )
            elif b >= 0.05:
                label = f"{SHORT_NAMES[part]} {text}"
                x = max(left + b / 2 - 4 * per_point, free[side])
                free[side] = x + (len(label) * 6 + 14) * per_point
                sign = -1 if side == 0 else 1
                ax.annotate(
                    label,
                    xy=(left + b / 2, y + sign * 0.25),
                    xytext=(x, y + sign * 0.58),
                    ha="left",
                    va="bottom" if side == 0 else "top",
                    fontsize=8,
                    color=PALETTE["text"],
                    arrowprops={
                        "arrowstyle": "-",
                        "lw": 0.8,
                        "color": COMPONENT_COLORS[part],
                        "shrinkA": 0,
                        "shrinkB": 0,
                    },
                )
                side = 1 - side
            left += b
        ax.text(left + 0.3, y, f"{left:.1f}B", va="center", fontsize=9)
    ys = [row * step for row in range(len(names))]
    ax.set_yticks(ys, names, fontsize=9)
    ax.set_ylim(ys[-1] + 0.9, -0.9)
    ax.set_xlabel("parameters (billions)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    # the legend lists what shows: parts above 0.5% of some model's total
    used = [
        p
        for p in cm.COMPONENTS
        if any(
            cm.component_parameters(c)[p]
            > 0.005 * cm.count_parameters(c)["total"]
            for c in configs.values()
        )
    ]
    from matplotlib.patches import Patch

    ax.legend(
        handles=[Patch(color=COMPONENT_COLORS[p], label=p) for p in used],
        loc="upper center",
        bbox_to_anchor=(0.5, -0.2),
        ncol=4,
        frameon=False,
        fontsize=8,
    )
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def plot_layer_parameters(configs: Mapping[str, Gemma4Config]) -> Any:
    """Parameters of every layer, one panel per model on one shared scale:
    attention (coloured by layer kind), the dense MLP, the experts. Global
    layers are numbered under the axis."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(configs),
        1,
        sharey=True,
        figsize=(WIDTH, 1.55 * len(configs) + 0.5),
    )
    for ax, (name, config) in zip(axes, configs.items()):
        layers = range(config.num_hidden_layers)
        rows = [layer_parameters(config, i) for i in layers]
        attn = [r["attention"] / 1e6 for r in rows]
        mlp = [r["mlp"] / 1e6 for r in rows]
        experts = [r["experts"] / 1e6 for r in rows]
        kinds = [
            "sliding" if config.is_sliding(i) else "global" for i in layers
        ]
        ax.bar(layers, attn, color=[PALETTE[k] for k in kinds], width=0.85)
        ax.bar(layers, mlp, bottom=attn, color=PALETTE["dense"], width=0.85)
        if config.enable_moe_block:
            base = [a + m for a, m in zip(attn, mlp)]
            ax.bar(
                layers, experts, bottom=base, color=PALETTE["moe"], width=0.85
            )
        # the ticks mark the global layers, numbered in the global colour
        ax.set_xticks(config.global_layers)
        ax.set_xticklabels(
            [str(i) for i in config.global_layers],
            fontsize=8,
            color=PALETTE["global"],
            fontweight="bold",
        )
        ax.tick_params(axis="x", color=PALETTE["global"], length=4)
        ax.set_xlim(-0.8, 60)
        ax.tick_params(axis="y", labelsize=8)
        ax.set_title(
            f"{name}: layers 0-{config.num_hidden_layers - 1}; "
            "ticks mark the global layers",
            fontsize=9,
            loc="left",
        )
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    axes[len(axes) // 2].set_ylabel(
        "parameters per layer (millions)", fontsize=9
    )
    axes[-1].set_xlabel("layer", fontsize=9)
    from matplotlib.patches import Patch

    handles = [
        Patch(color=PALETTE["sliding"], label="sliding attention"),
        Patch(color=PALETTE["global"], label="global attention"),
        Patch(color=PALETTE["dense"], label="dense MLP"),
        Patch(color=PALETTE["moe"], label="experts (all stored)"),
    ]
    axes[0].legend(
        handles=handles, loc="upper right", ncol=2, fontsize=8, frameon=False
    )
    fig.tight_layout()
    return fig


def plot_kv_variants(
    rows: Mapping[str, Mapping[str, float]], context: int
) -> Any:
    """Grouped bars: cache GB at ``context`` of each model as released and
    under hypothetical attention layouts (``rows[model][layout]``), each
    bar labelled with its value."""
    import matplotlib.pyplot as plt
    import numpy as np

    models = list(rows)
    layouts = list(next(iter(rows.values())))
    shades = ["#1F3A5F", "#7A93B0", "#C7D3E0"][: len(layouts)]
    fig, ax = plt.subplots(figsize=(WIDTH, 3.0))
    ax.set_ylim(0, max(max(r.values()) for r in rows.values()) * 1.15)
    x = np.arange(len(models))
    width = 0.8 / len(layouts)
    for j, layout in enumerate(layouts):
        values = [rows[m][layout] for m in models]
        bars = ax.bar(
            x + (j - (len(layouts) - 1) / 2) * width,
            values,
            width * 0.95,
            color=shades[j],
            label=layout,
        )
        for bar, v in zip(bars, values):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                v,
                f"{v:.1f}" if v >= 10 else f"{v:.2f}",
                ha="center",
                va="bottom",
                fontsize=8,
            )
    ax.set_xticks(x, models, fontsize=9)
    ax.set_ylabel(f"KV cache at {context // 1024}K tokens (GB)", fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.legend(fontsize=8, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def attention_overtakes_weights(config: Gemma4Config, step: int = 1024) -> int:
    """The first context (a multiple of ``step``) at which a token's
    attention FLOPs reach its weight FLOPs; 0 if not within the model's
    context."""
    weights = cm.flops_per_token(config, 1)["weights"]
    for context in range(step, config.max_position_embeddings + 1, step):
        if cm.flops_per_token(config, context)["attention"] >= weights:
            return context
    return 0


def plot_flops_vs_context(
    configs: Mapping[str, Gemma4Config], contexts: Sequence[int]
) -> Any:
    """GFLOPs per token against context: weights (flat) and weights plus
    attention (rising), per model, on linear axes; a dot, labelled, where
    attention overtakes the weights (the total is twice the weights)."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(WIDTH, 3.2))
    xs = [c / 1024 for c in contexts]
    for name, config in configs.items():
        rows = [cm.flops_per_token(config, c) for c in contexts]
        color = MODEL_COLORS.get(name, PALETTE["dense"])
        ax.plot(
            xs,
            [r["total"] / 1e9 for r in rows],
            color=color,
            lw=2,
            label=f"{name}: weights + attention",
        )
        ax.plot(
            xs,
            [r["weights"] / 1e9 for r in rows],
            color=color,
            lw=1,
            ls="--",
            label=f"{name}: weights only",
        )
        cross = attention_overtakes_weights(config)
        if cross and cross <= contexts[-1]:
            total = cm.flops_per_token(config, cross)["total"] / 1e9
            ax.plot([cross / 1024], [total], "o", color=color, ms=6)
            ax.annotate(
                f"{cross // 1024}K",
                (cross / 1024, total),
                xytext=(-6, 6),
                textcoords="offset points",
                ha="right",
                fontsize=8,
            )
    ax.set_xlabel("context (thousands of tokens)", fontsize=9)
    ax.set_ylabel("GFLOPs per new token", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_ylim(bottom=0)
    ax.set_xlim(0, xs[-1])
    ax.legend(fontsize=8, frameon=False, ncol=2, loc="upper left")
    ax.set_title(
        "dots: where attention overtakes the weights",
        fontsize=8,
        loc="right",
    )
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def plot_expert_coverage(
    num_experts: int,
    top_k: int,
    batches: Sequence[int],
    simulated: Mapping[int, float],
) -> Any:
    """Distinct experts per layer against batch: the uniform-routing
    formula as a line, the router simulation as dots."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(WIDTH, 2.8))
    grid = range(1, max(batches) + 1)
    ax.plot(
        grid,
        [cm.expected_distinct_experts(num_experts, top_k, b) for b in grid],
        color=PALETTE["moe"],
        lw=2,
        label=f"E(1-(1-k/E)^B), E={num_experts}, k={top_k}",
    )
    ax.plot(
        list(simulated),
        list(simulated.values()),
        "o",
        color=PALETTE["text"],
        ms=4,
        label="Gemma4Router, random inputs",
    )
    ax.axhline(num_experts, color=PALETTE["dense"], lw=0.8, ls=":")
    ax.set_xlabel("tokens in the decode step (batch)", fontsize=9)
    ax.set_ylabel("experts read per layer", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_ylim(0, num_experts * 1.08)
    ax.set_xlim(0, max(batches) + 1)
    ax.legend(fontsize=8, frameon=False, loc="lower right")
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def plot_throughput_vs_batch(
    configs: Mapping[str, Gemma4Config],
    hardware: cm.Hardware,
    batches: Sequence[int],
    context: int,
    precisions: Sequence[str] = ("bf16", "int4"),
    pair: tuple[str, str] | None = ("12B", "26B-A4B"),
) -> Any:
    """Roofline decode throughput (all sequences) against batch on one
    device, one panel per weight format: a solid line while the weights
    and caches fit its memory, ending in a dot at the largest batch that
    fits, and a faint thin line beyond; the batches where the two models of
    ``pair`` change places are marked and labelled."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        len(precisions),
        1,
        sharex=True,
        figsize=(WIDTH, 2.6 * len(precisions) + 0.6),
        squeeze=False,
    )
    for ax, precision in zip(axes[:, 0], precisions):
        top = 0.0
        for name, config in configs.items():
            color = MODEL_COLORS.get(name, PALETTE["dense"])
            tps = [
                cm.decode_roofline(
                    config, hardware, b, context, precision
                ).total_tokens_per_second
                / 1000
                for b in batches
            ]
            top = max(top, max(tps))
            ax.plot(batches, tps, color=color, lw=0.8, alpha=0.35)
            largest = cm.max_batch(config, hardware, context, precision)
            inside = [b for b in batches if b <= largest]
            if not largest:
                continue
            fit_b = inside + ([largest] if largest not in inside else [])
            fit_t = [
                cm.decode_roofline(
                    config, hardware, b, context, precision
                ).total_tokens_per_second
                / 1000
                for b in fit_b
            ]
            ax.plot(fit_b, fit_t, color=color, lw=2.2, label=name)
            ax.plot([fit_b[-1]], [fit_t[-1]], "o", color=color, ms=6)
        if pair and all(m in configs for m in pair):
            first, second = (configs[m] for m in pair)
            for cross in cm.throughput_crossovers(
                first, second, hardware, context, precision, max(batches)
            ):
                ax.axvline(cross, color=PALETTE["dense"], lw=0.9, ls="--")
                ax.text(
                    cross * 1.06,
                    top * 0.97,
                    f"swap at {cross}",
                    fontsize=8,
                    va="top",
                    color=PALETTE["text"],
                )
        ax.set_xscale("log", base=2)
        ax.set_ylim(0, top * 1.08)
        ax.tick_params(labelsize=8)
        ax.set_ylabel("thousand tokens/s", fontsize=9)
        ax.set_title(
            f"{precision} weights: dot = largest batch that fits; "
            "faint = does not fit",
            fontsize=9,
            loc="left",
        )
        ax.legend(fontsize=8, frameon=False, loc="upper left")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    last = axes[-1, 0]
    last.set_xticks(batches, [str(b) for b in batches], fontsize=8)
    last.minorticks_off()
    last.set_xlabel(
        f"batch (sequences decoding together), {hardware.name}, "
        f"{context:,}-token context",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def plot_device_grid(
    configs: Mapping[str, Gemma4Config],
    devices: Sequence[cm.Hardware],
    context: int,
    batch: int = 1,
    labels: Sequence[str] | None = None,
) -> Any:
    """The decode ceiling (tokens/s per sequence) at ``batch`` and
    ``context`` as a table of coloured cells: one row per model and weight
    format, one column per device, the number in each cell, the colour on
    a log scale; a grey "no fit" where weights and cache do not fit the
    device's usable memory. ``labels`` are the column headings (default:
    the device names)."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import LogNorm

    precisions = list(cm.WEIGHT_FORMATS)
    rows = [(m, p) for m in configs for p in precisions]
    values = np.full((len(rows), len(devices)), np.nan)
    for i, (name, prec) in enumerate(rows):
        for j, hw in enumerate(devices):
            if cm.fits(configs[name], hw, context, batch, prec):
                step = cm.decode_roofline(
                    configs[name], hw, batch, context, prec
                )
                values[i, j] = step.tokens_per_second
    fig, ax = plt.subplots(figsize=(WIDTH, 0.42 * len(rows) + 1.3))
    finite = values[np.isfinite(values)]
    norm = LogNorm(vmin=finite.min() / 2, vmax=finite.max() * 2)
    cmap = plt.get_cmap("Greens")
    for i in range(len(rows)):
        for j in range(len(devices)):
            v = values[i, j]
            if np.isfinite(v):
                shade = cmap(norm(v) * 0.8)
                text = f"{v:,.0f}" if v >= 10 else f"{v:.1f}"
                dark = norm(v) > 0.55
            else:
                shade, text, dark = "#EEEEEE", "no fit", False
            ax.add_patch(
                plt.Rectangle(
                    (j, i), 1, 1, facecolor=shade, edgecolor="white", lw=2
                )
            )
            ax.text(
                j + 0.5,
                i + 0.5,
                text,
                ha="center",
                va="center",
                fontsize=10 if text != "no fit" else 8,
                color="white" if dark else PALETTE["text"],
                style="normal" if text != "no fit" else "italic",
            )
    ax.set_xlim(0, len(devices))
    ax.set_ylim(len(rows), 0)
    heads = list(labels) if labels else [hw.name for hw in devices]
    ax.set_xticks([j + 0.5 for j in range(len(devices))], heads, fontsize=9)
    ax.xaxis.tick_top()
    ax.set_yticks(
        [i + 0.5 for i in range(len(rows))],
        [f"{m}  {p}" for m, p in rows],
        fontsize=9,
    )
    ax.tick_params(length=0)
    for i in range(len(precisions), len(rows), len(precisions)):
        ax.axhline(i, color=PALETTE["text"], lw=1)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.set_xlabel(
        f"decode ceiling, tokens/s per sequence, at batch {batch} and a "
        f"{context:,}-token context",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def _spread(positions: Sequence[float], gap: float) -> list[float]:
    """Label heights moved apart to at least ``gap``, in their order."""
    order = sorted(range(len(positions)), key=lambda i: positions[i])
    out = list(positions)
    last = None
    for i in order:
        if last is not None and out[i] < last + gap:
            out[i] = last + gap
        last = out[i]
    return out


def plot_memory_vs_context(
    configs: Mapping[str, Gemma4Config],
    devices: Sequence[cm.Hardware],
    contexts: Sequence[int],
    precision: str = "int4",
    batch: int = 1,
) -> Any:
    """Weights plus cache (GB) against context for each model, with each
    device's usable memory (capacity less the runtime reserve) as a dashed
    line labelled at the right, labels kept apart where lines are close;
    the context where a model stops fitting a device is marked."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(WIDTH, 3.6))
    xs = [c / 1024 for c in contexts]
    top = 0.0
    for name, config in configs.items():
        need = [
            cm.memory_needed(config, c, batch, precision)["total"] / 1e9
            for c in contexts
        ]
        top = max(top, max(need))
        ax.plot(
            xs,
            need,
            color=MODEL_COLORS.get(name, PALETTE["dense"]),
            lw=2,
            label=name,
        )
    shown = [hw for hw in devices if hw.usable_bytes() / 1e9 <= top * 1.6]
    lines = [hw.usable_bytes() / 1e9 for hw in shown]
    ymax = max([top, *lines]) * 1.08
    for hw, y in zip(shown, lines):
        ax.axhline(y, color=PALETTE["dense"], lw=0.8, ls="--")
        for name, config in configs.items():
            longest = cm.max_context(config, hw, batch, precision)
            if 0 < longest < config.max_position_embeddings:
                ax.plot(
                    [longest / 1024],
                    [y],
                    "o",
                    ms=6,
                    mfc="white",
                    color=MODEL_COLORS.get(name, PALETTE["dense"]),
                    mew=1.8,
                )
                ax.text(
                    longest / 1024,
                    y - ymax * 0.025,
                    f"{longest // 1024}K",
                    ha="center",
                    va="top",
                    fontsize=8,
                )
    for hw, y in zip(shown, _spread(lines, ymax * 0.06)):
        ax.text(
            xs[-1] * 1.01,
            y,
            f"{hw.name.split(' (')[0]}: {hw.usable_bytes() / 1e9:.1f}",
            fontsize=8,
            va="center",
        )
    ax.set_xlabel("context (thousands of tokens)", fontsize=9)
    ax.set_ylabel(
        f"GB at batch {batch} ({precision} weights\n+ bf16 cache)",
        fontsize=9,
    )
    ax.tick_params(labelsize=8)
    ax.set_ylim(0, ymax)
    ax.set_xlim(0, xs[-1])
    ax.set_title(
        "dashed: usable memory, GB (capacity less 10% for the runtime); "
        "circles: where a model stops fitting",
        fontsize=8,
        loc="left",
    )
    ax.legend(
        fontsize=8,
        frameon=False,
        loc="upper left",
        bbox_to_anchor=(0.0, 0.93),
        ncol=len(configs),
    )
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig


def plot_measured_vs_model(rows: Mapping[str, Mapping[str, float]]) -> Any:
    """Measured tokens/s as a fraction of the cost model's ceiling, one bar
    per (model, setting), labelled with the value; ``rows[label][model]``.
    """
    import matplotlib.pyplot as plt
    import numpy as np

    labels = list(rows)
    models = list(next(iter(rows.values())))
    colors = [PALETTE["dense"], PALETTE["moe"]]
    fig, ax = plt.subplots(figsize=(WIDTH, 2.8))
    x = np.arange(len(labels))
    w = 0.8 / len(models)
    for j, model in enumerate(models):
        values = [rows[label][model] for label in labels]
        bars = ax.bar(
            x + (j - (len(models) - 1) / 2) * w,
            values,
            w * 0.95,
            color=colors[j % 2],
            label=model,
        )
        for bar, v in zip(bars, values):
            ax.text(
                bar.get_x() + bar.get_width() / 2,
                v,
                f"{v:.2f}",
                ha="center",
                va="bottom",
                fontsize=8,
            )
    ax.set_xticks(x, labels, fontsize=8)
    ax.set_ylabel("measured / ceiling", fontsize=9)
    ax.tick_params(axis="y", labelsize=8)
    ax.legend(fontsize=8, frameon=False)
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    return fig
