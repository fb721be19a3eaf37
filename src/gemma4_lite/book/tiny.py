"""Tiny Gemma 4 models, every weight random, for the chapters' experiments."""

from __future__ import annotations

import torch

from ..config import Gemma4Config
from ..model import Gemma4ForCausalLM


@torch.no_grad()
def tiny_model(
    preset: str = "dense-tiny", seed: int = 0, std: float = 0.08, **overrides
) -> Gemma4ForCausalLM:
    """A tiny Gemma 4 with *every* weight random, norm gains and layer scalars
    included (at their init value 1 the attention of a fresh model is nearly
    uniform, and errors would hide)."""
    torch.manual_seed(seed)
    model = Gemma4ForCausalLM(Gemma4Config.from_preset(preset, **overrides))
    gen = torch.Generator().manual_seed(seed)
    for name, tensor in list(model.named_parameters()) + list(
        model.named_buffers()
    ):
        if (
            "inv_freq" in name
            or "cos" in name
            or "sin" in name
            or not tensor.is_floating_point()
        ):
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
    return model.eval()
