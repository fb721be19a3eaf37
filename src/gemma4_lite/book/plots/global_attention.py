"""Figures for the chapter "Global attention layers": receptive field by depth,
the measured gradient "cone" of a tiny model, and which head dimensions RoPE
rotates in sliding and global layers.

Every colour for a layer kind comes from :data:`gemma4_lite.plots.PALETTE`.
"""

from __future__ import annotations

import math
import textwrap
from typing import TYPE_CHECKING, Any, Sequence

from ...config import Gemma4Config
from ..receptive_field import config_reach, receptive_field, sliding_only_reach
from . import PALETTE

if TYPE_CHECKING:
    from matplotlib.axes import Axes


def _tokens(n: int) -> str:
    """1024 -> '1K', 262144 -> '256K', 17885 -> '17.9K' (binary K, as context
    lengths are quoted).
    """
    if n < 1024:
        return str(n)
    k = n / 1024
    return f"{k:.0f}K" if abs(k - round(k)) < 0.05 else f"{k:.1f}K"


def shade_global_layers(
    ax: "Axes", config: Gemma4Config, *, alpha: float = 0.18
) -> None:
    """A vertical band over each global layer (layer i moves depth i to
    depth i + 1).
    """
    for i in config.global_layers:
        ax.axvspan(i, i + 1, color=PALETTE["global"], alpha=alpha, linewidth=0)


def plot_receptive_field(
    ax: "Axes",
    config: Gemma4Config,
    positions: Sequence[int],
    *,
    title: str | None = None,
    legend: bool = True,
) -> None:
    """Tokens that can influence each of ``positions`` after 0..n layers: the
    real layer pattern (global colour) against the same depth made of sliding
    layers only (sliding colour), on a log axis."""
    depth = range(config.num_hidden_layers + 1)
    real, counter = (
        config_reach(config),
        sliding_only_reach(config.num_hidden_layers, config.sliding_window),
    )
    shade_global_layers(ax, config)
    styles = ["-", "--", ":", "-."]
    for n, p in enumerate(positions):
        style = styles[n % len(styles)]
        ax.plot(
            depth,
            receptive_field(counter, p),
            style,
            color=PALETTE["sliding"],
            linewidth=4.5,  # wide and underneath: visible where they coincide
            alpha=0.6,
            label="sliding layers only" if n == 0 else None,
        )
        ax.plot(
            depth,
            receptive_field(real, p),
            style,
            color=PALETTE["global"],
            linewidth=1.6,
            label="real pattern (with global layers)" if n == 0 else None,
        )
        ax.annotate(
            f"p = {_tokens(p)}",
            (config.num_hidden_layers, p + 1),
            xytext=(3, 0),
            textcoords="offset points",
            va="center",
            fontsize=8,
            color=PALETTE["text"],
        )
    ax.set_yscale("log")
    ax.set_ylim(0.8, config.max_position_embeddings * 2.5)
    ax.set_xlim(0, config.num_hidden_layers)
    ax.set_xlabel("depth (layers applied)", fontsize=8)
    ax.set_ylabel("input tokens that can\ninfluence position p", fontsize=8)
    ax.tick_params(labelsize=8)
    ax.grid(True, which="major", axis="y", alpha=0.3)
    if title:
        ax.set_title(title, fontsize=9)
    if legend:
        from matplotlib.patches import Patch

        handles, _ = ax.get_legend_handles_labels()
        handles.append(
            Patch(
                facecolor=PALETTE["global"], alpha=0.18, label="global layer"
            )
        )
        ax.legend(
            handles=handles, loc="lower right", fontsize=8, frameon=False
        )


