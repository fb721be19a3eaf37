"""Answers of chapter 12, "Multi-token prediction"."""

from __future__ import annotations

from ...config import Gemma4Config
from .. import cost_model as cm
from ..exercises import Exact, SignificantDigits
from ..speculative import verify_seconds


def tokens_per_pass_constant(alpha: float = 0.7, k: int = 3) -> float:
    """Expected tokens a verify pass emits when each draft matches with
    probability ``alpha`` independently of the others: draft i is kept only
    if drafts 1..i all are (probability alpha^i), and the target adds one
    token, so 1 + alpha + ... + alpha^k."""
    return sum(alpha**i for i in range(k + 1))


def verify_ratio_26b(k: int = 8) -> float:
    """How many plain decode steps of the 26B-A4B (H100, bf16, batch 1,
    4,096 tokens of context) one verify pass of ``k`` drafts costs on the
    roofline."""
    config = Gemma4Config.from_preset("26b-a4b")
    hw = cm.HARDWARE["H100"]
    return verify_seconds(config, hw, k) / verify_seconds(config, hw, 0)


def ring_keys_lost(
    window: int = 128,
    slots: int = 128,
    k: int = 4,
    newest: int = 500,
    accepted: int = 1,
) -> int:
    """Keys the next round's first query needs that a ring of ``slots``
    slots no longer holds, after a round that wrote positions ``newest`` ..
    ``newest + k`` and kept ``accepted`` drafts. The cache held positions
    0 .. newest - 1 before the round; position p lives in slot p % slots."""
    ring: dict[int, int] = {}
    for p in range(newest + k + 1):  # everything ever written, in order
        ring[p % slots] = p
    query = newest + accepted + 1  # the next round's first token
    needed = range(query - window + 1, query)  # the keys before it
    held = set(ring.values())
    return sum(p not in held for p in needed)


ANSWERS = {
    "12.1": (tokens_per_pass_constant, SignificantDigits(3)),
    "12.2": (verify_ratio_26b, SignificantDigits(3)),
    "12.3": (ring_keys_lost, Exact()),
}
