"""config.json files as transformers 5.24 writes them load into the model
transformers builds from them: every global-layer geometry its config class
can save (head size, KV heads, K=V), per_layer_config in all its spellings,
and the legacy RoPE keys. Shapes transformers cannot build, or this model
cannot hold, are refused with a ValueError."""

import itertools
import json

import pytest
import torch
from hf_reference import randomise

from gemma4_lite import Gemma4Config, Gemma4ForCausalLM
from gemma4_lite.book.export import save_pretrained, to_hf_dict

transformers = pytest.importorskip("transformers")
from transformers import AutoConfig, Gemma4TextConfig  # noqa: E402
from transformers import Gemma4ForCausalLM as HFGemma4ForCausalLM  # noqa: E402

# Two global layers (5 and 11), so per-layer overrides must agree across them
TINY = dict(
    vocab_size=256,
    hidden_size=64,
    intermediate_size=128,
    num_hidden_layers=12,
    num_attention_heads=4,
    num_key_value_heads=2,
    head_dim=16,
    hidden_size_per_layer_input=0,
    sliding_window=4,
    max_position_embeddings=256,
    final_logit_softcapping=30.0,
)
GLOBAL_LAYERS = (5, 11)


def _random_hf_model(config, seed, cls=HFGemma4ForCausalLM):
    torch.manual_seed(seed)
    model = cls._from_config(
        config, attn_implementation="eager", dtype=torch.float32
    )
    randomise(model, seed)
    return model.eval()


def _reload(folder, cls=HFGemma4ForCausalLM):
    return cls.from_pretrained(
        folder, attn_implementation="eager", dtype=torch.float32
    ).eval()


def _assert_same_model(folder, cls=HFGemma4ForCausalLM):
    """Ours and transformers' reload of one folder: the same geometry on
    every layer and the same logits, bitwise; then what we write back
    reloads in transformers to the same logits and in gemma4_lite to the
    same config."""
    reference = _reload(folder, cls)
    ours = Gemma4ForCausalLM.from_pretrained(folder)
    theirs = reference.config
    for layer in range(ours.config.num_hidden_layers):
        resolved = theirs.per_layer_config[layer]
        assert ours.config.head_dim_for(layer) == resolved.head_dim, layer
        assert (
            ours.config.kv_heads_for(layer) == resolved.num_key_value_heads
        ), layer
        attention = reference.model.layers[layer].self_attn
        assert ours.config.k_eq_v_for(layer) == (attention.v_proj is None)
    gen = torch.Generator().manual_seed(3)
    ids = torch.randint(3, ours.config.vocab_size, (2, 23), generator=gen)
    with torch.no_grad():
        expected = reference(ids, use_cache=False).logits
        got = ours(ids)
    assert expected.std().item() > 0.1
    assert torch.equal(got, expected)

    again = folder / "written_by_gemma4_lite"
    save_pretrained(ours, again)
    with torch.no_grad():
        written = _reload(again)(ids, use_cache=False).logits
    assert torch.equal(written, got)
    assert Gemma4Config.from_hf(again) == ours.config
    return ours.config, theirs


HEAD_SIZES = {"equal": 16, "different": 32, "omitted": None}


@pytest.mark.parametrize(
    "head, k_eq_v, global_kv",
    list(itertools.product(HEAD_SIZES, (False, True), (None, 1, 2))),
)
def test_configs_transformers_saves(head, k_eq_v, global_kv, tmp_path):
    """Gemma4TextConfig's keywords, saved by transformers (which turns them
    into a per_layer_config: ``{}`` when the global layers match the sliding
    ones, and no KV-head override without K=V)."""
    keywords = dict(attention_k_eq_v=k_eq_v)
    if HEAD_SIZES[head] is not None:
        keywords["global_head_dim"] = HEAD_SIZES[head]
    if global_kv is not None:
        keywords["num_global_key_value_heads"] = global_kv
    config = Gemma4TextConfig(**TINY, **keywords)
    _random_hf_model(config, seed=1).save_pretrained(tmp_path)
    saved = json.loads((tmp_path / "config.json").read_text())
    assert "per_layer_config" in saved and "global_head_dim" not in saved

    ours, _ = _assert_same_model(tmp_path)
    expected_head = {"equal": 16, "different": 32, "omitted": 512}[head]
    expected_kv = global_kv if k_eq_v and global_kv is not None else 2
    for layer in GLOBAL_LAYERS:
        assert ours.head_dim_for(layer) == expected_head
        assert ours.kv_heads_for(layer) == expected_kv
    assert ours.head_dim_for(0) == 16 and ours.kv_heads_for(0) == 2


