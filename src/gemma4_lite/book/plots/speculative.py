"""Figures for the chapter "Multi-token prediction": the drafter beside its
target, the speculative loop round by round, acceptance against the number
of drafted tokens, and measured speed-ups. Figures are at most 6.75 in
wide (the site's text column) with labels of 8 pt or more.
"""

from __future__ import annotations

from typing import Any, Callable, Mapping, Sequence

from ...config import Gemma4Config
from . import PALETTE

WIDTH = 6.75
ACCEPTED = PALETTE["moe"]
REJECTED = PALETTE["global"]
BONUS = PALETTE["highlight"]
CORRECTION = PALETTE["sliding"]
# one colour per temperature in the acceptance figures
TEMPERATURE_COLORS = ("#222222", "#9B7FD1", "#E8734C")


def _box(ax, x, y, w, h, text, color, *, size=8, text_color="#222222"):
    from matplotlib.patches import FancyBboxPatch

    ax.add_patch(
        FancyBboxPatch(
            (x, y),
            w,
            h,
            boxstyle="round,pad=0.02,rounding_size=0.08",
            facecolor=color,
            edgecolor="#555555",
            linewidth=0.8,
        )
    )
    ax.text(
        x + w / 2,
        y + h / 2,
        text,
        ha="center",
        va="center",
        fontsize=size,
        color=text_color,
    )


def _arrow(ax, start, end, color="#555555", style="-|>", **kwargs):
    ax.annotate(
        "",
        xy=end,
        xytext=start,
        arrowprops=dict(
            arrowstyle=style,
            color=color,
            linewidth=1.0,
            shrinkA=0,
            shrinkB=0,
            **kwargs,
        ),
    )


