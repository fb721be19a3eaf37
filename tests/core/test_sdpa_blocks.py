"""sdpa attention takes a long chunk in blocks of queries, each over only
the span of keys that its mask lets it see (``sdpa_attention``). The cut
must never drop a key that some query may see: the blocks agree with the
written-out attention for any mask, including left padding, a cached
prefix (ring slots out of position order) and chunks longer than the
window; and the cut is really made."""

import pytest
import torch
import torch.nn.functional as F
from conftest import random_model

from gemma4_lite.attention import (
    QUERY_BLOCK,
    grouped_attention,
    sdpa_attention,
)

LONG = 3 * QUERY_BLOCK + 5  # four blocks, the last one short
# Measured: the fused kernel stays within 6e-5 of the written-out logits,
# blocks or not, on these random models; a key dropped from a block's span
# moves them by about 3.
TOLERANCE = 5e-4


def _qkv(length: int, keys: int, batch: int = 2, seed: int = 0):
    gen = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, 4, length, 16, generator=gen)
    k, v = torch.randn(2, batch, 2, keys, 16, generator=gen)
    return q, k, v


@pytest.mark.parametrize("batched", [False, True])
def test_blocks_agree_with_the_written_out_attention_for_any_mask(batched):
    """Each query sees a random few keys around a random column, so the
    spans of the blocks are irregular and, batched, differ by row."""
    keys = 2 * QUERY_BLOCK + 7
    q, k, v = _qkv(LONG, keys)
    gen = torch.Generator().manual_seed(1)
    shape = (2, LONG) if batched else (LONG,)
    centre = torch.randint(0, keys, shape, generator=gen)
    near = (torch.arange(keys) - centre[..., None]).abs() <= 5
    mask = near & (torch.rand(*shape, keys, generator=gen) < 0.5)
    mask |= torch.arange(keys) == centre[..., None]  # no empty row
    expected = grouped_attention(q, k, v, mask)
    torch.testing.assert_close(
        sdpa_attention(q, k, v, mask), expected, rtol=0, atol=1e-5
    )


def test_a_sliding_band_is_cut_to_its_span(monkeypatch):
    window = 16
    calls = []
    kernel = F.scaled_dot_product_attention

    def spy(q, k, v, **kwargs):
        calls.append((q.shape[2], k.shape[2]))
        return kernel(q, k, v, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", spy)
    length = 4 * QUERY_BLOCK
    q, k, v = _qkv(length, length)
    pos = torch.arange(length)
    band = (pos <= pos[:, None]) & (pos > pos[:, None] - window)
    out = sdpa_attention(q, k, v, band)
    torch.testing.assert_close(
        out, grouped_attention(q, k, v, band), rtol=0, atol=1e-5
    )
    span = QUERY_BLOCK + window - 1  # a block's rows and the window before
    assert calls == [(QUERY_BLOCK, QUERY_BLOCK)] + [(QUERY_BLOCK, span)] * 3
    # a one-token step is one call over all keys, as a compiled step needs
    calls.clear()
    sdpa_attention(q[:, :, -1:], k, v, band[-1:])
    assert calls == [(1, length)]


def _pair(name: str):
    eager = random_model(name, seed=5)
    fused = random_model(name, seed=5)
    fused.set_attn_implementation("sdpa")
    return eager, fused


@pytest.mark.parametrize("name", ["31b-tiny", "e2b-tiny"])
def test_a_long_left_padded_prefill_matches_the_written_out_path(name):
    """Row 0 is padded for more than a block: its first block holds only
    padding queries, which see nothing but themselves, while row 1's see
    every key before them."""
    eager, fused = _pair(name)
    gen = torch.Generator().manual_seed(2)
    ids = torch.randint(3, eager.config.vocab_size, (2, LONG), generator=gen)
    mask = torch.ones_like(ids)
    mask[0, : QUERY_BLOCK + 9] = 0
    with torch.no_grad():
        expected = eager(ids, attention_mask=mask)
        got = fused(ids, attention_mask=mask)
    real = mask.bool()  # padding positions' logits are not compared
    assert (got - expected)[real].abs().max().item() < TOLERANCE


@pytest.mark.parametrize("name", ["31b-tiny", "e2b-tiny"])
def test_a_chunk_after_a_cached_prefix_matches_the_written_out_path(name):
    """A second chunk, longer than the window and than a block, after a
    prefix whose sliding keys sit in the ring out of position order."""
    eager, fused = _pair(name)
    gen = torch.Generator().manual_seed(3)
    first, second = 37, 2 * QUERY_BLOCK + 3
    vocab = eager.config.vocab_size
    ids = torch.randint(3, vocab, (1, first + second), generator=gen)
    assert second > eager.config.sliding_window
    logits = []
    with torch.no_grad():
        for model in (eager, fused):
            cache = model.new_cache(1, max_length=first + second)
            model(ids[:, :first], cache)
            logits.append(model(ids[:, first:], cache))
    assert (logits[1] - logits[0]).abs().max().item() < TOLERANCE
