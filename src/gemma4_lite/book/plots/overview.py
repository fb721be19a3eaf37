"""Figures and small tables for the chapter "Gemma 4 at a glance"
(notebooks/00_gemma4_at_a_glance).

Everything here is computed from a :class:`~gemma4_lite.config.Gemma4Config`
through the book's accounting (:mod:`gemma4_lite.book.accounting`); nothing
is typed in by hand. Layer kinds are drawn in the book's
:data:`~gemma4_lite.plots.PALETTE`. Parameter groups are not layer kinds, so
they get their own colours below, chosen so that no group can be mistaken for a
layer kind except where the meaning is the same (experts are green like MoE
layers, the dense MLP grey like dense layers).

matplotlib is imported inside the drawing functions, so importing this module
costs nothing.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from ...config import Gemma4Config
from ..accounting import count_parameters, kv_cache_layer_bytes
from ..overview import naive_kv_cache_bytes
from . import PALETTE

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

MIB = 2**20
GIB = 2**30

# Where the parameters go, in the order the bars are stacked. The two lookup
# tables share a gold hue (they are both "a row per token id"); the experts
# split into the 8 of 128 a token uses and the rest.
PARAMETER_GROUPS: tuple[str, ...] = (
    "token embedding",
    "PLE table",
    "attention",
    "dense MLP",
    "experts (active)",
    "experts (idle)",
    "other",
)
PARAMETER_COLORS: dict[str, str] = {
    "token embedding": "#B8860B",
    "PLE table": "#EBCB8B",
    "attention": "#4A6274",
    "dense MLP": PALETTE["dense"],
    "experts (active)": PALETTE["moe"],
    # a light tint of the MoE green: stored, but not used by this token
    "experts (idle)": "#BFE3CF",
    "other": "#D9D9D9",
}


# ---------------------------------------------------------------------- tables
def text_table(
    header: Sequence[str],
    rows: Sequence[Sequence[Any]],
    *,
    first_left: bool = True,
) -> str:
    """A plain-text table (pandas is not a dependency of the book): the first
    column left-aligned, the others right-aligned, a rule under the header.
    Cells are converted with ``str``."""
    cells = [[str(c) for c in header]] + [
        [str(c) for c in row] for row in rows
    ]
    if any(len(row) != len(header) for row in cells):
        raise ValueError("every row needs one cell per header column")
    widths = [max(len(row[j]) for row in cells) for j in range(len(header))]

    def line(row: list[str]) -> str:
        parts = [
            row[j].ljust(widths[j])
            if (j == 0 and first_left)
            else row[j].rjust(widths[j])
            for j in range(len(row))
        ]
        return "  ".join(parts).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return "\n".join([line(cells[0]), rule] + [line(row) for row in cells[1:]])


def human_bytes(n: float) -> str:
    """``774 MiB``, ``2.70 GiB``, ``6.0 KiB``: binary units, three significant
    figures or so.
    """
    for unit, size in (("GiB", GIB), ("MiB", MIB), ("KiB", 1024)):
        if n >= size:
            value = n / size
            return (
                f"{value:.2f} {unit}"
                if value < 10
                else f"{value:.0f} {unit}"
                if value >= 100
                else f"{value:.1f} {unit}"
            )
    return f"{n:.0f} B"


# ------------------------------------------------------------------ parameters
def parameter_groups(config: Gemma4Config) -> dict[str, int]:
    """:func:`~gemma4_lite.book.accounting.count_parameters` folded into
    :data:`PARAMETER_GROUPS`.

    "experts (active)" is the share of the expert weights one token runs
    through (top-k of E experts in every layer); "other" collects norms, the
    router, the per-layer-input gates and the PLE projection. The groups sum to
    ``count_parameters(config)["total"]`` exactly.
    """
    counts = count_parameters(config)
    experts = counts["experts"]
    active = (
        experts * config.top_k_experts // config.num_experts
        if config.enable_moe_block
        else 0
    )
    groups = {
        "token embedding": counts["embedding"],
        "PLE table": counts["per_layer_embedding_table"],
        "attention": counts["attention"],
        "dense MLP": counts["mlp"],
        "experts (active)": active,
        "experts (idle)": experts - active,
        "other": counts["norms"]
        + counts["router"]
        + counts["per_layer_input"]
        + counts["per_layer_embedding_other"],
    }
    assert (
        sum(groups.values()) == counts["total"]
    )  # why: the figure must account for every parameter
    return groups


def measured_parameter_groups(model: torch.nn.Module) -> dict[str, int]:
    """The same groups as :func:`parameter_groups`, but measured: the ``numel``
    of every parameter of a built
    :class:`~gemma4_lite.model.Gemma4ForCausalLM`, sorted into a group by its
    checkpoint name.

    This is the independent check of the accounting: it never looks at the
    formulas, only at the tensors the model actually allocated. (The tied head
    is one tensor, so it is counted once, as it should be.)
    """
    groups = dict.fromkeys(PARAMETER_GROUPS, 0)
    for name, param in model.named_parameters():
        if name.endswith("embed_tokens.weight"):
            group = "token embedding"
        elif name.endswith("embed_tokens_per_layer.weight"):
            group = "PLE table"
        elif ".self_attn." in name:
            group = "attention"
        elif ".mlp." in name:
            group = "dense MLP"
        elif ".experts." in name:
            group = "experts (idle)"  # split into active and idle below
        else:
            group = "other"
        groups[group] += param.numel()
    config = model.config
    if config.enable_moe_block:
        experts = groups["experts (idle)"]
        groups["experts (active)"] = (
            experts * config.top_k_experts // config.num_experts
        )
        groups["experts (idle)"] = experts - groups["experts (active)"]
    return groups


def plot_parameter_breakdown(
    configs: Mapping[str, Gemma4Config],
    published: Mapping[str, float] | None = None,
    published_active: Mapping[str, float] | None = None,
) -> "Figure":
    """Where the parameters go: stacked bars in billions (top) and as shares
    of each model (bottom), stacked for the book's text column.

    ``published`` maps a variant name to the model card's total in billions; it
    is drawn as a black tick, and any gap between it and the text decoder
    computed here as a dashed box, so the difference is seen rather than
    hidden. ``published_active`` (billions) adds the card's active-per-token
    figure of an MoE variant beside the one computed here.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    names = list(configs)
    groups = {name: parameter_groups(c) for name, c in configs.items()}
    fig, (ax_abs, ax_rel) = plt.subplots(
        2, 1, figsize=(6.75, 1.1 * len(names) + 2.4), dpi=100
    )
    for row, name in enumerate(names):
        y = len(names) - 1 - row
        total = sum(groups[name].values())
        left = 0.0
        for group in PARAMETER_GROUPS:
            value = groups[name][group] / 1e9
            if value:
                ax_abs.barh(
                    y,
                    value,
                    left=left,
                    height=0.62,
                    color=PARAMETER_COLORS[group],
                    edgecolor="white",
                    linewidth=0.6,
                )
                share = groups[name][group] / total
                ax_rel.barh(
                    y,
                    100 * share,
                    left=100 * left_share(groups[name], group),
                    height=0.62,
                    color=PARAMETER_COLORS[group],
                    edgecolor="white",
                    linewidth=0.6,
                )
                if share >= 0.06:
                    ax_rel.text(
                        100 * (left_share(groups[name], group) + share / 2),
                        y,
                        f"{100 * share:.0f}%",
                        ha="center",
                        va="center",
                        fontsize=8,
                        color="white"
                        if group
                        in ("token embedding", "attention", "experts (active)")
                        else PALETTE["text"],
                    )
            left += value
        label = f"{total / 1e9:.2f}B"
        if published and name in published:
            card = published[name]
            if card - total / 1e9 > 0.05:
                ax_abs.add_patch(
                    Rectangle(
                        (total / 1e9, y - 0.31),
                        card - total / 1e9,
                        0.62,
                        fill=False,
                        linestyle="--",
                        edgecolor=PALETTE["text"],
                        linewidth=0.9,
                    )
                )
            ax_abs.plot(
                [card, card], [y - 0.42, y + 0.42], color="black", linewidth=2
            )
            label += f"  (card: {card:g}B)"
            edge = max(card, total / 1e9)
        else:
            edge = total / 1e9
        if configs[name].enable_moe_block:
            active = total - groups[name]["experts (idle)"]
            label += f"\n{active / 1e9:.2f}B active per token"
            if published_active and name in published_active:
                label += f" (card: {published_active[name]:g}B)"
        ax_abs.text(edge + 0.4, y, label, va="center", fontsize=8)
    ax_abs.set_yticks(range(len(names)), labels=names[::-1])
    ax_rel.set_yticks(range(len(names)), labels=names[::-1])
    ax_abs.set_xlim(
        0,
        max(
            max(sum(g.values()) / 1e9 for g in groups.values()),
            max(published.values()) if published else 0,
        )
        * 1.75,
    )
    ax_abs.set_xlabel("parameters (billions)", fontsize=8)
    ax_rel.set_xlabel("share of the text decoder (%)", fontsize=8)
    ax_rel.set_xlim(0, 100)
    ax_abs.set_title("Parameters per variant (text decoder)", fontsize=9)
    ax_rel.set_title("Where they go", fontsize=9)
    for ax in (ax_abs, ax_rel):
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(labelsize=8)
    present = [g for g in PARAMETER_GROUPS if any(groups[n][g] for n in names)]
    handles = [Patch(facecolor=PARAMETER_COLORS[g], label=g) for g in present]
    if published:
        handles.append(
            Patch(
                facecolor="none",
                edgecolor=PALETTE["text"],
                linestyle="--",
                label="card total minus text decoder",
            )
        )
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=min(len(handles), 4),
        frameon=False,
        fontsize=8,
        bbox_to_anchor=(0.5, -0.01),
    )
    fig.tight_layout(rect=(0, 0.1, 1, 1))
    return fig


