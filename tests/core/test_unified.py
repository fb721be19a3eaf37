"""The fifth model, the dense 12B "Unified": transformers builds its text
decoder with the gemma4_unified classes (Gemma4UnifiedForCausalLM, config
model_type gemma4_unified_text, multimodal gemma4_unified). Its files load
here, with that family's defaults, into the model those classes build."""

import json

import pytest
import torch
from hf_reference import NOT_UNIFIED, randomise

from gemma4_lite import Gemma4Config, Gemma4ForCausalLM, generate
from gemma4_lite.book.accounting import count_parameters
from gemma4_lite.book.export import to_hf_dict

transformers = pytest.importorskip("transformers")
from transformers import (  # noqa: E402
    Gemma4UnifiedConfig,
    Gemma4UnifiedForCausalLM,
    Gemma4UnifiedTextConfig,
)


def unified_config(config: Gemma4Config, **changes) -> Gemma4UnifiedTextConfig:
    values = {
        k: v for k, v in to_hf_dict(config).items() if k not in NOT_UNIFIED
    }
    return Gemma4UnifiedTextConfig(**values, **changes)


def _unified_model(config: Gemma4Config, seed: int, **changes):
    torch.manual_seed(seed)
    model = Gemma4UnifiedForCausalLM._from_config(
        unified_config(config, **changes),
        attn_implementation="eager",
        dtype=torch.float32,
    )
    randomise(model, seed)
    return model.eval()


def test_12b_tiny_matches_gemma4_unified_for_causal_lm(tmp_path):
    config = Gemma4Config.from_preset("12b-tiny")
    reference = _unified_model(config, seed=12)
    reference.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "gemma4_unified_text"
    assert saved["architectures"] == ["Gemma4UnifiedForCausalLM"]
    assert Gemma4Config.from_hf(tmp_path) == config

    ours = Gemma4ForCausalLM.from_pretrained(tmp_path)
    gen = torch.Generator().manual_seed(13)
    ids = torch.randint(
        3, config.vocab_size, (2, 3 * config.sliding_window + 5), generator=gen
    )
    with torch.no_grad():
        expected = reference(ids, use_cache=False).logits
        got = ours(ids)
    assert expected.std().item() > 0.1
    assert torch.equal(got, expected)

    settings = transformers.GenerationConfig(
        do_sample=False,
        max_new_tokens=20,
        min_new_tokens=0,
        eos_token_id=None,
        pad_token_id=0,
    )
    with torch.no_grad():
        theirs = reference.generate(
            ids,
            generation_config=settings,
            attention_mask=torch.ones_like(ids),
        )
    assert torch.equal(generate(ours, ids, 20), theirs)


def test_12b_preset_is_what_the_unified_classes_build():
    """Every layer's geometry and the parameter count of the meta-device
    Gemma4UnifiedForCausalLM built from the preset."""
    config = Gemma4Config.from_preset("12b")
    theirs = unified_config(config)
    assert theirs.layer_types == config.layer_types
    for layer in range(config.num_hidden_layers):
        resolved = theirs.per_layer_config[layer]
        assert config.head_dim_for(layer) == resolved.head_dim
        assert config.kv_heads_for(layer) == resolved.num_key_value_heads
    with torch.device("meta"):
        model = Gemma4UnifiedForCausalLM(theirs)
    expected = sum(p.numel() for p in model.parameters())
    assert count_parameters(config)["total"] == expected == 11_907_350_272
    # transformers' own defaults for the family are the 12B's window and
    # context length
    defaults = Gemma4UnifiedTextConfig()
    assert config.sliding_window == defaults.sliding_window == 1024
    assert config.max_position_embeddings == 262_144
    assert defaults.max_position_embeddings == 262_144


def test_keys_a_unified_file_omits_take_the_unified_defaults():
    given = {
        "model_type": "gemma4_unified_text",
        "vocab_size": 512,
        "global_head_dim": 64,
    }
    ours = Gemma4Config.from_hf(given)
    theirs = Gemma4UnifiedTextConfig(
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
        "layer_types",
    ):
        assert getattr(ours, name) == getattr(theirs, name), name
    for layer in (0, ours.num_hidden_layers - 1):
        resolved = theirs.per_layer_config[layer]
        assert ours.head_dim_for(layer) == resolved.head_dim
        assert ours.kv_heads_for(layer) == resolved.num_key_value_heads
    # unlike Gemma4TextConfig, whose default is 256-wide per-layer inputs
    assert ours.hidden_size_per_layer_input == 0


def test_a_unified_file_ignores_ple_and_moe_keys(tmp_path):
    """Gemma4UnifiedTextConfig keeps unknown keys but its model never reads
    them: a gemma4_unified_text file asking for per-layer embeddings or
    experts still builds a plain dense decoder."""
    config = Gemma4Config.from_preset("12b-tiny")
    extras = dict(
        hidden_size_per_layer_input=16,
        vocab_size_per_layer_input=512,
        enable_moe_block=True,
        num_experts=4,
        top_k_experts=2,
        moe_intermediate_size=8,
    )
    reference = _unified_model(config, seed=14, **extras)
    reference.save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["enable_moe_block"] and saved["hidden_size_per_layer_input"]
    assert Gemma4Config.from_hf(tmp_path) == config
    ours = Gemma4ForCausalLM.from_pretrained(tmp_path)
    ids = torch.randint(3, config.vocab_size, (1, 17))
    with torch.no_grad():
        assert torch.equal(ours(ids), reference(ids).logits)


def test_multimodal_unified_config_reads_its_text_config(tmp_path):
    """A gemma4_unified file (what Gemma4UnifiedForConditionalGeneration
    saves) keeps the decoder under text_config; its top-level model_type
    picks the defaults, whatever the text_config names (as in
    transformers)."""
    config = Gemma4Config.from_preset("12b-tiny")
    Gemma4UnifiedConfig(
        text_config=unified_config(config).to_dict(),
        vision_config=dict(
            mm_embed_dim=64, output_proj_dims=64, mm_posemb_size=8
        ),
        audio_config=dict(audio_embed_dim=16),
    ).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "gemma4_unified"
    assert saved["text_config"]["model_type"] == "gemma4_unified_text"
    assert Gemma4Config.from_hf(tmp_path) == config

    text = {"model_type": "gemma4_text", "vocab_size": 512}
    for outer, window, ple in (
        ("gemma4_unified", 1024, 0),
        ("gemma4", 512, 256),
    ):
        read = Gemma4Config.from_hf({"model_type": outer, "text_config": text})
        assert read.sliding_window == window, outer
        assert read.hidden_size_per_layer_input == ple, outer
