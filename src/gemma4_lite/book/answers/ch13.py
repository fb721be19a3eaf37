"""Answers of chapter 13, "Key takeaways"
(``notebooks/13_key_takeaways.ipynb``)."""

from __future__ import annotations

from ..comparators import GIB, by_name, memory
from ..exercises import Decimals, Exact


def _qwen3_next_at_1m_gib() -> float:
    """Qwen3-Next-80B-A3B's memory per sequence at 1,048,576 tokens (its
    YaRN-extended length), with the chapter's accounting."""
    return memory(by_name("Qwen3-Next-80B-A3B"), 2**20)["total"] / GIB


def _qwen_passes_26b() -> int:
    """The shortest context at which Qwen3-Next keeps more bytes per
    sequence than Gemma 4 26B-A4B. Past 1,024 tokens both grow linearly
    and Qwen3-Next faster, so the difference changes sign once: bisect."""
    qwen, gemma = by_name("Qwen3-Next-80B-A3B"), by_name("Gemma 4 26B-A4B")

    def ahead(n: int) -> bool:
        return memory(qwen, n)["total"] > memory(gemma, n)["total"]

    low, high = 1024, 131_072  # not ahead at low, ahead at high
    assert not ahead(low) and ahead(high)
    while high - low > 1:
        mid = (low + high) // 2
        if ahead(mid):
            high = mid
        else:
            low = mid
    return high


def _flash_indexer_share_percent() -> float:
    """The share (percent) of DeepSeek-V4-Flash's memory per sequence at
    1,048,576 tokens that is the CSA layers' indexer keys."""
    parts = memory(by_name("DeepSeek-V4-Flash"), 2**20)
    return 100 * parts["indexer"] / parts["total"]


ANSWERS = {
    "13.1": (_qwen3_next_at_1m_gib, Decimals(2)),
    "13.2": (_qwen_passes_26b, Exact()),
    "13.3": (_flash_indexer_share_percent, Decimals(1)),
}
