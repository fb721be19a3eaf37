"""Presets carry the released values; Hugging Face config files are read in
both layouts."""

import pytest

from gemma4_lite import PRESETS, RELEASED, Gemma4Config
from gemma4_lite.book.export import to_hf_dict


def test_released_presets():
    e2b, e4b, big, moe = (
        Gemma4Config.from_preset(n) for n in ("e2b", "e4b", "31b", "26b-a4b")
    )
    assert e2b.global_layers == [4, 9, 14, 19, 24, 29, 34]
    assert e4b.global_layers == [5, 11, 17, 23, 29, 35, 41]
    assert len(big.global_layers) == 10 and big.global_layers[-1] == 59
    assert moe.global_layers == [5, 11, 17, 23, 29]
    assert (
        e2b.sliding_window,
        e4b.sliding_window,
        big.sliding_window,
        moe.sliding_window,
    ) == (512, 512, 1024, 1024)
    assert (e2b.first_kv_shared_layer, e4b.first_kv_shared_layer) == (15, 24)
    assert e2b.kv_producer(15) == 13 and e2b.kv_producer(19) == 14
    assert e4b.kv_producer(24) == 22 and e4b.kv_producer(29) == 23
    assert e2b.mlp_width_for(14) == 6144 and e2b.mlp_width_for(15) == 12288
    assert (
        big.kv_heads_for(0) == 16
        and big.kv_heads_for(5) == 4
        and big.k_eq_v_for(5)
        and not big.k_eq_v_for(0)
    )
    assert (
        moe.kv_heads_for(5) == 2
        and moe.head_dim_for(5) == 512
        and moe.head_dim_for(0) == 256
    )
    assert (
        big.max_position_embeddings == 262144
        and e2b.max_position_embeddings == 131072
    )


def test_12b_preset_carries_the_published_values():
    """The dense 12B "Unified" (facts sheet §10): 48 layers of width 3840,
    FFN 15360, 16 heads; sliding layers 8 KV heads of 256 in a 1024 window,
    every sixth layer global with one 512-wide K=V head; 256K positions,
    softcap 30, no per-layer embeddings, no KV sharing, no experts."""
    c = Gemma4Config.from_preset("12b")
    assert (c.num_hidden_layers, c.hidden_size, c.intermediate_size) == (
        48,
        3840,
        15360,
    )
    assert c.num_attention_heads == 16 and c.vocab_size == 262144
    assert c.global_layers == list(range(5, 48, 6))
    assert (c.head_dim_for(0), c.kv_heads_for(0), c.k_eq_v_for(0)) == (
        256,
        8,
        False,
    )
    assert (c.head_dim_for(47), c.kv_heads_for(47), c.k_eq_v_for(47)) == (
        512,
        1,
        True,
    )
    assert c.sliding_window == 1024 and c.max_position_embeddings == 262144
    assert c.final_logit_softcapping == 30.0
    assert (c.global_rope_type, c.global_partial_rotary_factor) == (
        "proportional",
        0.25,
    )
    assert c.hidden_size_per_layer_input == 0 and c.num_kv_shared_layers == 0
    assert not c.enable_moe_block
    tiny = Gemma4Config.from_preset("12b-tiny")
    assert tiny.kv_heads_for(5) == 1 and tiny.k_eq_v_for(5)
    assert tiny.num_attention_heads // tiny.num_key_value_heads == 2


def test_released_are_the_five_sizes_in_order_of_size():
    from gemma4_lite.book.accounting import count_parameters

    assert len(RELEASED) == 5 and set(RELEASED) <= set(PRESETS)
    totals = [
        count_parameters(Gemma4Config.from_preset(n))["total"]
        for n in RELEASED
    ]
    # E2B and E4B are ordered by their effective size, as Google names them
    # (their per-layer tables make the E4B total larger than the 12B's);
    # the three large models by their totals
    assert totals[0] < totals[1] and totals[2] < totals[3] < totals[4]


@pytest.mark.parametrize("name", RELEASED)
def test_hf_round_trip(name):
    config = Gemma4Config.from_preset(name)
    assert Gemma4Config.from_hf(to_hf_dict(config)) == config


def test_transformers_reads_our_config_the_same_way():
    pytest.importorskip("transformers")
    from hf_reference import hf_config

    for name in RELEASED:
        ours = Gemma4Config.from_preset(name)
        theirs = hf_config(ours)
        assert theirs.layer_types == ours.layer_types
        for layer in range(ours.num_hidden_layers):
            geometry = theirs.per_layer_config[layer]
            assert geometry.head_dim == ours.head_dim_for(layer)
            assert geometry.num_key_value_heads == ours.kv_heads_for(layer)


def test_keys_a_file_omits_take_transformers_defaults():
    pytest.importorskip("transformers")
    from transformers import Gemma4TextConfig

    given = {
        "model_type": "gemma4_text",
        "vocab_size": 512,
        "global_head_dim": 64,
        "hidden_size_per_layer_input": 0,
    }
    ours = Gemma4Config.from_hf(given)
    theirs = Gemma4TextConfig(
        **{k: v for k, v in given.items() if k != "model_type"}
    )
    for name in (
        "hidden_size",
        "intermediate_size",
        "num_hidden_layers",
        "num_attention_heads",
        "sliding_window",
        "final_logit_softcapping",
        "max_position_embeddings",
        "vocab_size_per_layer_input",
        "layer_types",
    ):
        assert getattr(ours, name) == getattr(theirs, name), name
    for layer in (
        0,
        ours.num_hidden_layers - 1,
    ):  # a sliding and a global layer
        assert (
            ours.head_dim_for(layer) == theirs.per_layer_config[layer].head_dim
        )
        assert (
            ours.kv_heads_for(layer)
            == theirs.per_layer_config[layer].num_key_value_heads
        )
    assert (
        ours.final_logit_softcapping is None
    )  # transformers' default, unlike the released files' 30.0
