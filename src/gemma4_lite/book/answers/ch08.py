"""Answers of chapter 08, "Performance trade-offs"."""

from __future__ import annotations

from ...config import Gemma4Config
from .. import cost_model as cm
from ..exercises import Exact, SignificantDigits


def experts_read_batch_24() -> float:
    """Distinct experts one 26B-A4B layer reads for 24 tokens, uniform."""
    config = Gemma4Config.from_preset("26b-a4b")
    return cm.expected_distinct_experts(
        config.num_experts, config.top_k_experts, 24
    )


def cache_overtakes_31b_128k() -> int:
    """Batch at which the 31B's bf16 cache at 131,072 tokens outgrows its
    bf16 weights."""
    return cm.cache_overtakes_weights_batch(
        Gemma4Config.from_preset("31b"), 131_072
    )


def validate_decode_ceiling(fn) -> bool:
    """Exercise 08.2: ``fn(config, hardware, batch, context, precision)``
    must give the roofline's total tokens/s to 6 significant digits."""
    for name in ("12b", "26b-a4b", "31b"):
        config = Gemma4Config.from_preset(name)
        for hw in cm.HARDWARE.values():
            for batch, context in ((1, 4096), (64, 1024), (16, 131_072)):
                for prec in cm.WEIGHT_FORMATS:
                    step = cm.decode_roofline(config, hw, batch, context, prec)
                    got = fn(config, hw, batch, context, prec)
                    want = step.total_tokens_per_second
                    if abs(got - want) > 1e-6 * want:
                        return False
    return True


ANSWERS = {
    "08.1": (experts_read_batch_24, SignificantDigits(3)),
    # 08.2 is a function the reader writes, checked with validate=
    "08.3": (cache_overtakes_31b_128k, Exact()),
}
