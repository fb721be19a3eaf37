"""Figures of the chapter "Scaling decisions and the edge models": memory
against device budgets, and which layers read which layer's keys and
values."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ...config import Gemma4Config
from ..scaling import kv_readers
from . import PALETTE

PRECISION_COLORS = {"bf16": "#4C9BE8", "int8": "#3BAA74", "int4": "#F2C14E"}


def _label_x(
    total: float, text: str, budgets: Sequence[float], per_point: float
) -> float:
    """Where a bar's value label starts: just right of the bar, moved past
    any budget line it would cross. ``per_point`` is data units per
    typographic point, so the label's width is known in data units."""
    gap = 3 * per_point
    width = len(text) * 5.2 * per_point  # 8-pt digits are ~5 pt wide
    x = total + gap
    for line in sorted(budgets):
        if x - gap <= line <= x + width + gap:
            x = line + gap
    return x


def plot_memory(
    rows: Mapping[str, Mapping[str, Mapping[str, float]]],
    budgets: Mapping[str, float],
    title: str = "",
) -> Any:
    """Horizontal bars: for each model (outer key) and precision (inner
    key) the weights (solid) and the cache (hatched) in GB, with each
    device budget as a labelled vertical line. Value labels never sit on a
    budget line; budget names alternate between two heights so that close
    budgets (8, 16, 24 GB) do not overprint."""
    import matplotlib.pyplot as plt

    models = list(rows)
    precisions = list(next(iter(rows.values())))
    fig, ax = plt.subplots(figsize=(6.75, 0.42 * len(models) * 1.6 + 1.5))
    height = 0.8 / len(precisions)
    top = max(r["total"] for m in rows.values() for r in m.values())
    right = max(top, max(budgets.values())) * 1.12
    ax.set_xlim(0, right)
    # data units per point: the axes span about 5.6 in of the 6.75 in
    per_point = right / (5.6 * 72)
    for m, model in enumerate(models):
        for p, precision in enumerate(precisions):
            row = rows[model][precision]
            y = m + (p - (len(precisions) - 1) / 2) * height
            color = PRECISION_COLORS.get(precision, PALETTE["dense"])
            label = precision if m == 0 else None
            ax.barh(y, row["weights"], height * 0.9, color=color, label=label)
            cache_label = "KV cache" if m == 0 and p == 0 else None
            ax.barh(
                y, row["cache"], height * 0.9, left=row["weights"],
                color="white", edgecolor=color, hatch="///",
                label=cache_label,
            )  # fmt: skip
            text = f"{row['total']:.1f}"
            x = _label_x(row["total"], text, budgets.values(), per_point)
            ax.text(x, y, text, va="center", fontsize=8)
    for k, (name, gb) in enumerate(
        sorted(budgets.items(), key=lambda b: b[1])
    ):
        ax.axvline(gb, color=PALETTE["text"], lw=1, ls="--")
        ax.text(
            gb, 1.01 + 0.09 * (k % 2), f"{name} {gb:g} GB", ha="center",
            va="bottom", fontsize=8, transform=ax.get_xaxis_transform(),
        )  # fmt: skip
    ax.set_yticks(range(len(models)), models, fontsize=9)
    ax.set_ylim(len(models) - 0.5, -0.5)
    ax.set_xlabel("GB (weights solid, KV cache hatched)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(
        fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4
    )
    if title:
        ax.set_title(title, fontsize=10, pad=36)
    fig.tight_layout()
    return fig


def plot_kv_sharing(configs: Mapping[str, Gemma4Config]) -> Any:
    """One strip per model: layers coloured by kind, KV-shared layers in
    the shared colour. Above the strip, one line per lending layer runs
    from it over every layer that reads its cache, with a tick down to
    each reader; layers are numbered every five, lenders by name."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(
        len(configs), 1, figsize=(6.75, 1.75 * len(configs) + 0.4)
    )
    axes = [axes] if len(configs) == 1 else list(axes)
    width = max(c.num_hidden_layers for c in configs.values())
    for ax, (name, config) in zip(axes, configs.items()):
        n = config.num_hidden_layers
        for i in range(n):
            kind = "sliding" if config.is_sliding(i) else "global"
            shared = config.is_kv_shared(i)
            ax.add_patch(Rectangle(
                (i, 0), 0.9, 1, lw=1.5, edgecolor=PALETTE[kind],
                facecolor=PALETTE["shared"] if shared else PALETTE[kind],
            ))  # fmt: skip
        numbered = [i for i in range(0, n - 2, 5)] + [n - 1]
        for i in numbered:
            ax.text(i + 0.45, -0.15, str(i), ha="center", va="top", fontsize=8)
        for level, (lender, readers) in enumerate(
            sorted(kv_readers(config).items())
        ):
            kind = "sliding" if config.is_sliding(lender) else "global"
            color = PALETTE[kind]
            y = 1.45 + 0.75 * level
            ax.plot([lender + 0.45, readers[-1] + 0.45], [y, y], color=color,
                    lw=1.5)  # fmt: skip
            ax.plot([lender + 0.45] * 2, [1, y], color=color, lw=2.5)
            for r in readers:
                ax.plot([r + 0.45] * 2, [1.05, y], color=color, lw=1)
            ax.text(
                lender - 0.4, y, f"layer {lender} ({kind}) lends its cache "
                f"to {len(readers)} layers", ha="right", va="center",
                fontsize=8, color=PALETTE["text"],
            )  # fmt: skip
        ax.set_xlim(-0.5, width + 0.5)
        ax.set_ylim(-0.9, 3.2)
        ax.axis("off")
        ax.set_title(
            f"{name}: layers {config.first_kv_shared_layer}-{n - 1} "
            "compute no keys or values", fontsize=9, loc="left",
        )  # fmt: skip
    handles = [
        Rectangle((0, 0), 1, 1, color=PALETTE[k])
        for k in ("sliding", "global", "shared")
    ]
    labels = [
        "sliding (own cache)", "global (own cache)",
        "KV-shared (outline: kind of cache it reads)",
    ]  # fmt: skip
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.08, 1, 1))
    return fig


def plot_ple_bytes(
    names: Sequence[str], table_gb: Sequence[float], token_kb: Sequence[float]
) -> Any:
    """Two panels with their own linear axes: the PLE table's size (GB)
    and what one token reads from it (KB), each bar labelled."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(6.75, 2.4))
    for ax, values, unit, title in (
        (left, table_gb, "GB", "whole PLE table (bf16)"),
        (right, token_kb, "KB", "read per token (bf16)"),
    ):
        bars = ax.bar(names, values, color=PALETTE["moe"], width=0.5)
        for bar, v in zip(bars, values):
            ax.text(
                bar.get_x() + bar.get_width() / 2, v, f"{v:.2f} {unit}",
                ha="center", va="bottom", fontsize=8,
            )  # fmt: skip
        ax.set_ylim(0, max(values) * 1.25)
        ax.set_ylabel(unit, fontsize=9)
        ax.set_title(title, fontsize=9)
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig
