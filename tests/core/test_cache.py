"""Cached decode == uncached == chunked prefill, the ring buffer stays at
the window, KV sharing is used, and a full cache refuses more tokens."""

import pytest
import torch
from conftest import FAMILIES, random_model

from gemma4_lite import GlobalKVCache, RingKVCache
from gemma4_lite.masks import ring_positions


def _ids(model, length, seed=0, batch=2):
    return torch.randint(
        3,
        model.config.vocab_size,
        (batch, length),
        generator=torch.Generator().manual_seed(seed),
    )


def _run_chunked(model, ids, chunk):
    cache = model.new_cache(ids.shape[0])
    pieces = [
        model(ids[:, s : s + chunk], cache)
        for s in range(0, ids.shape[1], chunk)
    ]
    return torch.cat(pieces, dim=1), cache


@pytest.mark.parametrize("name", FAMILIES)
def test_cached_equals_uncached_for_every_chunk_size(name):
    model = random_model(name, seed=11)
    window = model.config.sliding_window
    ids = _ids(model, 4 * window + 5)
    with torch.no_grad():
        full = model(ids)
        for chunk in (
            1,
            3,
            window - 1,
            window,
            window + 1,
            2 * window + 3,
            ids.shape[1],
        ):
            got, cache = _run_chunked(model, ids, chunk)
            diff = (got - full).abs().max().item()
            assert diff <= 1e-4, f"chunk {chunk}: max diff {diff:.2e}"
            assert cache.seq_len == ids.shape[1]
        # mixed: a chunk longer than the window and not a multiple of it,
        # another that starts mid-ring, then one-token decode steps
        cache = model.new_cache(ids.shape[0])
        ends = [window + 5, 3 * window + 6]
        ends += range(ends[-1] + 1, ids.shape[1] + 1)
        mixed = torch.cat(
            [model(ids[:, s:e], cache) for s, e in zip([0, *ends], ends)], 1
        )
    assert (mixed - full).abs().max().item() <= 1e-4


def test_ring_buffer_never_exceeds_the_window():
    model = random_model("dense-tiny", seed=13)
    window = model.config.sliding_window
    ids = _ids(model, 10 * window, batch=1)
    cache = model.new_cache(1)
    with torch.no_grad():
        for i in range(ids.shape[1]):
            model(ids[:, i : i + 1], cache)
            for layer in cache.layers:
                if isinstance(layer, RingKVCache):
                    assert (
                        layer.k.shape[2] == window
                        and layer.v.shape[2] == window
                    )
    rings = [layer for layer in cache.layers if isinstance(layer, RingKVCache)]
    globals_ = [
        layer for layer in cache.layers if isinstance(layer, GlobalKVCache)
    ]
    assert rings and globals_
    # the ring holds exactly the last W positions, each in slot p % W: the
    # same keys, in the same slots, as after a one-shot prefill
    assert cache.seq_len == ids.shape[1]
    one_shot = model.new_cache(1)
    with torch.no_grad():
        model(ids, one_shot)
    ring_index = cache.layers.index(rings[0])
    # (equal up to the last bits: one-row and many-row matmuls round apart)
    torch.testing.assert_close(rings[0].k, one_shot.layers[ring_index].k)
    torch.testing.assert_close(rings[0].v, one_shot.layers[ring_index].v)
    last = ids.shape[1] - 1
    expected = [last - ((last - s) % window) for s in range(window)]
    assert ring_positions(ids.shape[1], window).tolist() == expected


def test_kv_shared_layers_store_nothing_and_read_their_producer():
    model = random_model("e2b-tiny", seed=14)
    config = model.config
    cache = model.new_cache(1)
    with torch.no_grad():
        model(_ids(model, 20, batch=1), cache)
    for i, layer in enumerate(cache.layers):
        assert (layer is None) == config.is_kv_shared(i)
    # producers: the *last* non-shared layer of the same type
    assert config.first_kv_shared_layer == 6
    assert [config.kv_producer(i) for i in range(6, 10)] == [5, 5, 5, 4]
    # The sharing is real: perturbing the producer's keys changes shared
    # layers' outputs, and the shared layers own no key/value weights at all.
    shared_attn = model.model.layers[6].self_attn
    q_rows = config.num_attention_heads * shared_attn.head_dim
    assert shared_attn.qkv_proj.out_features == q_rows
    assert not hasattr(shared_attn, "k_norm")
    ids = _ids(model, 20, batch=1)
    captured = {}
    handle = model.model.layers[6].self_attn.register_forward_hook(
        lambda m, i, o: captured.update(o=o[0])
    )
    with torch.no_grad():
        model(ids)
        before = captured.pop("o")
        # (a pure rescale would be undone by k_norm, so perturb the direction)
        producer = model.model.layers[5].self_attn
        k_rows = producer.qkv_proj.weight[q_rows : 2 * q_rows]
        k_rows.add_(0.1 * torch.randn_like(k_rows))
        model(ids)
        after = captured.pop("o")
    handle.remove()
    assert (before - after).abs().max().item() > 1e-3


def test_preallocated_cache_does_not_grow():
    model = random_model("31b-tiny", seed=15)
    ids = _ids(model, 50, batch=1)
    cache = model.new_cache(1, max_length=50)
    before = cache.nbytes()
    with torch.no_grad():
        model(ids[:, :20], cache)
        for i in range(20, 50):
            model(ids[:, i : i + 1], cache)
    assert cache.nbytes() == before


def test_writing_past_max_length_is_an_error():
    # a cache made for 5 tokens on a window-8 model: its ring has 5 slots,
    # which is only right while no 6th token arrives
    model = random_model("dense-tiny", seed=16)
    ids = _ids(model, 6, batch=1)
    cache = model.new_cache(1, max_length=5)
    with torch.no_grad():
        model(ids[:, :5], cache)
        with pytest.raises(ValueError, match="overflow"):
            model(ids[:, 5:], cache)
        with pytest.raises(ValueError, match="overflow"):
            model.logits(ids[:, 5:], cache)  # the unchecked path too
    with pytest.raises(ValueError, match="max_length"):
        model.new_cache(1, max_length=model.config.max_position_embeddings + 1)


def test_global_cache_grows_past_its_first_allocation():
    model = random_model("31b-tiny", seed=17)
    ids = _ids(model, 300, batch=1)  # the first allocation holds 256
    cache = model.new_cache(1)
    with torch.no_grad():
        full = model(ids)
        pieces = [model(ids[:, :250], cache)]
        pieces += [model(ids[:, i : i + 1], cache) for i in range(250, 300)]
    assert (torch.cat(pieces, 1) - full).abs().max().item() <= 1e-4
