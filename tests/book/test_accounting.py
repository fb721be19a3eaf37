"""Parameter counts and KV-cache bytes computed from configs
(gemma4_lite.book.accounting), checked against real modules and by hand."""

import pytest
import torch
from conftest import FAMILIES, random_model
from hf_reference import hf_config

from gemma4_lite import RELEASED, Gemma4Config
from gemma4_lite.book.accounting import (
    count_parameters,
    kv_cache_bytes,
    kv_cache_layer_bytes,
)
from gemma4_lite.config import FULL, SLIDING


@pytest.mark.parametrize("name", RELEASED)
def test_count_matches_transformers_meta_model(name):
    from transformers import Gemma4ForCausalLM as HFGemma4ForCausalLM

    config = Gemma4Config.from_preset(name)
    with torch.device("meta"):
        reference = HFGemma4ForCausalLM(hf_config(config))
    expected = sum(p.numel() for p in reference.parameters())
    assert count_parameters(config)["total"] == expected


@pytest.mark.parametrize("name", FAMILIES)
def test_count_matches_our_own_modules(name):
    model = random_model(name)
    counts = count_parameters(model.config)
    assert counts["total"] == sum(p.numel() for p in model.parameters())
    experts = sum(
        p.numel() for n, p in model.named_parameters() if ".experts." in n
    )
    assert counts["experts"] == experts


def test_published_totals_are_reproduced():
    big = count_parameters(Gemma4Config.from_preset("31b"))
    moe = count_parameters(Gemma4Config.from_preset("26b-a4b"))
    assert round(big["total"] / 1e9, 1) == 30.7
    assert round(moe["total"] / 1e9, 1) == 25.2
    assert round(moe["active_per_token"] / 1e9, 1) == 3.8
    # E2B / E4B: the published 5.1B / 8B include vision (~150M) and audio
    # (~300M) towers; the text decoder alone is 4.63B / 7.46B, of which the
    # per-layer embedding table is 2.35B / 2.82B.
    e2b = count_parameters(Gemma4Config.from_preset("e2b"))
    e4b = count_parameters(Gemma4Config.from_preset("e4b"))
    assert (
        round(e2b["total"] / 1e9, 2) == 4.63
        and round(e4b["total"] / 1e9, 2) == 7.46
    )
    assert round(e2b["per_layer_embedding_table"] / 1e9, 2) == 2.35
    assert round(e4b["per_layer_embedding_table"] / 1e9, 2) == 2.82
    # 12B: the published 11.95B adds the vision (49.9M) and audio (2.5M)
    # embedders of the multimodal model to this text decoder (transformers'
    # Gemma4UnifiedForCausalLM on the meta device: test_unified.py)
    assert count_parameters(Gemma4Config.from_preset("12b"))["total"] == (
        11_907_350_272
    )


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("length", [5, 8, 30])
def test_kv_bytes_equal_what_the_cache_holds(name, length):
    model = random_model(name)
    ids = torch.randint(3, model.config.vocab_size, (2, length))
    cache = model.new_cache(2, max_length=length)
    with torch.no_grad():
        model(ids, cache)
    assert cache.layer_nbytes() == kv_cache_layer_bytes(
        model.config, length, torch.float32, batch_size=2
    )
    assert cache.nbytes() == kv_cache_bytes(
        model.config, length, torch.float32, batch_size=2
    )


def test_kv_bytes_of_released_variants():
    gib = 1024**3
    figures = {
        name: [
            kv_cache_bytes(Gemma4Config.from_preset(name), n) / gib
            for n in (4096, 32768, 131072, 262144)
        ]
        for name in RELEASED
    }
    for name, row in figures.items():
        print(name, " ".join(f"{x:8.3f} GiB" for x in row))
    # 31B at 128K in bf16, by hand: 50 sliding layers x 1024 tokens x 16
    # heads x 256 + 10 global layers x 131072 tokens x 4 heads x 512, times 2
    # (K and V) times 2 bytes.
    hand = 2 * 2 * (50 * 1024 * 16 * 256 + 10 * 131072 * 4 * 512)
    assert kv_cache_bytes(Gemma4Config.from_preset("31b"), 131072) == hand
    # E2B: only 15 layers store anything (12 sliding at 512 tokens, 3
    # global), 1 KV head.
    hand_e2b = 2 * 2 * (12 * 512 * 256 + 3 * 131072 * 512)
    assert kv_cache_bytes(Gemma4Config.from_preset("e2b"), 131072) == hand_e2b
    # sliding layers stop growing at the window
    config = Gemma4Config.from_preset("26b-a4b")
    sliding = config.sliding_layers[0]
    assert (
        kv_cache_layer_bytes(config, 2048)[sliding]
        == kv_cache_layer_bytes(config, 262144)[sliding]
    )


def test_12b_kv_cache_by_hand():
    """40 sliding layers keep 1024 tokens of 8 heads x 256; 8 global layers
    keep everything with one 512-wide head (K and V both cached)."""
    config = Gemma4Config.from_preset("12b")
    assert len(config.layer_types) == 48
    assert config.layer_types.count(SLIDING) == 40
    assert config.global_layers == list(range(5, 48, 6))
    assert config.layer_types[-1] == FULL
    tokens = 131_072
    hand = 2 * 2 * (40 * 1024 * 8 * 256 + 8 * tokens * 1 * 512)
    assert kv_cache_bytes(config, tokens) == hand