def plot_receptive_field_grid(
    configs: dict[str, Gemma4Config],
    positions: dict[str, Sequence[int]],
    *,
    figsize: tuple[float, float] | None = None,
) -> Any:
    """:func:`plot_receptive_field` for several variants, one panel each (the
    widget's static twin), two panels per row in the text column.
    """
    import matplotlib.pyplot as plt

    cols = 2
    rows = math.ceil(len(configs) / cols)
    figsize = figsize or (6.75, 2.9 * rows + 0.3)
    fig, axes = plt.subplots(
        rows, cols, figsize=figsize, dpi=100, squeeze=False
    )
    spare = len(configs) < rows * cols  # the legend gets its own panel
    for n, (name, config) in enumerate(configs.items()):
        ax = axes[n // cols][n % cols]
        plot_receptive_field(
            ax,
            config,
            positions[name],
            legend=n == 0 and not spare,
            title=f"{name}: W = {config.sliding_window}, "
            f"{len(config.global_layers)} of {config.num_hidden_layers} "
            "global",
        )
    for n in range(len(configs), rows * cols):
        axes[n // cols][n % cols].axis("off")
    if spare:
        from matplotlib.lines import Line2D
        from matplotlib.patches import Patch

        handles = [
            Line2D([], [], color=PALETTE["sliding"], lw=4.5, alpha=0.6,
                   label="sliding layers only"),
            Line2D([], [], color=PALETTE["global"], lw=1.6,
                   label="real pattern (with global layers)"),
            Line2D([], [], color=PALETTE["text"], lw=1.2, ls="-",
                   label="solid: position 8K"),
            Line2D([], [], color=PALETTE["text"], lw=1.2, ls="--",
                   label="dashed: last position"),
            Patch(facecolor=PALETTE["global"], alpha=0.18,
                  label="global layer"),
        ]  # fmt: skip
        axes[-1][-1].legend(
            handles=handles, loc="center", fontsize=8, frameon=False
        )
    fig.tight_layout()
    return fig


def plot_gradient_cones(
    panels: dict[str, tuple[Gemma4Config, Any, Sequence[float]]],
    position: int,
    *,
    figsize: tuple[float, float] = (6.75, 3.9),
) -> Any:
    """Heatmaps of ``log10 |d h_L[position] / d e_j|`` (rows: depth L, columns:
    input position j), one panel per model; exact zeros are drawn in the masked
    colour and the analytic reach is outlined.

    ``panels`` maps a title to
    ``(config, gradient_norms [n+1, S], analytic reach by depth)``.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.patches import Rectangle

    fig, axes = plt.subplots(
        1, len(panels), figsize=figsize, dpi=100, squeeze=False
    )
    values = [np.asarray(g, dtype=float) for _, g, _ in panels.values()]
    positive = np.concatenate([v[v > 0] for v in values])
    vmin, vmax = (
        math.floor(np.log10(positive.min())),
        math.ceil(np.log10(positive.max())),
    )
    cmap = plt.get_cmap("magma_r").copy()
    cmap.set_bad(PALETTE["masked"])
    image = None
    for ax, (title, (config, grads, reach)), data in zip(
        axes[0], panels.items(), values
    ):
        depths, length = data.shape
        with np.errstate(divide="ignore"):
            logs = np.ma.masked_where(
                data == 0, np.log10(np.where(data > 0, data, 1.0))
            )
        image = ax.imshow(
            logs,
            cmap=cmap,
            vmin=vmin,
            vmax=vmax,
            aspect="auto",
            origin="lower",
            interpolation="nearest",
            extent=(-0.5, length - 0.5, -0.5, depths - 0.5),
        )
        # the analytic prediction: inputs p - reach .. p, outlined row by row
        for depth, r in enumerate(reach):
            first = position - int(min(position, r))
            ax.add_patch(
                Rectangle(
                    (first - 0.5, depth - 0.5),
                    position - first + 1,
                    1,
                    fill=False,
                    edgecolor=PALETTE["highlight"],
                    linewidth=1.2,
                )
            )
        # which kind of layer produced each depth, as a strip left of the map
        for layer in range(config.num_hidden_layers):
            kind = "sliding" if config.is_sliding(layer) else "global"
            ax.add_patch(
                Rectangle(
                    (-2.6, layer + 0.5),
                    1.6,
                    1,
                    color=PALETTE[kind],
                    clip_on=False,
                )
            )
        ax.set_xlim(-2.8, length - 0.5)
        ax.set_yticks(range(depths))
        ax.set_xlabel("input position j", fontsize=8)
        ax.set_ylabel("depth L (layers applied)", fontsize=8)
        ax.tick_params(labelsize=8)
        ax.set_title(textwrap.fill(title, 36), fontsize=8)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
    from matplotlib.patches import Patch

    handles = [
        Patch(
            facecolor=PALETTE["sliding"],
            label="layer producing this depth: sliding",
        ),
        Patch(facecolor=PALETTE["global"], label="... global"),
        Patch(
            facecolor="none",
            edgecolor=PALETTE["highlight"],
            label="predicted reach (analytic)",
        ),
        Patch(
            facecolor=PALETTE["masked"],
            edgecolor=PALETTE["dense"],
            label="gradient exactly 0",
        ),
    ]
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.legend(
        handles=handles,
        loc="lower center",
        ncol=len(handles),
        frameon=False,
        fontsize=8,
    )
    bar = fig.colorbar(image, ax=list(axes[0]), fraction=0.025, pad=0.02)
    bar.set_label("log10 gradient norm", fontsize=8)
    return fig


def rope_dimension_frequencies(
    inv_freq: Any, rotary_dims: int, head_dim: int
) -> Any:
    """Angular frequency of every head dimension (0: not rotated) when the
    ``rotate_half`` layout pairs dimension ``i`` with ``i + rotary_dims / 2``
    inside the first ``rotary_dims`` dimensions."""
    import numpy as np

    inv = np.asarray(inv_freq, dtype=float)
    if 2 * len(inv) != rotary_dims or rotary_dims > head_dim:
        raise ValueError(
            "inv_freq must have rotary_dims / 2 entries and "
            "rotary_dims <= head_dim"
        )
    return np.concatenate([inv, inv, np.zeros(head_dim - rotary_dims)])


def plot_rope_dimensions(
    schemes: dict[str, dict[str, Any]],
    *,
    colors: dict[str, str] | None = None,
    reference_lengths: dict[str, int] | None = None,
    figsize: tuple[float, float] = (6.75, 6.2),
) -> Any:
    """Where RoPE rotates and how fast, for several schemes.

    ``schemes`` maps a label to
    ``dict(inv_freq=..., rotary_dims=..., head_dim=...)``: the frequency of
    each pair and the block of ``rotary_dims`` leading dimensions that
    ``rotate_half`` pairs up (the whole head for Gemma 4, a leading slice for
    the usual partial RoPE). Top: one row per scheme over the head dimensions,
    coloured by the wavelength ``2 pi / omega`` of the dimension's pair, grey
    where nothing rotates. Bottom: the wavelength of every rotating pair
    against its pair index, with ``reference_lengths`` (window, context) as
    dotted lines. ``colors`` gives each scheme's marker colour.
    """
    import matplotlib.pyplot as plt
    import numpy as np
    from matplotlib.colors import ListedColormap, LogNorm
    from matplotlib.transforms import blended_transform_factory

    fig, (top, bottom) = plt.subplots(
        2, 1, figsize=figsize, dpi=100, gridspec_kw={"height_ratios": [1, 1.7]}
    )
    per_dim = {
        name: rope_dimension_frequencies(
            s["inv_freq"], s["rotary_dims"], s["head_dim"]
        )
        for name, s in schemes.items()
    }
    width = max(len(f) for f in per_dim.values())
    grid = np.full((len(schemes), width), np.nan)
    outside = np.zeros((len(schemes), width), dtype=bool)
    for row, f in enumerate(per_dim.values()):
        with np.errstate(divide="ignore"):
            grid[row, : len(f)] = np.where(
                f > 0, 2 * np.pi / np.where(f > 0, f, 1.0), np.nan
            )
        outside[row, len(f) :] = True
    finite = grid[np.isfinite(grid)]
    cmap = plt.get_cmap("viridis").copy()
    cmap.set_bad(PALETTE["dense"])
    image = top.imshow(
        np.ma.masked_invalid(grid),
        cmap=cmap,
        norm=LogNorm(vmin=finite.min(), vmax=finite.max()),
        aspect="auto",
        interpolation="nearest",
    )
    top.imshow(
        np.ma.masked_where(~outside, np.ones_like(grid)),
        cmap=ListedColormap(["white"]),
        aspect="auto",
        interpolation="nearest",
    )
    top.set_yticks(range(len(schemes)), list(schemes), fontsize=8)
    top.set_xlabel(
        "head dimension (grey: not rotated; white: beyond the head)"
    )
    top.set_xticks(range(0, width + 1, 64))
    bar = fig.colorbar(image, ax=top, fraction=0.03, pad=0.01)
    bar.set_label("wavelength (tokens)", fontsize=8)

    markers = ["o", "s", "^", "D"]
    for n, (name, s) in enumerate(schemes.items()):
        pairs = np.asarray(s["inv_freq"], dtype=float)
        idx = np.nonzero(pairs > 0)[0]
        bottom.plot(
            idx,
            2 * np.pi / pairs[idx],
            markers[n % len(markers)],
            markersize=3.5,
            color=(colors or {}).get(name, PALETTE["text"]),
            label=f"{name}: {len(idx)} of {s['head_dim'] // 2} pairs rotate",
        )
    up = blended_transform_factory(bottom.transData, bottom.transAxes)
    for (
        name,
        s,
    ) in (
        schemes.items()
    ):  # pairs that exist but never rotate (proportional RoPE's 192)
        zero = np.nonzero(np.asarray(s["inv_freq"], dtype=float) == 0)[0]
        if len(zero) and np.all(np.diff(zero) == 1):
            bottom.axvspan(
                zero[0] - 0.5,
                zero[-1] + 0.5,
                color=PALETTE["masked"],
                zorder=0,
            )
            bottom.text(
                zero[0] + 0.7 * (zero[-1] - zero[0]),
                0.62,
                f"{name}:\npairs {zero[0]}-{zero[-1]} have frequency 0\n"
                "(never rotated)",
                transform=up,
                ha="center",
                va="center",
                fontsize=8,
                color=PALETTE["text"],
            )
    right = blended_transform_factory(bottom.transAxes, bottom.transData)
    for label, length in (reference_lengths or {}).items():
        bottom.axhline(
            length, color=PALETTE["text"], linewidth=0.8, linestyle=":"
        )
        bottom.text(
            0.99,
            length * 1.15,
            label,
            transform=right,
            ha="right",
            va="bottom",
            fontsize=8,
            color=PALETTE["text"],
        )
    bottom.set_yscale("log")
    bottom.set_xlabel("frequency pair index j")
    bottom.set_ylabel("wavelength 2\u03c0/\u03c9 (tokens)")
    bottom.set_xlim(-2, width // 2 + 2)
    bottom.grid(True, which="major", axis="y", alpha=0.3)
    bottom.legend(fontsize=8, frameon=False, loc="lower right")
    fig.tight_layout()
    return fig
