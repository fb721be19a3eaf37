"""generate(): greedy equals an uncached argmax loop; sampling is seeded; EOS stops; chunked prefill agrees."""

import pytest
import torch
from conftest import random_model

from gemma4_lite import generate


@pytest.fixture(scope="module")
def model():
    return random_model("e2b-tiny", seed=31)


def _prompt(model, length=19, batch=2, seed=0):
    return torch.randint(
        3,
        model.config.vocab_size,
        (batch, length),
        generator=torch.Generator().manual_seed(seed),
    )


def test_greedy_equals_uncached_argmax_loop(model):
    ids = _prompt(model)
    out = generate(model, ids, 12)
    expected = ids
    with torch.no_grad():
        for _ in range(12):
            nxt = model(expected)[:, -1].argmax(-1, keepdim=True)
            expected = torch.cat([expected, nxt], 1)
    assert torch.equal(out, expected)
    assert torch.equal(out[:, : ids.shape[1]], ids)


@pytest.mark.parametrize("chunk", [1, 5, 8, 9, 100])
def test_chunked_prefill_gives_the_same_tokens(model, chunk):
    ids = _prompt(model)
    assert torch.equal(
        generate(model, ids, 10, prefill_chunk_size=chunk),
        generate(model, ids, 10),
    )


def test_sampling_is_reproducible_with_a_seed(model):
    ids = _prompt(model)
    a = generate(model, ids, 15, temperature=1.0, seed=7)
    b = generate(model, ids, 15, temperature=1.0, seed=7)
    c = generate(model, ids, 15, temperature=1.0, seed=8)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_top_k_one_is_greedy(model):
    ids = _prompt(model)
    assert torch.equal(
        generate(model, ids, 10, temperature=0.7, top_k=1, seed=3),
        generate(model, ids, 10),
    )


def test_top_p_keeps_only_the_nucleus(model):
    ids = _prompt(model, batch=1)
    # a tiny nucleus always contains just the best token, so sampling becomes greedy
    assert torch.equal(
        generate(model, ids, 8, temperature=1.0, top_p=1e-6, seed=1),
        generate(model, ids, 8),
    )


def test_eos_stops_generation(model):
    ids = _prompt(model, batch=1)
    greedy = generate(model, ids, 10)
    eos = int(greedy[0, ids.shape[1] + 3])
    first = (greedy[0, ids.shape[1] :] == eos).nonzero()[0].item()
    stopped = generate(model, ids, 10, eos_token_id=eos)
    assert stopped.shape[1] == ids.shape[1] + first + 1
    assert int(stopped[0, -1]) == eos


def test_bad_generation_arguments(model):
    ids = _prompt(model)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, ids, 3, temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        generate(model, ids, 3, temperature=1, top_p=0)
    with pytest.raises(ValueError, match="prefill_chunk_size"):
        generate(model, ids, 3, prefill_chunk_size=0)
    assert torch.equal(generate(model, ids, 0), ids)
