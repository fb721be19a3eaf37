"""The answers of chapter 13's exercises, re-derived by hand, and the
precision each check accepts."""

from __future__ import annotations

from gemma4_lite.book import comparators as C
from gemma4_lite.book.answers import ch13
from gemma4_lite.book.exercises import check

BF16, F32 = 2, 4


def test_13_1_qwen_at_1m_by_hand():
    kv = 12 * 2**20 * 2 * 2 * 256 * BF16
    conv = 36 * (2 * 16 * 128 + 32 * 128) * 4 * BF16
    recurrent = 36 * 32 * 128 * 128 * F32
    want = (kv + conv + recurrent) / 2**30
    assert ch13.ANSWERS["13.1"][0]() == want
    assert round(want, 2) == 24.07


def test_13_2_is_the_first_context_where_qwen_needs_more():
    n = ch13.ANSWERS["13.2"][0]()
    qwen = C.by_name("Qwen3-Next-80B-A3B")
    gemma = C.by_name("Gemma 4 26B-A4B")
    assert C.memory(qwen, n)["total"] > C.memory(gemma, n)["total"]
    assert C.memory(qwen, n - 1)["total"] <= C.memory(gemma, n - 1)["total"]
    # past the window both grow linearly: 24,576 against 20,480 bytes per
    # token, from 1,024 tokens where the 26B-A4B is ahead by a known gap
    gap = C.memory(gemma, 1024)["total"] - C.memory(qwen, 1024)["total"]
    assert n == 1024 + gap // (24_576 - 20_480) + 1


def test_13_3_indexer_share_by_hand():
    indexer = 21 * 2**18 * 128 * BF16
    total = C.memory(C.by_name("DeepSeek-V4-Flash"), 2**20)["total"]
    assert ch13.ANSWERS["13.3"][0]() == 100 * indexer / total


def test_checks_accept_the_stated_precision(capsys):
    assert check("13.1", 24.07).endswith("correct.")
    assert not check("13.1", 24.0).endswith("correct.")
    n = ch13.ANSWERS["13.2"][0]()
    assert check("13.2", n).endswith("correct.")
    assert not check("13.2", n + 1).endswith("correct.")
    share = round(ch13.ANSWERS["13.3"][0](), 1)
    assert check("13.3", share).endswith("correct.")
    assert not check("13.3", share + 0.1).endswith("correct.")