@pytest.mark.parametrize(
    "per_layer_config",
    [
        # global KV heads without K=V: only a per_layer_config can say it
        {5: {"num_key_value_heads": 1}, 11: {"num_key_value_heads": 1}},
        {
            5: {"head_dim": 32, "num_key_value_heads": 4},
            11: {"head_dim": 32, "num_key_value_heads": 4},
        },
        # every sliding layer overridden alike: global layers keep head_dim
        {i: {"head_dim": 8} for i in range(12) if i not in GLOBAL_LAYERS},
    ],
    ids=["global-kv-1", "global-32x4", "sliding-8"],
)
@pytest.mark.parametrize("k_eq_v", [False, True])
def test_per_layer_configs_transformers_saves(
    per_layer_config, k_eq_v, tmp_path
):
    config = Gemma4TextConfig(
        **TINY, attention_k_eq_v=k_eq_v, per_layer_config=per_layer_config
    )
    _random_hf_model(config, seed=2).save_pretrained(tmp_path)
    _assert_same_model(tmp_path)


def _file_with_weights(tmp_path, text: dict, seed: int = 4):
    """A folder whose config.json is exactly ``text`` (a hand-written or
    older file), with random weights of the model transformers builds from
    it."""
    (tmp_path / "config.json").write_text(json.dumps(text))
    model = _random_hf_model(AutoConfig.from_pretrained(tmp_path), seed)
    model.save_pretrained(tmp_path)
    (tmp_path / "config.json").write_text(json.dumps(text))
    return tmp_path


def _file(**changes):
    text = dict(TINY, model_type="gemma4_text", **changes)
    return {k: v for k, v in text.items() if v is not None}


def test_empty_per_layer_config_overrides_the_global_keywords(tmp_path):
    """Bug: with ``"per_layer_config": {}`` the file's global_head_dim and
    num_global_key_value_heads no longer count; global layers are
    head_dim wide with num_key_value_heads."""
    text = _file(
        global_head_dim=32,
        num_global_key_value_heads=1,
        attention_k_eq_v=True,
        per_layer_config={},
    )
    config, _ = _assert_same_model(_file_with_weights(tmp_path, text))
    assert config.head_dim_for(5) == 16 and config.kv_heads_for(5) == 2
    assert config.k_eq_v_for(5)


def test_null_per_layer_config_reads_like_an_empty_one(tmp_path):
    text = _file(
        global_head_dim=32, attention_k_eq_v=True, num_global_key_value_heads=1
    )
    text["per_layer_config"] = None
    config, _ = _assert_same_model(_file_with_weights(tmp_path, text))
    assert config.head_dim_for(11) == 16 and config.kv_heads_for(11) == 2


def test_kv_only_override_keeps_head_dim(tmp_path):
    """Bug: ``{"5": {"num_key_value_heads": 1}}`` (a 6-layer model) means a
    head_dim-wide global layer with one KV head and, without K=V, its own
    v_proj; not a 512-wide layer, and the KV heads are not dropped."""
    text = _file(
        num_hidden_layers=6, per_layer_config={"5": {"num_key_value_heads": 1}}
    )
    config, theirs = _assert_same_model(_file_with_weights(tmp_path, text))
    assert config.head_dim_for(5) == 16 and config.kv_heads_for(5) == 1
    assert not config.k_eq_v_for(5) and config.num_global_key_value_heads == 1


@pytest.mark.parametrize("kind", ["full_attention", "sliding_attention"])
def test_legacy_rope_type_key_is_honoured(kind, tmp_path):
    """Bug: transformers' validate_rope renames a legacy ``type`` key to
    ``rope_type``; reading it as 'default' gave wrong logits."""
    rope = {
        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        "full_attention": {
            "rope_type": "proportional",
            "rope_theta": 1000000.0,
            "partial_rotary_factor": 0.25,
        },
    }
    rope[kind]["type"] = rope[kind].pop("rope_type")
    text = _file(global_head_dim=32, rope_parameters=rope)
    config, _ = _assert_same_model(_file_with_weights(tmp_path, text))
    assert config.global_rope_type == "proportional"


def test_rope_type_wins_over_a_legacy_type(tmp_path):
    rope = {
        "sliding_attention": {"rope_type": "default", "rope_theta": 10000.0},
        "full_attention": {
            "rope_type": "proportional",
            "type": "default",
            "rope_theta": 1000000.0,
            "partial_rotary_factor": 0.25,
        },
    }
    text = _file(global_head_dim=32, rope_parameters=rope)
    config, _ = _assert_same_model(_file_with_weights(tmp_path, text))
    assert config.global_rope_type == "proportional"


def test_top_level_rope_keys_fill_the_gaps_like_transformers(tmp_path):
    """A proportional entry without partial_rotary_factor, a sliding entry
    without rope_theta: transformers' standardize_rope_params copies the
    top-level keys in while building the proportional RoPE."""
    rope = {
        "sliding_attention": {"rope_type": "default"},
        "full_attention": {"rope_type": "proportional", "rope_theta": 5e5},
    }
    text = _file(
        global_head_dim=32,
        rope_parameters=rope,
        rope_theta=20000.0,
        partial_rotary_factor=0.5,
    )
    config, _ = _assert_same_model(_file_with_weights(tmp_path, text))
    assert config.sliding_rope_theta == 20000.0
    assert config.global_partial_rotary_factor == 0.5


