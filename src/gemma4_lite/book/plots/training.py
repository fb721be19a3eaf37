"""Figures of the chapter "Training": loss curves of a live run and of the
shipped checkpoints, and expert load of the trained mixture of experts."""

from __future__ import annotations

from dataclasses import asdict, is_dataclass
from typing import Any, Mapping, Sequence

from . import PALETTE

RUN_COLORS = {"dense": PALETTE["dense"], "MoE": PALETTE["moe"]}


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average, debiased so the first value stays."""
    out, avg = [], 0.0
    for i, v in enumerate(values, start=1):
        avg = weight * avg + (1 - weight) * v
        out.append(avg / (1 - weight**i) if weight else v)
    return out


def draw_run(
    ax, curves: Mapping, x: str, color: str, label: str, weight: float
) -> None:
    """Training loss (smoothed line) and held-out loss (dots) of a run (a
    ``curves.json`` dict or a :class:`~gemma4_lite.book.train.Curves`),
    against ``x``: ``"tokens"`` (millions) or ``"seconds"`` (minutes)."""
    if is_dataclass(curves):
        curves = asdict(curves)
    scale = 1e6 if x == "tokens" else 60.0
    xs = [v / scale for v in curves[x]]
    ax.plot(xs, smooth(curves["loss"], weight), color=color, lw=1.5,
            label=f"{label}: training (smoothed)")  # fmt: skip
    valid = curves["valid"]
    vx = [v[x] / scale for v in valid]
    counts = {v.get("sequences") for v in valid}
    # every point on the same sample: say how many sequences it holds
    count = counts.pop() if len(counts) == 1 else None
    sample = f" ({count} sequences)" if count else ""
    ax.plot(
        vx, [v["loss"] for v in valid], "o--", color=color, ms=4, lw=1,
        markerfacecolor="white", label=f"{label}: held-out{sample}",
    )  # fmt: skip


def plot_runs(
    runs: Mapping[str, Mapping],
    xs: Sequence[str] = ("tokens",),
    weight: float = 0.9,
    ylim: tuple[float, float] = (4.0, 8.5),
    baselines: Mapping[str, float] | None = None,
    figsize: tuple[float, float] = (6.75, 3.2),
) -> Any:
    """One panel per x axis (tokens, wall time), every run in each;
    ``baselines`` (name: loss on the same held-out sample) are drawn as
    dotted horizontal lines labelled at their right end."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(xs), figsize=figsize, sharey=True)
    axes = [axes] if len(xs) == 1 else list(axes)
    for ax, x in zip(axes, xs):
        for name, curves in runs.items():
            color = RUN_COLORS.get(name, PALETTE["global"])
            draw_run(ax, curves, x, color, name, weight)
        ax.set_xlabel(
            "tokens seen (millions)" if x == "tokens" else "wall time (min)",
            fontsize=9,
        )
        ax.set_ylim(*ylim)
        for name, level in (baselines or {}).items():
            if not ylim[0] <= level <= ylim[1]:
                continue
            ax.axhline(level, color=PALETTE["text"], lw=1, ls=":")
            ax.annotate(
                name, (1.0, level), xycoords=("axes fraction", "data"),
                xytext=(-3, 3), textcoords="offset points", ha="right",
                va="bottom", fontsize=8, color=PALETTE["text"],
            )  # fmt: skip
        ax.grid(alpha=0.3)
        ax.tick_params(labelsize=8)
    axes[0].set_ylabel("loss (nats per token)", fontsize=9)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def plot_expert_load(
    loads: Mapping[str, Any], title: str = "share of assignments"
) -> Any:
    """Heatmaps of shares [layers, experts] (fractions) side by side with
    one diverging colour scale centred on even load (1/E: white), each
    cell labelled in percent: one colour for more than an even share, the
    other for less."""
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import TwoSlopeNorm

    def percent(value: Any) -> Any:
        rows = value.tolist() if hasattr(value, "tolist") else value
        return 100 * np.array(rows, dtype=float)

    names = list(loads)
    loads = {name: percent(loads[name]) for name in names}
    experts = loads[names[0]].shape[1]
    even = 100 / experts
    spread = max(float(np.abs(v - even).max()) for v in loads.values())
    spread = max(spread, 1e-6)
    norm = TwoSlopeNorm(
        vmin=max(0.0, even - spread), vcenter=even, vmax=even + spread
    )
    fig, axes = plt.subplots(1, len(names), figsize=(6.75, 3.0))
    axes = [axes] if len(names) == 1 else list(axes)
    for ax, name in zip(axes, names):
        load = loads[name]
        image = ax.imshow(load, cmap="PuOr_r", norm=norm)
        layers, experts = load.shape
        for i in range(layers):
            for e in range(experts):
                value = float(load[i, e])
                far = abs(value - even) > 0.6 * spread
                ax.text(
                    e, i, f"{value:.0f}", ha="center", va="center",
                    fontsize=8, color="white" if far else "black",
                )  # fmt: skip
        ax.set_xticks(range(experts), range(experts), fontsize=8)
        ax.set_yticks(range(layers), range(layers), fontsize=8)
        ax.set_xlabel("expert", fontsize=9)
        ax.set_title(name, fontsize=9)
    axes[0].set_ylabel("layer", fontsize=9)
    bar = fig.colorbar(image, ax=axes, shrink=0.8)
    bar.set_label(f"{title} (%; even {even:.1f})", fontsize=8)
    bar.ax.tick_params(labelsize=8)
    return fig