def plot_drafter(target: Gemma4Config, drafter: Gemma4Config) -> Any:
    """The target (left) and the drafter (right) of one draft step: the
    drafter concatenates the target's scaled embedding of the newest token
    with the target's final hidden state, projects the pair down, runs
    query-only layers that attend to the keys and values of the target's
    last sliding and last global layer, and returns logits and a hidden
    state of the target's width that feeds its next step."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(WIDTH, 4.6))
    ax.set_xlim(0, 10)
    ax.set_ylim(0, 10)
    ax.axis("off")
    hb, hd = target.hidden_size, drafter.hidden_size
    # the target: embedding, its layers, final norm
    ax.text(
        1.6,
        9.7,
        f"target ({target.num_hidden_layers} layers, width {hb})",
        ha="center",
        fontsize=9,
        weight="bold",
    )
    _box(ax, 0.3, 0.4, 2.6, 0.7, "token embedding x √H", "#EEEEEE")
    kinds = target.layer_types
    lenders = {
        kind: i for i, kind in enumerate(kinds[: target.first_kv_shared_layer])
    }
    n = len(kinds)
    step = 7.2 / n
    tops = {}
    for i, kind in enumerate(kinds):
        y = 1.4 + i * step
        color = (
            PALETTE["sliding"]
            if kind != "full_attention"
            else (PALETTE["global"])
        )
        lends = " (lends K, V)" if lenders.get(kind) == i else ""
        name = "sliding" if kind != "full_attention" else "global"
        _box(
            ax,
            0.3,
            y,
            2.6,
            step * 0.75,
            f"layer {i}: {name}{lends}",
            color,
            size=8,
        )
        tops[i] = y + step * 0.375
    _box(ax, 0.3, 8.75, 2.6, 0.6, "final norm → h", "#EEEEEE")
    # the drafter
    ax.text(
        7.0,
        9.7,
        f"drafter ({drafter.num_hidden_layers} layers, width {hd})",
        ha="center",
        fontsize=9,
        weight="bold",
    )
    _box(ax, 4.3, 0.4, 2.2, 0.7, f"[embed(x) ; h]\n2 x {hb}", "#EEEEEE")
    _box(ax, 4.3, 1.5, 2.2, 0.6, f"pre_projection → {hd}", "#DDDDDD")
    dsteps = 4.6 / drafter.num_hidden_layers
    height = min(0.8, dsteps * 0.75)
    below = 2.1  # the top of the box under the next layer
    for j, kind in enumerate(drafter.layer_types):
        y = 2.5 + j * dsteps + (dsteps * 0.75 - height) / 2
        _arrow(ax, (5.4, below), (5.4, y))
        below = y + height
        color = (
            PALETTE["sliding"]
            if kind != "full_attention"
            else (PALETTE["global"])
        )
        name = "sliding" if kind != "full_attention" else "global"
        _box(ax, 4.3, y, 2.2, height, f"Q-only layer {j}: {name}", color)
        lender = lenders[kind]
        _arrow(
            ax,
            (2.9, tops[lender]),
            (4.3, y + height / 2),
            color=PALETTE["shared"],
            style="-|>",
            connectionstyle="arc3,rad=0.0",
        )
    _box(ax, 4.3, 7.3, 2.2, 0.55, "final norm", "#EEEEEE")
    _box(
        ax, 3.8, 8.5, 1.7, 0.75, "head →\ndraft token", PALETTE["moe"], size=8
    )
    _box(
        ax,
        5.8,
        8.5,
        1.9,
        0.75,
        f"post_projection\n→ h' ({hb})",
        "#DDDDDD",
        size=8,
    )
    _arrow(ax, (5.4, 1.1), (5.4, 1.5))
    _arrow(ax, (5.4, below), (5.4, 7.3))
    _arrow(ax, (5.0, 7.85), (4.65, 8.5))
    _arrow(ax, (5.8, 7.85), (6.6, 8.5))
    # inputs from the target: embedding of x and the hidden state h
    _arrow(ax, (2.9, 0.75), (4.3, 0.75))
    _arrow(ax, (2.9, 9.05), (3.6, 9.05), style="-")
    _arrow(ax, (3.6, 9.05), (3.6, 0.95), style="-")
    _arrow(ax, (3.6, 0.95), (4.3, 0.95))
    # the loop: the next step reads h' and the drafted token
    _arrow(ax, (7.7, 8.85), (8.3, 8.85), style="-")
    _arrow(ax, (8.3, 8.85), (8.3, 0.75), style="-")
    _arrow(ax, (8.3, 0.75), (6.5, 0.75))
    ax.text(
        8.45,
        4.8,
        "next step:\nh', draft token\n(same position,\nsame K, V)",
        fontsize=8,
        va="center",
    )
    ax.text(
        3.25,
        7.75,
        "K, V",
        fontsize=8,
        ha="center",
        color=PALETTE["shared"],
        weight="bold",
    )
    fig.tight_layout()
    return fig


def plot_rounds(
    rounds: Sequence[Any],
    piece: Callable[[int], str],
    k: int,
    *,
    title: str | None = None,
) -> Any:
    """One row per round (a ``speculative.Round``): its ``k`` drafts,
    accepted (green) or rejected (orange, hatched), then the target's own
    token: a bonus (yellow) when every draft was accepted, else the
    correction of the first rejected draft (blue). ``piece`` turns a token
    id into the text drawn in its cell."""
    import matplotlib.pyplot as plt
    from matplotlib.patches import Patch, Rectangle

    n = len(rounds)
    fig, ax = plt.subplots(figsize=(WIDTH, 0.36 * n + 1.3))
    for row, r in enumerate(rounds):
        y = n - 1 - row
        for i, token in enumerate(r.drafted):
            kept = i < r.accepted
            ax.add_patch(
                Rectangle(
                    (i, y + 0.08),
                    0.96,
                    0.84,
                    facecolor=ACCEPTED if kept else REJECTED,
                    alpha=1.0 if kept else 0.45,
                    hatch=None if kept else "//",
                    edgecolor="white",
                    linewidth=0.5,
                )
            )
            ax.text(
                i + 0.48,
                y + 0.5,
                piece(token),
                ha="center",
                va="center",
                fontsize=8,
            )
        own = r.emitted[-1]
        ax.add_patch(
            Rectangle(
                (k + 0.15, y + 0.08),
                0.96,
                0.84,
                facecolor=BONUS if r.bonus else CORRECTION,
                edgecolor="white",
            )
        )
        ax.text(
            k + 0.63, y + 0.5, piece(own), ha="center", va="center", fontsize=8
        )
        ax.text(
            k + 1.3, y + 0.5, f"+{len(r.emitted)}", va="center", fontsize=8
        )
    ax.set_xlim(-0.05, k + 1.75)
    ax.set_ylim(-0.1, n + 0.05)
    ax.set_yticks([n - 1 - i + 0.5 for i in range(n)])
    ax.set_yticklabels([f"round {i + 1}" for i in range(n)], fontsize=8)
    ax.set_xticks([i + 0.48 for i in range(k)] + [k + 0.63])
    ax.set_xticklabels(
        [f"draft {i + 1}" for i in range(k)] + ["target"], fontsize=8
    )
    ax.tick_params(length=0)
    for side in ("top", "right", "bottom", "left"):
        ax.spines[side].set_visible(False)
    ax.legend(
        handles=[
            Patch(facecolor=ACCEPTED, label="accepted"),
            Patch(
                facecolor=REJECTED, alpha=0.45, hatch="//", label="rejected"
            ),
            Patch(facecolor=CORRECTION, label="target's correction"),
            Patch(facecolor=BONUS, label="bonus token"),
        ],
        fontsize=8,
        ncol=4,
        loc="lower center",
        bbox_to_anchor=(0.5, 1.0),
        frameon=False,
    )
    if title:
        ax.set_title(title, fontsize=9, pad=22)
    fig.tight_layout()
    return fig


def plot_acceptance(stats: Mapping[int, Mapping[str, Any]]) -> Any:
    """Left: the share of rounds whose i-th draft was accepted, one line
    per k. Right: tokens per verify pass against k, with the k + 1 that a
    drafter the target always agreed with would reach."""
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(WIDTH, 2.9))
    ks = sorted(stats)
    shades = plt.get_cmap("viridis")
    for j, k in enumerate(ks):
        rates = stats[k]["per_position"]
        left.plot(
            range(1, k + 1),
            rates,
            marker="o",
            markersize=4,
            color=shades(j / max(1, len(ks) - 1) * 0.85),
            label=f"k = {k}",
        )
    left.set_xlabel("draft position", fontsize=9)
    left.set_ylabel("accepted (share of rounds)", fontsize=9)
    left.set_ylim(0, 1)
    left.set_xticks(range(1, max(ks) + 1))
    left.legend(fontsize=8, frameon=False)
    per_pass = [stats[k]["tokens_per_pass"] for k in ks]
    right.plot(
        ks,
        [k + 1 for k in ks],
        linestyle="--",
        color=PALETTE["dense"],
        label="k + 1 (every draft kept)",
    )
    right.plot(ks, per_pass, marker="o", color=ACCEPTED, label="measured")
    right.set_xlabel("drafted tokens per round, k", fontsize=9)
    right.set_ylabel("tokens per verify pass", fontsize=9)
    right.set_xticks(ks)
    right.set_ylim(0, max(ks) + 1.5)
    right.legend(fontsize=8, frameon=False, loc="upper left")
    for ax in (left, right):
        ax.tick_params(labelsize=8)
    fig.tight_layout()
    return fig


def acceptance_panel(stats: Mapping[str, Any], temperature: float) -> Any:
    """One setting of the widget: the share of rounds that kept each draft
    position, and tokens per verify pass in the title."""
    import matplotlib.pyplot as plt

    k = stats["k"]
    setting = "greedy" if temperature == 0 else f"temperature {temperature:g}"
    fig, ax = plt.subplots(figsize=(5.2, 2.4))
    rates = stats["per_position"]
    bars = ax.bar(range(1, k + 1), rates, color=ACCEPTED, width=0.6)
    for bar, rate in zip(bars, rates):
        ax.text(
            bar.get_x() + bar.get_width() / 2,
            rate + 0.03,
            f"{rate:.2f}",
            ha="center",
            fontsize=8,
        )
    ax.set_xlim(0.4, 6.6)
    ax.set_ylim(0, 1.12)
    ax.set_xticks(range(1, 7))
    ax.set_xlabel("draft position", fontsize=9)
    ax.set_ylabel("accepted", fontsize=9)
    ax.tick_params(labelsize=8)
    ax.set_title(
        f"k = {k}, {setting}: "
        f"{stats['tokens_per_pass']:.2f} tokens per verify pass "
        f"({stats['rounds']} rounds)",
        fontsize=9,
    )
    fig.tight_layout()
    return fig


def plot_speedup(
    measured: Mapping[str, Sequence[tuple[int, float]]],
    *,
    ylabel: str = "speed-up over plain decoding",
) -> Any:
    """Speed-up against k, one line per series (``label -> [(k, x)]``),
    with the break-even line at 1."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(WIDTH, 2.8))
    colors = [ACCEPTED, "#1F3A5F", PALETTE["global"], PALETTE["shared"]]
    ks = set()
    for (label, points), color in zip(measured.items(), colors):
        xs = [p[0] for p in points]
        ks.update(xs)
        ax.plot(
            xs, [p[1] for p in points], marker="o", color=color, label=label
        )
    ax.axhline(1.0, color=PALETTE["dense"], linestyle="--", linewidth=1)
    ax.set_xticks(sorted(ks))
    ax.set_xlabel("drafted tokens per round, k", fontsize=9)
    ax.set_ylabel(ylabel, fontsize=9)
    ax.tick_params(labelsize=8)
    ax.legend(fontsize=8, frameon=False)
    fig.tight_layout()
    return fig
