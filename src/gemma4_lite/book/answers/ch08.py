"""Answers of chapter 8, "Performance trade-offs"."""

from __future__ import annotations

from typing import Callable

from ...config import Gemma4Config
from .. import cost_model as cm
from ..exercises import Exact

# The grid 8.2's check runs the reader's function on: every model the
# chapter compares, on every device, in every weight format the chapter
# uses (FP8 too, which changes the H100's peak), at a batch where the
# weights lead, one where the weight products are compute-bound, and one
# where the cache leads.
SPLIT_MODELS = ("12b", "26b-a4b", "31b")
SPLIT_FORMATS = ("bf16", "fp8", "int8", "int4")
SPLIT_SETTINGS = ((1, 4096), (512, 1024), (16, 131_072))


def batch_reading_120_experts() -> int:
    """The smallest batch at which one 26B-A4B layer reads, on average,
    at least 120 of its 128 experts under uniform routing."""
    config = Gemma4Config.from_preset("26b-a4b")
    batch = 1
    while (
        cm.expected_distinct_experts(
            config.num_experts, config.top_k_experts, batch
        )
        < 120
    ):
        batch += 1
    return batch


def rtx4090_sequences_26b_int4_32k() -> int:
    """The most 26B-A4B sequences of 32,768 tokens an RTX 4090 holds with
    int4 weights, a bf16 cache and the chapter's runtime reserve."""
    return cm.max_batch(
        Gemma4Config.from_preset("26b-a4b"),
        cm.HARDWARE["RTX 4090"],
        32_768,
        "int4",
    )


def validate_split_step(fn: Callable[..., float]) -> bool | str:
    """Exercise 8.2: ``fn(config, hardware, batch, context, weights)`` must
    give :func:`cost_model.decode_roofline_split`'s total seconds to 6
    significant digits on :data:`SPLIT_SETTINGS`. Says which case differs
    first, and by how much."""
    for name in SPLIT_MODELS:
        config = Gemma4Config.from_preset(name)
        for key, hw in cm.HARDWARE.items():
            for prec in SPLIT_FORMATS:
                for batch, context in SPLIT_SETTINGS:
                    want = cm.decode_roofline_split(
                        config, hw, batch, context, prec
                    )
                    got = fn(config, hw, batch, context, prec)
                    if not isinstance(got, (int, float)):
                        return (
                            f"{name} on {key}: returned "
                            f"{type(got).__name__}, not seconds"
                        )
                    if abs(got - want["total"]) > 1e-6 * want["total"]:
                        part = (
                            "the weights take"
                            if want["weights"] >= want["cache"]
                            else "the cache takes"
                        )
                        return (
                            f"{name} on {key}, {prec} weights, batch "
                            f"{batch}, context {context:,}: "
                            f"{got * 1e3:.4g} ms, expected "
                            f"{want['total'] * 1e3:.4g} ms ({part} "
                            "the larger share there)"
                        )
    return True


ANSWERS = {
    "08.1": (batch_reading_120_experts, Exact()),
    # 08.2 is a function the reader writes, checked with validate=
    "08.3": (rtx4090_sequences_26b_int4_32k, Exact()),
}
