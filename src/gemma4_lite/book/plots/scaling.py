"""Figures of the chapter "Scaling decisions and the edge models": memory
against device budgets, and which layers read which layer's keys and
values."""

from __future__ import annotations

from typing import Any, Mapping, Sequence

from ...config import Gemma4Config
from . import PALETTE

PRECISION_COLORS = {"bf16": "#4C9BE8", "int8": "#3BAA74", "int4": "#F2C14E"}


def plot_memory(
    rows: Mapping[str, Mapping[str, Mapping[str, float]]],
    budgets: Mapping[str, float],
    title: str = "",
) -> Any:
    """Horizontal bars: for each model (outer key) and precision (inner
    key) the weights (solid) and the cache (hatched) in GB, with each
    device budget as a labelled vertical line."""
    import matplotlib.pyplot as plt

    models = list(rows)
    precisions = list(next(iter(rows.values())))
    fig, ax = plt.subplots(figsize=(6.75, 0.55 * len(models) * 1.6 + 1))
    height = 0.8 / len(precisions)
    top = 0.0
    for m, model in enumerate(models):
        for p, precision in enumerate(precisions):
            row = rows[model][precision]
            y = m + (p - (len(precisions) - 1) / 2) * height
            color = PRECISION_COLORS.get(precision, PALETTE["dense"])
            label = precision if m == 0 else None
            ax.barh(y, row["weights"], height * 0.9, color=color, label=label)
            ax.barh(
                y, row["cache"], height * 0.9, left=row["weights"],
                color="white", edgecolor=color, hatch="///",
                label="KV cache" if m == 0 and p == 0 else None,
            )  # fmt: skip
            ax.text(
                row["total"] + 0.8, y, f"{row['total']:.1f}",
                va="center", fontsize=8,
            )  # fmt: skip
            top = max(top, row["total"])
    for name, gb in budgets.items():
        ax.axvline(gb, color=PALETTE["text"], lw=1, ls="--")
        ax.text(
            gb, 1.01, f"{name}\n{gb:g} GB", ha="center", va="bottom",
            fontsize=8, transform=ax.get_xaxis_transform(),
        )  # fmt: skip
    ax.set_yticks(range(len(models)), models, fontsize=9)
    ax.invert_yaxis()
    ax.set_ylim(len(models) - 0.5, -0.5)
    ax.set_xlim(0, max(top, max(budgets.values())) * 1.12)
    ax.set_xlabel("GB (weights solid, KV cache hatched)", fontsize=9)
    ax.tick_params(axis="x", labelsize=8)
    ax.legend(
        fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncol=4
    )
    if title:
        ax.set_title(title, fontsize=10, pad=30)
    fig.tight_layout()
    return fig


def plot_kv_sharing(configs: Mapping[str, Gemma4Config]) -> Any:
    """One strip per model: layers numbered and coloured by kind, shared
    layers in the shared colour, an arc from each shared layer to the layer
    whose cache it reads."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Arc, Rectangle

    fig, axes = plt.subplots(
        len(configs), 1, figsize=(6.75, 2.1 * len(configs))
    )
    axes = [axes] if len(configs) == 1 else list(axes)
    width = max(c.num_hidden_layers for c in configs.values())
    for ax, (name, config) in zip(axes, configs.items()):
        for i in range(config.num_hidden_layers):
            kind = "sliding" if config.is_sliding(i) else "global"
            face = PALETTE[kind]
            shared = config.is_kv_shared(i)
            ax.add_patch(Rectangle(
                (i, 0), 0.92, 1, facecolor=PALETTE["shared"] if shared
                else face, edgecolor=face, lw=2,
            ))  # fmt: skip
            ax.text(
                i + 0.46, -0.25, str(i), ha="center", va="top", fontsize=8,
                rotation=90,
            )  # fmt: skip
            source = config.kv_producer(i)
            if shared:
                centre = (i + source + 0.92) / 2
                span = i - source
                ax.add_patch(Arc(
                    (centre, 1), span, 0.12 * span + 0.6, theta1=0,
                    theta2=180, color=face, lw=1,
                ))  # fmt: skip
        lenders = sorted(
            set(
                config.kv_producer(i)
                for i in range(
                    config.first_kv_shared_layer, config.num_hidden_layers
                )
            )
        )
        ax.set_xlim(-0.5, width + 0.5)
        ax.set_ylim(-1.6, 4.6)
        ax.axis("off")
        ax.set_title(
            f"{name}: layers {config.first_kv_shared_layer}-"
            f"{config.num_hidden_layers - 1} read the caches of layers "
            f"{' and '.join(map(str, lenders))}", fontsize=9, loc="left",
        )  # fmt: skip
    handles = [
        Rectangle((0, 0), 1, 1, color=PALETTE[k]) for k in
        ("sliding", "global", "shared")
    ]  # fmt: skip
    labels = [
        "sliding (own cache)", "global (own cache)",
        "KV-shared (edge: kind of the cache it reads)",
    ]  # fmt: skip
    fig.legend(handles, labels, loc="lower center", ncol=3, fontsize=8)
    fig.tight_layout(rect=(0, 0.07, 1, 1))
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