def left_share(groups: Mapping[str, int], group: str) -> float:
    """Fraction of the total stacked before ``group`` (the left edge of its
    segment in a 100% bar).
    """
    total = sum(groups.values())
    before = 0
    for g in PARAMETER_GROUPS:
        if g == group:
            break
        before += groups[g]
    return before / total


# -------------------------------------------------------------------- KV cache
def kv_split(
    config: Gemma4Config,
    context_length: int,
    dtype: torch.dtype = torch.bfloat16,
) -> dict[str, int]:
    """KV-cache bytes of one sequence split by layer type: ``sliding`` and
    ``global`` bytes, and the number of layers of each kind (``n_sliding``,
    ``n_global``, ``n_shared``; shared layers hold no bytes)."""
    per_layer = kv_cache_layer_bytes(config, context_length, dtype)
    out = {
        "sliding": 0,
        "global": 0,
        "n_sliding": 0,
        "n_global": 0,
        "n_shared": 0,
    }
    for layer, size in enumerate(per_layer):
        if config.is_kv_shared(layer):
            out["n_shared"] += 1
            continue
        kind = "sliding" if config.is_sliding(layer) else "global"
        out[kind] += size
        out[f"n_{kind}"] += 1
    return out


def plot_kv_per_token(
    configs: Mapping[str, Gemma4Config],
    context_length: int,
    dtype: torch.dtype = torch.bfloat16,
) -> "Figure":
    """KV-cache bytes per token at ``context_length``: the package's count
    beside the "every layer global" estimate, one panel per variant so each
    keeps a readable linear scale, three panels per row in the text column.
    The package's bar shows the sliding layers' share as its own segment only
    where it would be visible, and the legend lists only what is drawn."""
    import math

    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch

    cols = 3
    rows = math.ceil((len(configs) + 1) / cols)  # one panel for the legend
    fig, axes = plt.subplots(
        rows, cols, figsize=(6.75, 2.5 * rows + 0.2), dpi=100, squeeze=False
    )
    axes = [ax for row in axes for ax in row]
    sliding_drawn = False
    for ax, (name, config) in zip(axes, configs.items()):
        split = kv_split(config, context_length, dtype)
        naive = (
            naive_kv_cache_bytes(config, context_length, dtype)
            / context_length
            / 1024
        )
        sliding = split["sliding"] / context_length / 1024
        glob = split["global"] / context_length / 1024
        exact = sliding + glob
        ax.bar(
            0, naive, width=0.6, color=PALETTE["dense"], hatch="\\\\",
            edgecolor="white",
        )  # fmt: skip
        if sliding / naive > 0.02:  # a segment one can see
            sliding_drawn = True
            ax.bar(1, sliding, width=0.6, color=PALETTE["sliding"])
            ax.bar(1, glob, width=0.6, bottom=sliding, color=PALETTE["global"])
        else:
            ax.bar(1, exact, width=0.6, color=PALETTE["global"])
        ax.text(
            0, naive, f"{naive:,.1f}", ha="center", va="bottom", fontsize=8
        )
        ax.text(
            1, exact, f"{exact:,.1f}", ha="center", va="bottom", fontsize=8
        )
        ax.set_xticks([0, 1], labels=["naive", "package"], fontsize=8)
        ax.set_title(f"{name}: {naive / exact:.1f}× smaller", fontsize=9)
        ax.set_ylim(0, naive * 1.15)
        ax.spines[["top", "right"]].set_visible(False)
        ax.tick_params(axis="y", labelsize=8)
    for n, ax in enumerate(axes):
        if n % cols == 0 and n < len(configs):
            ax.set_ylabel(
                f"KiB per token at {context_length // 1024}K", fontsize=8
            )
    handles = [
        Patch(
            facecolor=PALETTE["dense"],
            hatch="\\\\",
            edgecolor="white",
            label="naive: every layer global,\nsliding KV heads and head size",
        ),
        Patch(
            facecolor=PALETTE["global"],
            label="package: per layer, windows\nand sharing (almost all in\n"
            "the global layers)",
        ),
    ]
    if sliding_drawn:
        handles.append(
            Patch(facecolor=PALETTE["sliding"], label="sliding layers")
        )
    for ax in axes[len(configs) :]:
        ax.axis("off")
    axes[len(configs)].legend(
        handles=handles, loc="center", frameon=False, fontsize=8
    )
    fig.tight_layout()
    return fig


def draw_kv_by_layer(
    ax: "Axes",
    config: Gemma4Config,
    context_length: int,
    dtype: torch.dtype = torch.bfloat16,
    *,
    title: str | None = None,
) -> None:
    """One bar per layer: the KV bytes (MiB) that layer stores after
    ``context_length`` tokens. KV-shared layers store nothing and are marked by
    a hatched purple tick just below the baseline."""
    from matplotlib.patches import Rectangle

    per_layer = kv_cache_layer_bytes(config, context_length, dtype)
    top = max(per_layer) / MIB
    for layer, size in enumerate(per_layer):
        if config.is_kv_shared(layer):
            # below the axis, so the marker cannot be read as a (tiny) amount
            # of memory
            ax.add_patch(
                Rectangle(
                    (layer - 0.4, -0.06 * top),
                    0.8,
                    0.04 * top,
                    facecolor="white",
                    edgecolor=PALETTE["shared"],
                    hatch="////",
                    linewidth=0.6,
                    clip_on=False,
                )
            )
        else:
            kind = "sliding" if config.is_sliding(layer) else "global"
            ax.bar(layer, size / MIB, width=0.8, color=PALETTE[kind])
    ax.set_xlim(-1, config.num_hidden_layers)
    ax.set_ylim(-0.07 * top, top * 1.08)
    ax.axhline(0, color=PALETTE["text"], linewidth=0.6)
    ax.spines[["top", "right"]].set_visible(False)
    if title is not None:
        ax.set_title(title, fontsize=9)