def _transformers_fails(text, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps(text))
    with pytest.raises(Exception):
        HFGemma4ForCausalLM(AutoConfig.from_pretrained(tmp_path))


@pytest.mark.parametrize(
    "changes, words",
    [
        (
            dict(per_layer_config={"5": {"head_dim": 32}}),
            "full_attention layers different shapes",
        ),
        (
            dict(
                per_layer_config={
                    "5": {"head_dim": 32},
                    "11": {"head_dim": 64},
                }
            ),
            "full_attention layers different shapes",
        ),
        (
            dict(per_layer_config={"0": {"head_dim": 32}}),
            "sliding_attention layers different shapes",
        ),
        (
            dict(per_layer_config={"5": {"intermediate_size": 64}}),
            "can only change head_dim and num_key_value_heads",
        ),
        (
            dict(per_layer_config={"12": {"head_dim": 32}}),
            "must map layers 0..11",
        ),
        (
            dict(per_layer_config={"last": {"head_dim": 32}}),
            "must map layers 0..11",
        ),
        (
            dict(per_layer_config={"5": 32}),
            "to objects of overrides",
        ),
        (
            dict(rope_parameters={"rope_type": "default", "rope_theta": 1e4}),
            "no 'sliding_attention' or 'full_attention' entry",
        ),
        (
            dict(
                rope_parameters={
                    "sliding_attention": {
                        "rope_type": "default",
                        "rope_theta": 1e4,
                    }
                }
            ),
            "no 'full_attention' entry",
        ),
        (
            dict(
                rope_parameters={
                    "sliding_attention": {
                        "rope_type": "default",
                        "rope_theta": 1e4,
                    },
                    "full_attention": {
                        "rope_type": "proportional",
                        "partial_rotary_factor": 0.25,
                    },
                }
            ),
            "has no rope_theta",
        ),
    ],
    ids=[
        "one-global-layer-differs",
        "global-layers-differ",
        "one-sliding-layer-differs",
        "other-per-layer-key",
        "layer-out-of-range",
        "layer-not-an-index",
        "override-not-an-object",
        "flat-rope",
        "no-full-rope",
        "no-rope-theta",
    ],
)
def test_files_transformers_cannot_build_are_refused(changes, words, tmp_path):
    text = _file(**changes)
    _transformers_fails(text, tmp_path)
    with pytest.raises(ValueError, match=words):
        Gemma4Config.from_hf(text)


def test_null_global_head_dim_is_refused(tmp_path):
    text = _file()
    text["global_head_dim"] = None
    _transformers_fails(text, tmp_path)
    with pytest.raises(ValueError, match="global_head_dim"):
        Gemma4Config.from_hf(text)


@pytest.mark.parametrize(
    "setting",
    [
        dict(use_bidirectional_attention="all"),
        dict(attention_bias=True),
    ],
    ids=["encoder", "attention-bias"],
)
def test_settings_no_gemma4_decoder_has_are_refused(setting):
    """transformers builds these; gemma4_lite refuses rather than run a
    different model."""
    name = next(iter(setting))
    with pytest.raises(ValueError, match=f"{name}=.* not part of"):
        Gemma4Config.from_hf(_file(**setting))
    assert Gemma4Config.from_hf(_file(use_bidirectional_attention="vision"))


@pytest.mark.parametrize(
    "kind, entry",
    [
        (
            "sliding_attention",
            {"rope_type": "linear", "rope_theta": 1e4, "factor": 2.0},
        ),
        ("full_attention", {"rope_type": "yarn", "rope_theta": 1e6}),
    ],
)
def test_rope_kinds_this_model_lacks_are_refused(kind, entry):
    rope = {
        "sliding_attention": {"rope_type": "default", "rope_theta": 1e4},
        "full_attention": {"rope_type": "default", "rope_theta": 1e6},
        kind: entry,
    }
    with pytest.raises(ValueError, match=f"RoPE type '{entry['rope_type']}'"):
        Gemma4Config.from_hf(_file(rope_parameters=rope))


def test_global_kv_heads_without_k_eq_v_round_trip():
    """num_global_key_value_heads holds without K=V too: to_hf_dict spells
    it as a per_layer_config, since transformers drops the keyword."""
    config = Gemma4Config.from_preset(
        "dense-tiny", num_global_key_value_heads=1
    )
    assert config.kv_heads_for(5) == 1 and not config.k_eq_v_for(5)
    written = to_hf_dict(config)
    assert written["per_layer_config"] == {
        "5": {"head_dim": 32, "num_key_value_heads": 1}
    }
    assert Gemma4Config.from_hf(written) == config
    values = {
        k: v
        for k, v in written.items()
        if k not in ("model_type", "architectures")
    }
    theirs = Gemma4TextConfig(**values)
    assert theirs.per_layer_config[5].num_key_value_heads == 1
    assert theirs.per_layer_config[5].head_dim == 32
