"""Parity with transformers (pinned in requirements-dev.txt) on tiny random
configs of every family."""

import json

import pytest
import torch
from conftest import FAMILIES
from hf_reference import PINNED_TRANSFORMERS, build_hf_model

from gemma4_lite import (
    Gemma4Config,
    Gemma4ForCausalLM,
    generate,
)
from gemma4_lite.book.export import save_pretrained
from gemma4_lite.book.train import causal_lm_loss

transformers = pytest.importorskip("transformers")


def test_transformers_version_is_the_pinned_one():
    assert transformers.__version__ == PINNED_TRANSFORMERS


def _prompt(config: Gemma4Config, length: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(3, config.vocab_size, (2, length), generator=gen)


def _reference_and_ours(name: str, seed: int, folder):
    """A random transformers model of the family, and ours loaded from what
    transformers saved."""
    config = Gemma4Config.from_preset(name)
    reference = build_hf_model(config, seed=seed)
    reference.save_pretrained(folder)
    return config, reference, Gemma4ForCausalLM.from_pretrained(folder)


@pytest.mark.parametrize("name", FAMILIES)
def test_logits_match_transformers(name, tmp_path):
    config, reference, ours = _reference_and_ours(name, 1, tmp_path)
    ids = _prompt(
        config, 5 * config.sliding_window + 3, seed=2
    )  # longer than the window
    with torch.no_grad():
        expected = reference(ids, use_cache=False).logits
        got = ours(ids)
        # transformers with its cache: KV sharing goes through the cache path
        cached = reference(ids, use_cache=True).logits
    diff = (expected - got).abs().max().item()
    print(f"{name}: max |logit difference| vs transformers = {diff:.3e}")
    # bitwise: the same operations in the same order (README)
    assert torch.equal(got, expected)
    assert torch.equal(got, cached)
    # the logits are not trivially small: a broken model could not pass by
    # accident
    assert expected.std().item() > 0.1


@pytest.mark.parametrize("name", ["e2b-tiny", "26b-a4b-tiny"])
def test_training_loss_matches_transformers(name, tmp_path):
    config, reference, ours = _reference_and_ours(name, 5, tmp_path)
    ids = _prompt(config, 2 * config.sliding_window + 1, seed=6)
    labels = ids.clone()
    labels[:, :3] = -100
    expected = reference(ids, labels=labels).loss
    got = causal_lm_loss(ours(ids), labels)
    assert torch.equal(got, expected)
    # and the pad-row mask of a left-padded batch matches transformers'
    mask = torch.ones_like(ids)
    mask[1, :7] = 0
    with torch.no_grad():
        theirs = reference(ids, attention_mask=mask).logits
        mine = ours(ids, attention_mask=mask)
    # Not bitwise with padding (measured: up to 5e-6 on e2b-tiny and 2e-5
    # on 26b-a4b-tiny, where the unpadded row differs too): transformers'
    # padded-batch path masks (and dispatches experts) in another order.
    torch.testing.assert_close(mine[:, 7:], theirs[:, 7:], rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", FAMILIES)
def test_greedy_generation_matches_transformers(name, tmp_path):
    config, reference, ours = _reference_and_ours(name, 3, tmp_path)
    ids = _prompt(config, 2 * config.sliding_window + 5, seed=4)
    new_tokens = 40
    from transformers import GenerationConfig

    settings = GenerationConfig(
        do_sample=False,
        max_new_tokens=new_tokens,
        min_new_tokens=0,
        eos_token_id=None,
        pad_token_id=0,
        bos_token_id=2,
    )
    with torch.no_grad():
        expected = reference.generate(
            ids,
            generation_config=settings,
            attention_mask=torch.ones_like(ids),
        )
    got = generate(ours, ids, new_tokens, ignore_eos=True)
    chunked = generate(
        ours,
        ids,
        new_tokens,
        prefill_chunk_size=config.sliding_window + 1,
        ignore_eos=True,
    )
    agree = int(
        (expected[:, ids.shape[1] :] == got[:, ids.shape[1] :])
        .all(0)
        .long()
        .cumprod(0)
        .sum()
    )
    print(
        f"{name}: {agree}/{new_tokens} greedy tokens identical to "
        "transformers' cached generate"
    )
    assert expected.shape == got.shape
    assert torch.equal(expected, got)
    assert torch.equal(got, chunked)


@pytest.mark.parametrize("name", FAMILIES)
def test_bfloat16_matches_transformers(name, tmp_path):
    """Real checkpoints are bf16: norms in fp32, the embedding scale rounded
    to bf16, softmaxes in fp32 and everything else in bf16, in the
    reference's order, gives the reference's bits."""
    from transformers import Gemma4ForCausalLM as HFGemma4ForCausalLM

    config = Gemma4Config.from_preset(name)
    build_hf_model(config, seed=10).save_pretrained(tmp_path)
    reference = HFGemma4ForCausalLM.from_pretrained(
        tmp_path, dtype=torch.bfloat16, attn_implementation="eager"
    )
    if config.enable_moe_block:
        reference.set_experts_implementation("eager")
    ours = Gemma4ForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    assert ours.dtype == torch.bfloat16
    ids = _prompt(config, 3 * config.sliding_window + 1, seed=11)
    with torch.no_grad():
        expected, got = reference(ids).logits, ours(ids)
    diff = (expected.float() - got.float()).abs().max().item()
    print(f"{name}: max |bf16 logit difference| vs transformers = {diff:.3e}")
    assert got.dtype == torch.bfloat16 and diff == 0.0


@pytest.mark.parametrize("name", ["e2b-tiny", "26b-a4b-tiny", "31b-tiny"])
def test_transformers_reads_what_we_save(name, tmp_path):
    from conftest import random_model
    from transformers import Gemma4ForCausalLM as HFGemma4ForCausalLM

    ours = random_model(name, seed=5)
    save_pretrained(ours, tmp_path)
    theirs = HFGemma4ForCausalLM.from_pretrained(
        tmp_path, attn_implementation="eager", dtype=torch.float32
    )
    if ours.config.enable_moe_block:
        theirs.set_experts_implementation("eager")
    ids = _prompt(ours.config, 30, seed=6)
    with torch.no_grad():
        assert torch.equal(theirs(ids).logits, ours(ids))
    saved = json.loads((tmp_path / "config.json").read_text())
    assert saved["model_type"] == "gemma4_text"
    assert Gemma4Config.from_hf(tmp_path) == ours.config


def test_multimodal_checkpoint_layout_loads(tmp_path):
    """Official checkpoints: decoder under model.language_model., vision and
    audio towers beside it, and unused k/v weights stored for KV-shared
    layers. All of that must load into the same model."""
    from conftest import random_model
    from safetensors.torch import load_file, save_file

    ours = random_model("e2b-tiny", seed=7)
    save_pretrained(ours, tmp_path / "text")
    tensors = load_file(tmp_path / "text" / "model.safetensors")
    renamed = {
        "model.language_model." + k[len("model.") :]: v
        for k, v in tensors.items()
    }
    renamed["model.vision_tower.encoder.layers.0.mlp.up_proj.weight"] = (
        torch.zeros(4, 4)
    )
    renamed["model.audio_tower.conformer.0.weight"] = torch.zeros(3)
    # the 12B Unified's vision embedder sits beside the decoder too
    renamed["model.vision_embedder.patch_ln1.weight"] = torch.zeros(3)
    renamed["model.embed_vision.embedding_projection.weight"] = torch.zeros(
        2, 2
    )
    first_shared = ours.config.first_kv_shared_layer
    renamed[
        f"model.language_model.layers.{first_shared}.self_attn.k_proj.weight"
    ] = torch.zeros(16, 64)
    renamed[
        f"model.language_model.layers.{first_shared}.self_attn.v_proj.weight"
    ] = torch.zeros(16, 64)
    renamed[
        f"model.language_model.layers.{first_shared}.self_attn.k_norm.weight"
    ] = torch.zeros(16)
    out = tmp_path / "multimodal"
    out.mkdir()
    save_file(renamed, out / "model.safetensors")
    text_config = json.loads((tmp_path / "text" / "config.json").read_text())
    (out / "config.json").write_text(
        json.dumps(
            {
                "model_type": "gemma4",
                "text_config": text_config,
                "vision_config": {"hidden_size": 4},
            }
        )
    )
    loaded = Gemma4ForCausalLM.from_pretrained(out)
    ids = _prompt(ours.config, 20, seed=8)
    with torch.no_grad():
        assert torch.equal(loaded(ids), ours(ids))


def test_sharded_checkpoint_loads(tmp_path):
    from conftest import random_model
    from safetensors.torch import load_file, save_file

    ours = random_model("31b-tiny", seed=9)
    save_pretrained(ours, tmp_path / "one")
    tensors = load_file(tmp_path / "one" / "model.safetensors")
    names = sorted(tensors)
    shards = {
        "model-00001-of-00002.safetensors": names[::2],
        "model-00002-of-00002.safetensors": names[1::2],
    }
    out = tmp_path / "sharded"
    out.mkdir()
    weight_map = {}
    for file, keys in shards.items():
        save_file({k: tensors[k] for k in keys}, out / file)
        weight_map.update({k: file for k in keys})
    (out / "model.safetensors.index.json").write_text(
        json.dumps({"weight_map": weight_map})
    )
    (out / "config.json").write_text(
        (tmp_path / "one" / "config.json").read_text()
    )
    loaded = Gemma4ForCausalLM.from_pretrained(out, dtype=torch.bfloat16)
    assert loaded.dtype == torch.bfloat16
    assert torch.equal(
        loaded.model.embed_tokens.weight,
        tensors["model.embed_tokens.weight"].bfloat16(),
    )
