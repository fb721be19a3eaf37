"""Answers of chapter 09, "Training"."""

from __future__ import annotations

import math

from ...accounting import count_parameters
from ..exercises import Decimals, Exact
from ..train import TrainArgs, lr_at, shape_config

GEMMA_VOCAB = 262_144


def _dense_with_gemma_vocabulary() -> int:
    config = shape_config("dense").replace(
        vocab_size=GEMMA_VOCAB, vocab_size_per_layer_input=GEMMA_VOCAB
    )
    return count_parameters(config)["total"]


def _bits_per_byte() -> float:
    return 4.6 / (math.log(2) * 2.78)


ANSWERS = {
    "09.1": (_dense_with_gemma_vocabulary, Exact()),
    "09.3": (_bits_per_byte, Decimals(2)),
}


def validate_schedule(fn) -> bool:
    """Exercise 09.2: ``fn(step, steps, warmup, peak, floor)`` must give
    the learning rate of :func:`gemma4_lite.book.train.lr_at` (step counted
    from 0) for a few schedules, to 1e-12."""
    for steps, warmup, peak, floor in ((800, 50, 3e-3, 0.1), (10, 3, 1, 0)):
        args = TrainArgs(
            steps=steps, warmup=warmup, lr=peak, min_lr_ratio=floor
        )
        for step in range(steps + 1):
            try:
                got = float(fn(step, steps, warmup, peak, floor))
            except Exception:
                return False
            if abs(got - lr_at(step, args)) > 1e-12:
                return False
    return True
