"""Answers of chapter 06, "When MoE meets hybrid attention"."""

from __future__ import annotations

import torch

from ...config import Gemma4Config
from ...model import Gemma4ForCausalLM
from ..accounting import count_parameters
from ..exercises import Decimals, Exact, call_reader


def _expert_parameters_in_global_layers() -> int:
    c = Gemma4Config.from_preset("26b-a4b")
    per_layer = 3 * c.num_experts * c.hidden_size * c.moe_intermediate_size
    return len(c.global_layers) * per_layer


def _unbalanced_overlap() -> float:
    k = 6
    usage = torch.tensor([0.5 / 8] * 8 + [0.5 / 56] * 56, dtype=torch.float64)
    return float(k * k * (usage**2).sum())


def _expert_share_with_top4() -> float:
    c = Gemma4Config.from_preset("26b-a4b").replace(top_k_experts=4)
    counts = count_parameters(c)
    experts = counts["experts"] * c.top_k_experts // c.num_experts
    return experts / counts["active_per_token"]


ANSWERS = {
    "06.1": (_expert_parameters_in_global_layers, Exact()),
    "06.2": (_unbalanced_overlap, Decimals(3)),
    "06.3": (_expert_share_with_top4, Decimals(3)),
}


def validate_expert_branch(fn) -> bool | str:
    """Exercise 6.4: ``fn(layer, r)`` must return the experts' branch of a
    Gemma 4 MoE layer for residuals ``r`` [N, H], as ``layer.moe(r)`` does,
    on random-weight layers of the tiny 26B-A4B twin. Returns True, or where
    the reader's version differs."""
    torch.manual_seed(606)
    model = Gemma4ForCausalLM(Gemma4Config.from_preset("26b-a4b-tiny"))
    g = torch.Generator().manual_seed(606)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name or name.endswith("scale"):
                p.uniform_(0.5, 1.5, generator=g)
            elif "router.proj" in name:
                p.normal_(0.0, 1.0, generator=g)
        for index in (0, 5):
            layer = model.model.layers[index]
            r = 4.0 * torch.randn(
                9, layer.router.proj.in_features, generator=g
            )
            want = layer.moe(r)
            where = f"layer {index} of the tiny 26B-A4B twin, r of shape"
            where += f" {tuple(r.shape)}"
            got, problem = call_reader(where, fn, layer, r, like=want)
            if problem:
                return problem
            if not torch.allclose(got, want, rtol=1e-4, atol=1e-4):
                diff = (got - want).abs()
                token = int(diff.amax(dim=1).argmax())
                return (
                    f"{where}: token {token} differs by up to "
                    f"{diff[token].max().item():.3g} (largest |expected| "
                    f"{want[token].abs().max().item():.3g})"
                )
    return True
