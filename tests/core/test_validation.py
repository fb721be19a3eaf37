"""Bad input gets a clear error naming the problem, never a silent wrong
answer."""

import json

import pytest
import torch
from conftest import random_model
from safetensors.torch import load_file, save_file

from gemma4_lite import (
    CheckpointError,
    Gemma4Config,
    Gemma4ForCausalLM,
    generate,
)
from gemma4_lite.book.export import save_pretrained, to_hf_dict
from gemma4_lite.config import FULL, SLIDING


@pytest.mark.parametrize(
    "changes, field, words",
    [
        (
            dict(num_kv_shared_layers=5, layer_types=[SLIDING] * 5 + [FULL]),
            "num_kv_shared_layers",
            "no earlier non-shared layer",
        ),
        (
            dict(
                enable_moe_block=True,
                num_experts=4,
                top_k_experts=5,
                moe_intermediate_size=8,
            ),
            "top_k_experts",
            "exceeds num_experts",
        ),
        (
            dict(sliding_window=0),
            "sliding_window",
            "must be a positive integer",
        ),
        (
            dict(num_key_value_heads=3),
            "num_key_value_heads",
            "cannot be split evenly",
        ),
        (
            dict(layer_types=[SLIDING] * 5 + ["chunked_attention"]),
            "layer_types",
            "unknown layer type",
        ),
        (
            dict(global_head_dim=None),
            "global_head_dim",
            "must be a positive integer, got None",
        ),
        (
            dict(layer_types=[FULL] * 5 + [SLIDING]),
            "layer_types",
            "last layer must be 'full_attention'",
        ),
        (
            dict(layer_types=[SLIDING] * 4),
            "layer_types",
            "4 entries but num_hidden_layers is 6",
        ),
        (
            dict(enable_moe_block=True),
            "num_experts",
            "must be a positive integer",
        ),
        (
            dict(num_global_key_value_heads=0),
            "num_global_key_value_heads",
            "positive divisor",
        ),
        (
            dict(attention_k_eq_v=True, num_global_key_value_heads=3),
            "num_global_key_value_heads",
            "cannot be split evenly",
        ),
        (dict(head_dim=15), "head_dim", "even"),
        (
            dict(
                hidden_size_per_layer_input=8, vocab_size_per_layer_input=100
            ),
            "vocab_size_per_layer_input",
            "smaller than vocab_size",
        ),
        (
            dict(use_double_wide_mlp=True),
            "use_double_wide_mlp",
            "only widens KV-shared layers",
        ),
        (
            dict(global_rope_type="yarn"),
            "global_rope_type",
            "unknown RoPE type",
        ),
        (
            dict(num_kv_shared_layers=6),
            "num_kv_shared_layers",
            "must be in [0, num_hidden_layers)",
        ),
    ],
)
def test_invalid_configs_name_the_field(changes, field, words):
    with pytest.raises(ValueError) as error:
        Gemma4Config.from_preset("dense-tiny", **changes)
    message = str(error.value)
    assert f"Gemma4Config.{field}" in message
    assert words in message


def test_unknown_preset_lists_the_known_ones():
    with pytest.raises(ValueError, match="Known presets: .*26b-a4b"):
        Gemma4Config.from_preset("gemma-5")


@pytest.fixture
def saved(tmp_path):
    model = random_model("31b-tiny", seed=21)
    save_pretrained(model, tmp_path)
    return model, tmp_path


def _rewrite(directory, mutate):
    tensors = load_file(directory / "model.safetensors")
    mutate(tensors)
    save_file(tensors, directory / "model.safetensors")


def test_checkpoint_errors_name_every_tensor_at_once(saved):
    """A missing tensor, an unexpected one and a wrong shape: one error that
    lists each of them by name."""
    _, path = saved

    def mutate(t):
        t.pop("model.layers.2.mlp.up_proj.weight")
        t["model.layers.0.self_attn.rel_bias"] = torch.zeros(3)
        t["model.norm.weight"] = torch.ones(65)

    _rewrite(path, mutate)
    with pytest.raises(CheckpointError) as error:
        Gemma4ForCausalLM.from_pretrained(path)
    lines = [line.strip() for line in str(error.value).splitlines()]
    assert "missing tensor: model.layers.2.mlp.up_proj.weight" in lines
    assert "unexpected tensor: model.layers.0.self_attn.rel_bias" in lines
    assert (
        "wrong shape: model.norm.weight: checkpoint [65], config expects [64]"
        in lines
    )


def test_pickle_checkpoints_are_refused(saved, tmp_path):
    model, _ = saved
    folder = tmp_path / "pickled"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(to_hf_dict(model.config)))
    (folder / "pytorch_model.bin").write_bytes(b"not really a pickle")
    with pytest.raises(CheckpointError, match="never unpickles"):
        Gemma4ForCausalLM.from_pretrained(folder)


def test_config_that_disagrees_with_the_weights(saved):
    model, path = saved
    config = json.loads((path / "config.json").read_text())
    config["intermediate_size"] = 128
    (path / "config.json").write_text(json.dumps(config))
    with pytest.raises(
        CheckpointError,
        match="wrong shape: model.layers.0.mlp.gate_proj.weight",
    ):
        Gemma4ForCausalLM.from_pretrained(path)


def test_token_ids_out_of_range():
    model = random_model("dense-tiny")
    with pytest.raises(
        ValueError,
        match="token id 512 is out of range: the vocabulary has ids 0..511",
    ):
        model(torch.tensor([[1, 2, 512]]))
    with pytest.raises(ValueError, match="token id -1 is out of range"):
        model(torch.tensor([[1, -1]]))
    with pytest.raises(ValueError, match="integer token ids"):
        model(torch.tensor([[1.0, 2.0]]))


def test_decode_step_needs_a_cache_made_with_max_length():
    """A growing cache's global buffers are shorter than the step's static
    shapes assume: refused by name, not with a shape error."""
    model = random_model("dense-tiny")
    ids = torch.tensor([[2, 3, 4]])
    grown, fixed = model.new_cache(1), model.new_cache(1, max_length=8)
    for cache in (grown, fixed):
        model(ids, cache)
    step = torch.tensor([[5]]), torch.tensor([3])
    with pytest.raises(ValueError, match="a cache made with max_length"):
        model.decode_step(step[0], grown, step[1])
    assert model.decode_step(step[0], fixed, step[1]).shape == (1, 1, 512)


def test_sequence_past_the_context_length():
    model = random_model("dense-tiny", max_position_embeddings=32)
    with pytest.raises(ValueError, match="past the context length of 32"):
        model(torch.ones(1, 33, dtype=torch.long))
    cache = model.new_cache(1)
    model(torch.ones(1, 30, dtype=torch.long), cache)
    with pytest.raises(
        ValueError,
        match="would reach 33 tokens, past the context length of 32",
    ):
        model(torch.ones(1, 3, dtype=torch.long), cache)
    with pytest.raises(
        ValueError, match="would reach 33 tokens, past the context length"
    ):
        generate(model, torch.ones(1, 20, dtype=torch.long), 13)


def test_from_hf_rejects_other_models(tmp_path):
    with pytest.raises(ValueError, match="not a Gemma 4 text decoder"):
        Gemma4Config.from_hf({"model_type": "llama", "hidden_size": 8})
    with pytest.raises(FileNotFoundError):
        Gemma4Config.from_hf(tmp_path)
