"""The debugger's reference on folders laid out as the released
checkpoints are: transformers writes tiny multimodal models
(Gemma4ForConditionalGeneration with vision and audio towers, the 12B's
Gemma4UnifiedForConditionalGeneration and Gemma4UnifiedForCausalLM) on
random weights, and the reference must give the saved weights' logits."""

import pytest
import torch
from hf_reference import NOT_UNIFIED
from safetensors.torch import load_file, save_file

from gemma4_lite import Gemma4Config, Gemma4ForCausalLM
from gemma4_lite.book.debugger import (
    TINY_AUDIO,
    TINY_VISION,
    ReferenceLoadError,
    _randomise,
    compare_layers,
    load_reference,
    multimodal_from_preset,
    text_decoder,
)
from gemma4_lite.book.export import to_hf_dict

transformers = pytest.importorskip("transformers")

VISION, AUDIO = TINY_VISION, TINY_AUDIO


def _text_values(preset: str, unified: bool = False) -> dict:
    values = to_hf_dict(Gemma4Config.from_preset(preset))
    drop = ("model_type", "architectures") + (NOT_UNIFIED if unified else ())
    return {k: v for k, v in values.items() if k not in drop}


def _build(layout: str, preset: str) -> torch.nn.Module:
    t = transformers
    if layout == "Gemma4ForConditionalGeneration":
        audio = AUDIO if preset.startswith("e") else None  # as released
        config = t.Gemma4Config(
            text_config=_text_values(preset),
            vision_config=VISION,
            audio_config=audio,
        )
        cls = t.Gemma4ForConditionalGeneration
    elif layout == "Gemma4UnifiedForConditionalGeneration":
        config = t.Gemma4UnifiedConfig(
            text_config=_text_values(preset, unified=True),
            vision_config=dict(
                mm_embed_dim=64, output_proj_dims=64, mm_posemb_size=8
            ),
            audio_config=dict(audio_embed_dim=16),
        )
        cls = t.Gemma4UnifiedForConditionalGeneration
    else:
        config = t.Gemma4UnifiedTextConfig(
            **_text_values(preset, unified=True)
        )
        cls = t.Gemma4UnifiedForCausalLM
    torch.manual_seed(0)
    model = cls._from_config(
        config, attn_implementation="eager", dtype=torch.float32
    )
    # gains, scalars and router scales away from 1, or a (1 + w) bug hides
    _randomise(text_decoder(model), seed=5)
    if hasattr(model, "set_experts_implementation"):
        model.set_experts_implementation("eager")
    return model.eval()


LAYOUTS = [
    ("Gemma4ForConditionalGeneration", "e2b-tiny"),
    ("Gemma4ForConditionalGeneration", "26b-a4b-tiny"),
    ("Gemma4UnifiedForConditionalGeneration", "12b-tiny"),
    ("Gemma4UnifiedForCausalLM", "12b-tiny"),
]


@pytest.mark.parametrize("layout, preset", LAYOUTS)
def test_reference_is_the_saved_model(tmp_path, layout, preset):
    saved = _build(layout, preset)
    saved.save_pretrained(tmp_path)
    ids = torch.randint(
        3, 512, (1, 20), generator=torch.Generator().manual_seed(2)
    )
    with torch.no_grad():
        want = saved(input_ids=ids).logits
    assert want.std() > 0.1  # not a degenerate model

    reference = load_reference(tmp_path)
    assert type(reference).__name__ == layout
    ours = Gemma4ForCausalLM.from_pretrained(tmp_path)
    with torch.no_grad():
        got = reference(input_ids=ids).logits
        assert torch.equal(ours(ids), want)
    report = compare_layers(ours, reference, ids)
    if "26b" in preset:
        # transformers' reloaded Gemma4ForConditionalGeneration with experts
        # differs from the model that saved it by float rounding (about
        # 1e-6) in the MoE sub-blocks; ours equals the saved model bitwise
        assert (got - want).abs().max() < 1e-5
        assert report.first_divergence(tolerance=1e-4) is None
        return
    assert torch.equal(got, want)
    assert report.first_divergence() is None
    assert report.final_norm == 0 and report.logits == 0


def test_reference_refuses_a_folder_with_missing_weights(tmp_path):
    _build("Gemma4ForConditionalGeneration", "e2b-tiny").save_pretrained(
        tmp_path
    )
    file = tmp_path / "model.safetensors"
    tensors = load_file(file)
    gone = "model.language_model.layers.3.mlp.down_proj.weight"
    del tensors[gone]
    save_file(tensors, file, metadata={"format": "pt"})
    with pytest.raises(ReferenceLoadError, match="layers.3.mlp.down_proj"):
        load_reference(tmp_path)


def test_old_text_only_class_would_have_been_random(tmp_path):
    """What the reference used to be: transformers' text-only class on a
    multimodal folder finds none of its weights (under
    model.language_model.) and initialises them at random."""
    saved = _build("Gemma4ForConditionalGeneration", "e2b-tiny")
    saved.save_pretrained(tmp_path)
    _, info = transformers.Gemma4ForCausalLM.from_pretrained(
        tmp_path, output_loading_info=True
    )
    assert "model.norm.weight" in info["missing_keys"]


def test_multimodal_from_preset_is_the_released_layout(tmp_path):
    import json

    multimodal_from_preset("e4b-tiny", seed=1).save_pretrained(tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["architectures"] == ["Gemma4ForConditionalGeneration"]
    keys = load_file(tmp_path / "model.safetensors")
    assert "model.language_model.norm.weight" in keys
    assert any(k.startswith("model.vision_tower.") for k in keys)
    assert any(k.startswith("model.audio_tower.") for k in keys)
    norm = keys["model.language_model.norm.weight"]
    assert not torch.equal(norm, torch.ones_like(norm))  # randomised


def test_compare_in_the_same_dtype(tmp_path):
    """bf16 against a bf16 reference is bitwise equal and pins a 1% RoPE
    bug to its layer; against an fp32 reference both runs differ from the
    embedding on, and the bug changes the differences by a few percent."""
    from gemma4_lite.book.debugger import planted_bug, reference_from_preset

    reference_from_preset("e2b-tiny", seed=0).save_pretrained(tmp_path)
    ours = Gemma4ForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16)
    same = load_reference(tmp_path, dtype=torch.bfloat16)
    wide = load_reference(tmp_path)
    ids = torch.randint(
        3, 512, (1, 20), generator=torch.Generator().manual_seed(1)
    )
    assert compare_layers(ours, same, ids).first_divergence() is None
    noise = compare_layers(ours, wide, ids)
    assert noise.first_divergence() == (-1, "embedding")
    with planted_bug(ours, "rope_one_percent"):
        assert compare_layers(ours, same, ids).first_divergence() == (
            4,
            "attention",
        )
        hidden = compare_layers(ours, wide, ids)
    assert hidden.first_divergence() == (-1, "embedding")
    changes = [
        b / a - 1 for a, b in zip(noise.per_layer(), hidden.per_layer())
    ]
    assert max(abs(c) for c in changes) < 0.1
