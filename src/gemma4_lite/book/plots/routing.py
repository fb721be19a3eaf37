"""Figures of the chapter "Router design": routing heatmaps (tokens x experts),
the routing weights under a different logit scale or top-k (the widget and its
static twin), expert-load histograms and training curves of the balancing
experiment in ``gemma4_lite.book.moe_training``.

All colours come from the book's ``PALETTE``: MoE green for routing, and one
palette entry per balancing mode.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Sequence

import torch

from . import PALETTE

if TYPE_CHECKING:
    from matplotlib.axes import Axes

    from ..moe_training import TrainResult

# One colour and one label per balancing mode of ``moe_training`` (the same in
# every figure of the chapter).
MODE_COLORS: dict[str, str] = {
    "none": PALETTE["global"],
    "aux": PALETTE["moe"],
    "bias": PALETTE["sliding"],
}
MODE_LABELS: dict[str, str] = {
    "none": "no balancing",
    "aux": "auxiliary loss",
    "bias": "bias (loss-free)",
}


def routing_cmap() -> Any:
    """White to the book's MoE green: the colour map of routing heatmaps."""
    from matplotlib.colors import LinearSegmentedColormap

    return LinearSegmentedColormap.from_list(
        "routing", ["#FFFFFF", PALETTE["moe"]]
    )


# ---------------------------------------------------------------- computations
def scatter_weights(
    experts: torch.Tensor, weights: torch.Tensor, num_experts: int
) -> torch.Tensor:
    """The [N, k] routing weights laid out as a dense [N, E] matrix, zero for
    experts not chosen.
    """
    dense = torch.zeros(experts.shape[0], num_experts, dtype=weights.dtype)
    return dense.scatter(1, experts, weights)


def rescaled_routing(
    logits: torch.Tensor,
    top_k: int,
    logit_scale: float = 1.0,
    per_expert_scale: torch.Tensor | None = None,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Route again from given router logits after multiplying them by
    ``logit_scale`` (an inverse softmax temperature) and choosing ``top_k``
    experts. Returns the fp32 probabilities [N, E] and the dense weights [N, E]
    (renormalised over the chosen experts, times ``per_expert_scale`` if
    given): the same steps as ``Gemma4Router.forward`` from its logits on."""
    probs = torch.softmax(logits.float() * logit_scale, dim=-1)
    top_p, top_i = torch.topk(probs, top_k, dim=-1)
    weights = top_p / top_p.sum(dim=-1, keepdim=True)
    if per_expert_scale is not None:
        weights = weights * per_expert_scale.float()[top_i]
    return probs, scatter_weights(top_i, weights, logits.shape[-1])


# -------------------------------------------------------------------- heatmaps
def routing_heatmap(
    ax: "Axes",
    values: Any,
    *,
    chosen: Any = None,
    title: str | None = None,
    vmax: float | None = None,
    show_ylabel: bool = True,
    colorbar: bool = True,
) -> Any:
    """One tokens x experts heatmap; ``chosen`` (a boolean [N, E] mask)
    outlines the selected cells.
    """
    import numpy as np
    from matplotlib.patches import Rectangle

    data = np.asarray(values, dtype=float)
    image = ax.imshow(
        data,
        cmap=routing_cmap(),
        vmin=0.0,
        vmax=vmax if vmax is not None else data.max(),
        aspect="auto",
        interpolation="nearest",
    )
    if chosen is not None:
        for n, e in zip(*np.nonzero(np.asarray(chosen))):
            ax.add_patch(
                Rectangle(
                    (e - 0.5, n - 0.5),
                    1,
                    1,
                    fill=False,
                    edgecolor=PALETTE["text"],
                    linewidth=0.9,
                )
            )
    num_tokens, num_experts = data.shape
    ax.set_xticks(range(0, num_experts, 2 if num_experts > 10 else 1))
    ax.set_yticks(range(0, num_tokens, max(1, num_tokens // 8)))
    ax.tick_params(labelsize=8)
    ax.set_xlabel("expert", fontsize=9)
    if show_ylabel:
        ax.set_ylabel("token", fontsize=9)
    if title:
        ax.set_title(title, fontsize=10)
    if colorbar:
        ax.figure.colorbar(
            image, ax=ax, fraction=0.046, pad=0.03
        ).ax.tick_params(labelsize=8)
    return image


def plot_routing_heatmaps(
    probs: torch.Tensor,
    experts: torch.Tensor,
    weights: torch.Tensor,
    *,
    suptitle: str | None = None,
    figsize: tuple[float, float] = (6.75, 4.4),
) -> Any:
    """Two panels for one router call on one colour scale: the softmax over
    all experts, and the final weights of the chosen experts (renormalised
    and multiplied by ``per_expert_scale``), each chosen cell outlined."""
    import matplotlib.pyplot as plt

    num_experts = probs.shape[-1]
    chosen = (
        scatter_weights(experts, torch.ones_like(weights), num_experts) > 0
    )
    dense = scatter_weights(experts, weights.float(), num_experts)
    vmax = max(float(probs.max()), float(dense.max()))
    fig, axes = plt.subplots(1, 2, figsize=figsize, dpi=100, sharey=True)
    titles = ("probabilities (all experts)", "weights (top-k, scaled)")
    image = None
    for ax, values, title, first in zip(
        axes, (probs, dense), titles, (True, False)
    ):
        image = routing_heatmap(
            ax,
            values,
            chosen=chosen,
            title=title,
            vmax=vmax,
            show_ylabel=first,
            colorbar=False,
        )
    fig.tight_layout(rect=(0, 0, 0.9, 0.94 if suptitle else 1))
    cax = fig.add_axes((0.91, 0.2, 0.02, 0.6))
    bar = fig.colorbar(image, cax=cax)
    bar.ax.tick_params(labelsize=8)
    bar.set_label("same scale in both panels", fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def plot_routing_grid(
    logits: torch.Tensor,
    logit_scales: Sequence[float],
    top_ks: Sequence[int],
    *,
    per_expert_scale: torch.Tensor | None = None,
) -> Any:
    """The static twin of the chapter's widget: routing weights for every
    (logit scale, top-k) pair, one shared colour scale, rows = scale and
    columns = k."""
    import matplotlib.pyplot as plt

    grids = {
        (s, k): rescaled_routing(logits, k, s, per_expert_scale)[1]
        for s in logit_scales
        for k in top_ks
    }
    vmax = max(float(g.max()) for g in grids.values())
    fig, axes = plt.subplots(
        len(logit_scales),
        len(top_ks),
        figsize=(6.75, 1.9 * len(logit_scales) + 0.4),
        dpi=100,
        squeeze=False,
        sharex=True,
        sharey=True,
    )
    image = None
    for r, s in enumerate(logit_scales):
        for c, k in enumerate(top_ks):
            ax = axes[r][c]
            image = routing_heatmap(
                ax,
                grids[(s, k)],
                title=f"scale {s:g}, top-{k}",
                vmax=vmax,
                show_ylabel=c == 0,
                colorbar=False,
            )
            if r < len(logit_scales) - 1:
                ax.set_xlabel("")
    fig.tight_layout(rect=(0, 0, 0.9, 1))
    cax = fig.add_axes((0.915, 0.15, 0.015, 0.7))
    bar = fig.colorbar(image, cax=cax)
    bar.set_label("routing weight", fontsize=9)
    bar.ax.tick_params(labelsize=8)
    return fig


# -------------------------------------------------------------------- training
def plot_expert_load(
    results: Mapping[str, "TrainResult"], *, last: int = 20
) -> Any:
    """One bar chart per balancing mode: each expert's load over the last
    ``last`` steps relative to a fair share (dashed line at 1), experts sorted
    from busiest to idlest."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(
        1,
        len(results),
        figsize=(6.75, 2.9),
        dpi=100,
        sharey=True,
        squeeze=False,
    )
    top = max(float(r.load_share(last).max()) for r in results.values())
    for ax, (mode, result) in zip(axes[0], results.items()):
        share = torch.sort(result.load_share(last), descending=True).values
        ax.bar(
            range(len(share)),
            share.tolist(),
            color=MODE_COLORS.get(mode, PALETTE["dense"]),
            width=0.8,
        )
        ax.axhline(1.0, color=PALETTE["text"], linestyle="--", linewidth=0.9)
        ax.set_title(
            f"{MODE_LABELS.get(mode, mode)}\n"
            f"max/mean {result.imbalance(last):.2f}, "
            f"idle {result.unused_experts(last)}",
            fontsize=8.5,
        )
        ax.set_xlabel("expert (by load)", fontsize=8)
        ax.set_xticks([])
        ax.set_ylim(0, top * 1.08)
    axes[0][0].set_ylabel("load / fair share", fontsize=8)
    axes[0][0].tick_params(labelsize=8)
    fig.tight_layout()
    return fig


