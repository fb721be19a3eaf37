"""Figures and exercise answers of the chapter "Training"."""

import math

import matplotlib
import pytest
import torch

from gemma4_lite.book.answers.ch09 import validate_schedule
from gemma4_lite.book.exercises import expected
from gemma4_lite.book.plots.training import (
    plot_expert_load,
    plot_runs,
    smooth,
)
from gemma4_lite.book.train import Curves

matplotlib.use("Agg")


def test_smooth_keeps_the_first_value_and_constants():
    assert smooth([3.0, 3.0, 3.0], 0.9) == pytest.approx([3.0, 3.0, 3.0])
    assert smooth([1.0, 2.0], 0.0) == [1.0, 2.0]


def test_figures_draw_dicts_and_curves():
    run = Curves({}, {}, [1, 2], [10, 20], [1.0, 2.0], [8.0, 7.0])
    run.valid = [{"step": 0, "tokens": 0, "seconds": 0.0, "loss": 8.3}]
    fig = plot_runs({"dense": run, "MoE": dict(vars(run))})
    assert len(fig.axes) == 2
    loads = {"a": torch.full((2, 4), 0.25), "b": torch.full((2, 4), 0.25)}
    assert plot_expert_load(loads) is not None


def test_answers():
    assert expected("09.1")[0] == 70_851_712
    assert expected("09.3")[0] == pytest.approx(4.6 / math.log(2) / 2.78)


def test_schedule_validator():
    def mine(step, steps, warmup, peak, floor):
        if step < warmup:
            return peak * (step + 1) / warmup
        p = min(1.0, (step - warmup) / max(1, steps - warmup))
        return peak * (floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * p)))

    assert validate_schedule(mine)
    assert not validate_schedule(lambda *args: 1e-3)
