"""Writing Hugging Face-format checkpoints: the inverse of the core's
loading. Running a model never writes one, so it lives with the book, which
saves what its chapters train ("Training", "Scaling decisions", "The full
model", "Multi-token prediction") and builds transformers twins of its
models to compare against. Transformers reads what :func:`save_pretrained`
writes back to the same model (``tests/core/test_parity.py``).
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path
from typing import Any

from safetensors.torch import save_file

from ..config import FULL, SLIDING, Gemma4Config
from ..hf_config import ROPE_FIELDS
from ..loading import checkpoint_layout
from ..model import Gemma4ForCausalLM


def to_hf_dict(config: Gemma4Config) -> dict[str, Any]:
    """The text-only ``config.json`` that transformers' ``Gemma4ForCausalLM``
    reads back to the same model (the 12B decoder included:
    ``Gemma4UnifiedForCausalLM`` builds the same modules)."""
    c = config
    values = {k: v for k, v in asdict(c).items() if k not in ROPE_FIELDS}
    full = dict(rope_type=c.global_rope_type, rope_theta=c.global_rope_theta)
    full["partial_rotary_factor"] = c.global_partial_rotary_factor
    if c.global_rope_factor != 1.0:
        full["factor"] = c.global_rope_factor
    sliding = dict(rope_type="default", rope_theta=c.sliding_rope_theta)
    values["rope_parameters"] = {SLIDING: sliding, FULL: full}
    global_kv = c.num_global_key_value_heads
    if global_kv is not None and not c.attention_k_eq_v:
        # transformers drops the num_global_key_value_heads keyword without
        # K=V; a per_layer_config gives the global layers their KV heads
        # anyway (and then global_head_dim is ignored too)
        del values["global_head_dim"], values["num_global_key_value_heads"]
        own = dict(head_dim=c.global_head_dim, num_key_value_heads=global_kv)
        values["per_layer_config"] = {
            str(i): dict(own) for i in c.global_layers
        }
    values.update(model_type="gemma4_text", attention_bias=False)
    values["architectures"] = ["Gemma4ForCausalLM"]
    return values


def save_pretrained(model: Gemma4ForCausalLM, directory: str | Path) -> None:
    """Write ``config.json`` (:func:`to_hf_dict`, with the model's dtype),
    ``model.safetensors`` with the checkpoint's own keys (stacked matrices
    split back into their parts) and, if the model has one,
    ``generation_config.json``."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    ours = model.state_dict()
    state = {}
    for name, parts in checkpoint_layout(model).items():
        pieces = ours[name].split([shape[0] for _, shape in parts])
        for (key, _), piece in zip(parts, pieces):
            state[key] = piece.detach().contiguous().cpu()
    save_file(
        state, str(directory / "model.safetensors"), metadata={"format": "pt"}
    )
    config = to_hf_dict(model.config)
    config["dtype"] = str(model.dtype).replace("torch.", "")
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    if model.generation_config:
        text = json.dumps(model.generation_config, indent=2) + "\n"
        (directory / "generation_config.json").write_text(text)
