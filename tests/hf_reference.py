"""Helpers that build the transformers reference model for parity tests
(test-only code).
"""

from __future__ import annotations

from pathlib import Path

import torch

from gemma4_lite import Gemma4Config
from gemma4_lite.book.export import to_hf_dict

PINNED_TRANSFORMERS = "5.24.0"


def hf_config(config: Gemma4Config):
    from transformers import Gemma4TextConfig

    values = to_hf_dict(config)
    for key in ("model_type", "architectures"):
        values.pop(key)
    return Gemma4TextConfig(**values)


@torch.no_grad()
def randomise(model: torch.nn.Module, seed: int, std: float = 0.08) -> None:
    """Random weights everywhere, including the gains and scalars whose init
    value 1 hides bugs (norm weights, layer_scalar, router scale, per-expert
    scale)."""
    gen = torch.Generator().manual_seed(seed)
    for name, tensor in list(model.named_parameters()) + list(
        model.named_buffers()
    ):
        if "inv_freq" in name or "embed_scale" in name:
            continue
        if (
            name.endswith("layer_scalar")
            or "norm" in name
            or name.endswith(("router.scale", "per_expert_scale"))
        ):
            tensor.copy_(
                torch.empty(tensor.shape).uniform_(0.5, 1.5, generator=gen)
            )
        else:
            tensor.copy_(torch.randn(tensor.shape, generator=gen) * std)


def build_hf_model(config: Gemma4Config, seed: int = 0):
    from transformers import Gemma4ForCausalLM as HFGemma4ForCausalLM

    torch.manual_seed(seed)
    model = HFGemma4ForCausalLM._from_config(
        hf_config(config), attn_implementation="eager", dtype=torch.float32
    )
    if config.enable_moe_block:
        model.set_experts_implementation("eager")
    randomise(model, seed)
    return model.eval()


def save_hf_model(model, directory: Path) -> Path:
    model.save_pretrained(directory, safe_serialization=True)
    return directory


# Keys Gemma4UnifiedTextConfig does not have (no per-layer embeddings, no
# experts); to_hf_dict writes them for Gemma4TextConfig
NOT_UNIFIED = (
    "hidden_size_per_layer_input",
    "vocab_size_per_layer_input",
    "enable_moe_block",
    "num_experts",
    "top_k_experts",
    "moe_intermediate_size",
    "model_type",
    "architectures",
)
