"""Figures and exercise answers of the chapter "Training"."""

import math

import matplotlib
import pytest
import torch

from gemma4_lite.book.answers.ch09 import validate_bits_per_byte
from gemma4_lite.book.exercises import expected
from gemma4_lite.book.plots.training import (
    plot_expert_load,
    plot_runs,
    smooth,
)
from gemma4_lite.book.train import Curves, causal_lm_loss

matplotlib.use("Agg")


def test_smooth_keeps_the_first_value_and_constants():
    assert smooth([3.0, 3.0, 3.0], 0.9) == pytest.approx([3.0, 3.0, 3.0])
    assert smooth([1.0, 2.0], 0.0) == [1.0, 2.0]


def test_figures_draw_dicts_and_curves():
    run = Curves({}, {}, [1, 2], [10, 20], [1.0, 2.0], [8.0, 7.0])
    run.valid = [{"step": 0, "tokens": 0, "seconds": 0.0, "loss": 8.3}]
    fig = plot_runs(
        {"dense": run, "MoE": dict(vars(run))},
        xs=("tokens", "seconds"),
        baselines={"unigram": 6.4},
    )
    assert len(fig.axes) == 2
    assert "unigram" in [t.get_text() for t in fig.axes[0].texts]


def test_expert_load_is_white_at_even_load():
    even = torch.full((2, 4), 0.25)
    uneven = torch.tensor([[0.1, 0.2, 0.3, 0.4], [0.25, 0.25, 0.25, 0.25]])
    fig = plot_expert_load({"a": even, "b": uneven})
    image = fig.axes[1].images[0]
    assert image.norm.vcenter == pytest.approx(25.0)
    assert image.norm.vmin == pytest.approx(10.0)
    assert image.norm.vmax == pytest.approx(40.0)
    white = image.cmap(image.norm(25.0))
    assert min(white[:3]) > 0.9  # the centre of the scale is near white


def test_answers():
    assert expected("09.1")[0] == 70_851_712


def reference(model, chunks, token_bytes):
    loss = causal_lm_loss(model(chunks), chunks)
    predicted = chunks[:, 1:]
    nats = float(loss) * predicted.numel()
    return nats / (math.log(2) * int(token_bytes[predicted].sum()))


def test_bits_per_byte_validator():
    assert validate_bits_per_byte(reference) is True

    def nats(model, chunks, token_bytes):
        return reference(model, chunks, token_bytes) * math.log(2)

    message = validate_bits_per_byte(nats)
    assert "one chunk" in message and "nats per byte" in message

    def all_bytes(model, chunks, token_bytes):
        loss = causal_lm_loss(model(chunks), chunks)
        nats = float(loss) * chunks[:, 1:].numel()
        return nats / (math.log(2) * int(token_bytes[chunks].sum()))

    assert "first of each chunk" in validate_bits_per_byte(all_bytes)

    def stub(model, chunks, token_bytes):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        validate_bits_per_byte(stub)
