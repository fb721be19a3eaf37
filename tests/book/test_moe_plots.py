"""The Part 2 figures draw at the column's width (6.75 in) with the data
they are given. Chapters: "Router design", "Expert architecture", "When MoE
meets hybrid attention"."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import torch  # noqa: E402

from gemma4_lite import Gemma4Config  # noqa: E402
from gemma4_lite.book.plots.moe import (  # noqa: E402
    plot_dispatch_sorting,
    plot_dispatch_times,
    plot_overlap,
    plot_time_vs_bytes,
)
from gemma4_lite.book.plots.routing import plot_routing_heatmaps  # noqa: E402


def _width(fig) -> float:
    width = fig.get_size_inches()[0]
    plt.close(fig)
    return width


def test_dispatch_figures_fit_the_column():
    times = {
        1: {"sorted": [1e-3, 2e-3], "grouped": [1e-3, 1.5e-3]},
        64: {"sorted": [4e-2, 5e-2], "grouped": [4e-2, 4.5e-2]},
    }
    assert _width(plot_dispatch_times(times, caption="test")) == 6.75
    fig = plot_time_vs_bytes({1: 12.0, 64: 184.0}, times, ["sorted"])
    assert _width(fig) == 6.75
    table = torch.tensor([[5, 1], [1, 6], [3, 5]])
    assert _width(plot_dispatch_sorting(table, num_experts=8)) == 6.75


def test_heatmaps_share_one_colour_scale():
    probs = torch.softmax(torch.randn(6, 8), -1)
    top_p, experts = probs.topk(2, dim=-1)
    fig = plot_routing_heatmaps(probs, experts, top_p * 3)
    images = [ax.images[0] for ax in fig.axes if ax.images]
    assert len(images) == 2
    assert images[0].get_clim() == images[1].get_clim()
    assert _width(fig) == 6.75


def test_overlap_figure_draws_error_bars():
    config = Gemma4Config.from_preset("26b-a4b-tiny")
    row = dict(adjacent=1.2, same_token=1.5, any_pair=1.1, chance=1.0)
    rows = [dict(row, load_chance=1.1) for _ in range(6)]
    errors = [dict(adjacent=0.1, same_token=0.2, any_pair=0.05)] * 6
    fig = plot_overlap(rows, config, errors=errors)
    assert fig.axes[0].containers and _width(fig) == 6.75


def test_exercise_06_4_validator():
    from gemma4_lite.book.answers.ch06 import validate_expert_branch

    assert validate_expert_branch(lambda layer, r: layer.moe(r)) is True
    wrong = validate_expert_branch(lambda layer, r: layer.moe(r) * 1.01)
    assert isinstance(wrong, str) and "layer 0" in wrong
    assert "shape" in validate_expert_branch(lambda layer, r: r[:, :2])
