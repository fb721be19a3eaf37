"""The book's figures: one palette and the shared drawing helpers.
Chapter-specific figures live in the submodules of this package
(``plots.attention``, ``plots.moe``, ...), all drawing with these colours.

Importing this package applies the book's figure settings
(:func:`use_book_figure_settings`); the model code never imports it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Sequence

from ...config import Gemma4Config

if TYPE_CHECKING:
    from matplotlib.axes import Axes

# One colour per kind of layer, used by every figure in the book.
PALETTE: dict[str, str] = {
    "sliding": "#4C9BE8",  # sliding-window (local) attention
    "global": "#E8734C",  # global (full) attention
    "shared": "#9B7FD1",  # layers that reuse another layer's keys/values
    "moe": "#3BAA74",  # mixture-of-experts feed-forward
    "dense": "#8C8C8C",  # dense feed-forward / neutral
    "highlight": "#F2C14E",  # the one thing a figure points at
    "masked": "#F4F4F4",  # cells that cannot be attended
    "text": "#222222",
}
# Generations, for the lineage chapter: grey, brown and black, hues that
# never read as a layer kind and stay apart where two curves nearly meet.
GENERATION_COLORS: dict[str, str] = {
    "Gemma 2": "#A8A8A8",
    "Gemma 3": "#9C5B2E",
    "Gemma 4": "#222222",
}


# The size of text a figure does not size itself: legible in a 675 px
# column and still on a phone, where the column is about half as wide.
BASE_FONT_SIZE = 11


def use_book_figure_settings() -> None:
    """The book's settings for every figure, applied when this package is
    imported: a base font size legible on a phone and, in IPython, inline
    figures drawn at twice their resolution ("retina") and shown at their
    normal size, so that they stay sharp on high-density screens.
    """
    try:
        import matplotlib
    except ImportError:  # the package draws nothing without it
        return
    matplotlib.rcParams["font.size"] = BASE_FONT_SIZE
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:  # plain Python: figures are saved, not shown inline
        return
    from IPython.core.pylabtools import select_figure_formats
    from matplotlib_inline.config import InlineBackend

    # The inline backend reads its formats when it is first configured (at
    # the first pyplot import), so they are set there as well as now.
    backend = InlineBackend.instance()
    backend.figure_formats = {"retina"}
    select_figure_formats(shell, {"retina"}, **backend.print_figure_kwargs)


use_book_figure_settings()


def layer_kind(config: Gemma4Config, layer: int) -> str:
    """``"global"`` or ``"sliding"``: the attention kind that sets a layer's
    base colour.
    """
    return "sliding" if config.is_sliding(layer) else "global"


def layer_colors(config: Gemma4Config) -> list[str]:
    return [
        PALETTE[layer_kind(config, i)] for i in range(config.num_hidden_layers)
    ]


def draw_layer_strip(
    ax: "Axes",
    config: Gemma4Config,
    label: str | None = None,
    *,
    y: float = 0.0,
    height: float = 0.8,
    show_index: bool = True,
    per_row: int | None = None,
    fontsize: float = 8,
) -> None:
    """One row of boxes, one per layer: colour = attention kind; a hatched
    box = KV-shared (it computes no keys or values); a green bar under a box =
    MoE beside the dense MLP. With ``per_row``, the strip wraps after that
    many layers (rows ``height + 0.5`` apart, going down) and every layer is
    numbered; otherwise every fifth layer and every global layer is."""
    from matplotlib.patches import Rectangle

    n = config.num_hidden_layers
    width = per_row or n
    for i in range(n):
        x, row_y = i % width, y - (i // width) * (height + 0.5)
        shared = config.is_kv_shared(i)
        ax.add_patch(
            Rectangle(
                (x, row_y),
                0.92,
                height,
                facecolor=PALETTE[layer_kind(config, i)],
                edgecolor=PALETTE["shared"] if shared else "white",
                hatch="//" if shared else None,
                linewidth=0.5,
            )
        )
        if config.enable_moe_block:
            ax.add_patch(
                Rectangle(
                    (x, row_y - 0.18),
                    0.92,
                    0.12,
                    facecolor=PALETTE["moe"],
                    linewidth=0,
                )
            )
        numbered = per_row is not None or i % 5 == 0
        if show_index and (numbered or not config.is_sliding(i)):
            ax.text(
                x + 0.46,
                row_y + height / 2,
                str(i),
                ha="center",
                va="center",
                fontsize=fontsize,
                color=PALETTE["text"]
                if shared or config.is_sliding(i)
                else "white",
                fontweight="bold" if shared else "normal",
            )
    if label:
        ax.text(
            -0.6, y + height / 2, label, ha="right", va="center", fontsize=9
        )


def strip_rows(config: Gemma4Config, per_row: int | None) -> int:
    """Rows a strip takes when it wraps after ``per_row`` layers."""
    return -(-config.num_hidden_layers // per_row) if per_row else 1


def layer_strip_legend(
    ax: "Axes", *, moe: bool = True, shared: bool = True
) -> None:
    from matplotlib.patches import Patch

    handles = [
        Patch(facecolor=PALETTE["sliding"], label="sliding window"),
        Patch(facecolor=PALETTE["global"], label="global"),
    ]
    if shared:
        handles.append(
            Patch(
                facecolor="white",
                edgecolor=PALETTE["shared"],
                hatch="////",
                label="KV-shared",
            )
        )
    if moe:
        handles.append(
            Patch(facecolor=PALETTE["moe"], label="MoE + dense MLP")
        )
    ax.legend(
        handles=handles,
        loc="upper center",
        bbox_to_anchor=(0.5, 0.0),
        ncol=len(handles),
        frameon=False,
        fontsize=8,
    )


def plot_layer_strips(
    configs: dict[str, Gemma4Config],
    *,
    figsize: tuple[float, float] | None = None,
    per_row: int | None = 30,
) -> Any:
    """The layer pattern of several configs as stacked strips (the book's "at a
    glance" figure), sized for the book's text column: strips wrap after
    ``per_row`` layers so that every layer number stays readable."""
    import matplotlib.pyplot as plt

    depth = max(c.num_hidden_layers for c in configs.values())
    per_row = per_row if per_row and depth > per_row else None
    width = per_row or depth
    rows = [strip_rows(c, per_row) for c in configs.values()]
    step = 1.3  # vertical space of one row of boxes
    height = step * (sum(rows) + 0.4 * (len(configs) - 1)) + 0.5
    fig, ax = plt.subplots(
        figsize=figsize or (6.75, 0.3 * height + 0.6), dpi=100
    )
    y = 0.0
    for (name, config), n_rows in zip(configs.items(), rows):
        draw_layer_strip(ax, config, name, y=y, per_row=per_row)
        y -= step * n_rows + 0.5
    ax.set_xlim(-0.2 - 0.12 * width, width + 0.1)
    ax.set_ylim(y + 0.5, 1.0)
    ax.axis("off")
    layer_strip_legend(
        ax,
        moe=any(c.enable_moe_block for c in configs.values()),
        shared=any(c.num_kv_shared_layers for c in configs.values()),
    )
    fig.tight_layout()
    return fig


def mask_heatmap(
    ax: "Axes",
    mask: Any,
    *,
    color: str = PALETTE["sliding"],
    title: str | None = None,
    highlight: Sequence[tuple[int, int]] = (),
) -> None:
    """A boolean [queries, keys] mask: coloured where attention is allowed."""
    import numpy as np
    from matplotlib.colors import ListedColormap

    data = np.asarray(mask, dtype=float)
    ax.imshow(
        data,
        cmap=ListedColormap([PALETTE["masked"], color]),
        vmin=0,
        vmax=1,
        interpolation="nearest",
    )
    for q, k in highlight:
        ax.add_patch(
            __import__("matplotlib.patches", fromlist=["Rectangle"]).Rectangle(
                (k - 0.5, q - 0.5),
                1,
                1,
                fill=False,
                edgecolor=PALETTE["highlight"],
                linewidth=2,
            )
        )
    ax.set_xlabel("key position")
    ax.set_ylabel("query position")
    if title:
        ax.set_title(title, fontsize=10)