def _smooth(values: Sequence[float], window: int) -> list[float]:
    out, total = [], 0.0
    for i, v in enumerate(values):
        total += v
        if i >= window:
            total -= values[i - window]
        out.append(total / min(i + 1, window))
    return out


def plot_training_curves(
    results: Mapping[str, "TrainResult"], *, smooth: int = 10
) -> Any:
    """Task loss, load imbalance (max/mean) and the auxiliary loss's value per
    step for each mode (moving averages over ``smooth`` steps)."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(6.75, 6.6), dpi=100, sharex=True)
    for mode, result in results.items():
        style = dict(
            color=MODE_COLORS.get(mode, PALETTE["dense"]),
            label=MODE_LABELS.get(mode, mode),
            lw=1.6,
        )
        axes[0].plot(_smooth(result.task_loss, smooth), **style)
        axes[1].plot(_smooth(result.imbalance_curve(), smooth), **style)
        axes[2].plot(_smooth(result.aux_loss, smooth), **style)
    k, e = (
        results[next(iter(results))].config.top_k,
        results[next(iter(results))].config.num_experts,
    )
    axes[1].axhline(
        e / k, color=PALETTE["dense"], linestyle=":", linewidth=1.0, zorder=0
    )
    axes[1].text(
        len(results[next(iter(results))].load) - 1,
        e / k * 1.015,
        f"total collapse (E/k = {e / k:g})",
        va="bottom",
        ha="right",
        fontsize=8,
    )
    axes[1].axhline(
        1.0, color=PALETTE["dense"], linestyle="--", linewidth=1.0, zorder=0
    )
    axes[1].text(
        len(results[next(iter(results))].load) - 1,
        1.03,
        "perfect balance",
        va="bottom",
        ha="right",
        fontsize=8,
    )
    axes[2].axhline(
        1.0, color=PALETTE["dense"], linestyle="--", linewidth=1.0, zorder=0
    )
    axes[0].set_yscale("log")
    axes[0].set_yticks([0.1, 0.2, 0.5, 1.0], ["0.1", "0.2", "0.5", "1"])
    axes[0].minorticks_off()
    titles = (
        "task loss (MSE, log scale)",
        "imbalance of each step (max / mean), 10-step moving average",
        "auxiliary loss E·Σ f·P (logged in all runs)",
    )
    for ax, title in zip(axes, titles):
        ax.set_title(title, fontsize=9, loc="left")
        ax.tick_params(labelsize=8)
    axes[-1].set_xlabel("step", fontsize=8)
    axes[1].set_ylim(0.8, e / k * 1.12)
    axes[0].legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
