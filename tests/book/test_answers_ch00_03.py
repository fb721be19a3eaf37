"""The answers of chapters 00-03: every expected value is computed and
accepted by its own check at the precision the question states, and every
"write the mechanism" solution passes its validator while a plausible wrong
one does not."""

from __future__ import annotations

import importlib

import pytest
import torch

from gemma4_lite.book.answers import ch01, ch02
from gemma4_lite.book.exercises import check, expected
from gemma4_lite.book.global_attention import (
    check_proportional_inv_freq,
    check_proportional_rope,
)
from gemma4_lite.book.sliding_window import check_ring_update
from gemma4_lite.rope import default_inv_freq, proportional_inv_freq

VALIDATORS = {"01.4": check_ring_update, "02.4": check_proportional_rope}


@pytest.mark.parametrize("chapter", ["00", "01", "02", "03"])
def test_every_answer_checks(chapter):
    module = importlib.import_module(f"gemma4_lite.book.answers.ch{chapter}")
    assert 2 <= len(module.ANSWERS) <= 4
    for exercise in module.ANSWERS:
        value, _ = expected(exercise)
        if exercise in VALIDATORS:
            message = check(exercise, value, validate=VALIDATORS[exercise])
        else:
            message = check(exercise, value)
        assert message.endswith("correct."), exercise


def test_precisions_say_what_the_questions_ask():
    assert check("00.2", 0.12).endswith("correct.")  # two digits
    assert not check("00.2", 0.15).endswith("correct.")  # embedding in full
    assert check("0.4", 81_920).endswith("correct.")  # ten global layers
    assert not check("0.4", 81_921).endswith("correct.")
    assert check("03.1", 8.31).endswith("correct.")  # two decimals
    assert not check("03.1", 8.3).endswith("correct.")
    assert not check("03.3", 92160.5).endswith("correct.")  # exact


def test_validators_reject_the_classic_mistakes():
    def contiguous_partial(head_dim, theta, fraction):
        rotated = int(fraction * head_dim)
        freqs = default_inv_freq(rotated, theta)
        return torch.cat([freqs, torch.zeros(head_dim // 2 - len(freqs))])

    assert check_proportional_inv_freq(proportional_inv_freq)
    assert check_proportional_inv_freq(contiguous_partial) is not True
    assert check_ring_update(ch01.ring_update) is True


def test_rope_check_names_the_pair_of_the_contiguous_mistake():
    def contiguous(x, position, theta, fraction):
        rotated = int(fraction * x.shape[0])
        half = rotated // 2
        j = torch.arange(half, dtype=torch.float64)
        angle = position * theta ** (-2 * j / rotated)
        a, b = x[:half].double(), x[half:rotated].double()
        rest = x[rotated:].double()
        return torch.cat(
            [
                a * angle.cos() - b * angle.sin(),
                b * angle.cos() + a * angle.sin(),
                rest,
            ]
        )

    assert check_proportional_rope(ch02.rope_rotate) is True
    message = check_proportional_rope(contiguous)
    assert isinstance(message, str) and "pair" in message

    def stub(x, position, theta, fraction):
        raise NotImplementedError

    with pytest.raises(NotImplementedError):
        check_proportional_rope(stub)