def kv_title(
    config: Gemma4Config,
    context_length: int,
    dtype: torch.dtype = torch.bfloat16,
) -> str:
    """``"774 MiB · global 99%"``: the cache of one sequence and the share held
    by global layers.
    """
    split = kv_split(config, context_length, dtype)
    total = split["sliding"] + split["global"]
    share = split["global"] / total
    digits = 1 if 0.99 <= share < 1 else 0  # no "100%" for 99.6%
    return f"{human_bytes(total)} · global {100 * share:.{digits}f}%"


def context_label(tokens: int) -> str:
    return f"{tokens // 1024}K" if tokens % 1024 == 0 else f"{tokens:,}"


def plot_kv_by_layer(
    config: Gemma4Config,
    context_length: int,
    name: str = "",
    dtype: torch.dtype = torch.bfloat16,
) -> "Figure":
    """The widget's figure: per-layer KV bytes of one variant at one context
    length, and the totals by layer type beside it."""
    import matplotlib.pyplot as plt

    fig, (ax, ax_sum) = plt.subplots(
        1,
        2,
        figsize=(6.75, 3.0),
        dpi=100,
        gridspec_kw={"width_ratios": [3, 1]},
    )
    beyond = context_length > config.max_position_embeddings
    draw_kv_by_layer(ax, config, context_length, dtype)
    ax.set_xlabel("layer", fontsize=8)
    ax.set_ylabel("MiB per layer", fontsize=8)
    ax.tick_params(labelsize=8)
    note = (
        f"  (beyond its {context_label(config.max_position_embeddings)} "
        "context)"
        if beyond
        else ""
    )
    ax.set_title(
        f"{name} at {context_label(context_length)} tokens: "
        f"{kv_title(config, context_length, dtype)}{note}",
        fontsize=9,
    )
    split = kv_split(config, context_length, dtype)
    values = [split["sliding"] / MIB, split["global"] / MIB]
    ax_sum.bar(
        [0, 1],
        values,
        color=[PALETTE["sliding"], PALETTE["global"]],
        width=0.7,
    )
    for x, v in enumerate(values):
        ax_sum.text(
            x, v, human_bytes(v * MIB), ha="center", va="bottom", fontsize=8
        )
    ax_sum.set_xticks(
        [0, 1],
        labels=[
            f"{split['n_sliding']} sliding",
            f"{split['n_global']} global",
        ],
        fontsize=8,
    )
    ax_sum.set_ylim(0, max(values) * 1.2)
    ax_sum.set_ylabel("MiB")
    ax_sum.set_title(f"{split['n_shared']} shared layers: 0 B", fontsize=9)
    ax_sum.spines[["top", "right"]].set_visible(False)
    fig.tight_layout()
    return fig


def plot_kv_small_multiples(
    configs: Mapping[str, Gemma4Config],
    contexts: Sequence[int],
    dtype: torch.dtype = torch.bfloat16,
) -> "Figure":
    """The widget's static twin: per-layer KV bytes for every variant (rows) at
    several context lengths (columns). Each panel has its own y-scale; its
    title gives the total and the global layers' share. Panels past a variant's
    context length are left empty with a note."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch
    from matplotlib.ticker import MaxNLocator

    fig, axes = plt.subplots(
        len(configs),
        len(contexts),
        figsize=(6.75, 1.75 * len(configs) + 0.9),
        dpi=100,
        squeeze=False,
    )
    for row, (name, config) in enumerate(configs.items()):
        for col, context in enumerate(contexts):
            ax = axes[row][col]
            if context > config.max_position_embeddings:
                ax.axis("off")
                ax.text(
                    0.5,
                    0.5,
                    f"{context_label(context)} is beyond {name}'s\n"
                    f"{context_label(config.max_position_embeddings)} context",
                    ha="center",
                    va="center",
                    fontsize=8,
                    color=PALETTE["dense"],
                    transform=ax.transAxes,
                )
                continue
            draw_kv_by_layer(
                ax,
                config,
                context,
                dtype,
            )
            split = kv_split(config, context, dtype)
            total = split["sliding"] + split["global"]
            ax.set_title(
                f"{context_label(context)}: {human_bytes(total)}\n"
                f"{100 * split['global'] / total:.0f}% global",
                fontsize=8,
            )
            ax.tick_params(labelsize=8)
            ax.xaxis.set_major_locator(MaxNLocator(3, integer=True))
            ax.yaxis.set_major_locator(MaxNLocator(3))
            if col == 0:
                ax.set_ylabel(f"{name}\nMiB / layer", fontsize=8)
            if row == len(configs) - 1:
                ax.set_xlabel("layer", fontsize=8)
    handles = [
        Patch(facecolor=PALETTE["sliding"], label="sliding layer"),
        Patch(facecolor=PALETTE["global"], label="global layer"),
        Patch(
            facecolor="white",
            edgecolor=PALETTE["shared"],
            hatch="////",
            label="KV-shared layer (0 B)",
        ),
    ]
    fig.legend(
        handles=handles, loc="lower center", ncol=3, frameon=False, fontsize=8
    )
    fig.suptitle(
        "KV cache of one sequence, layer by layer (bfloat16)"
        if dtype == torch.bfloat16
        else f"KV cache of one sequence, layer by layer ({dtype})",
        fontsize=9,
    )
    fig.tight_layout(rect=(0, 0.035, 1, 1), h_pad=0.6)
    return fig
