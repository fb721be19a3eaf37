"""Answers of chapter 10, "Scaling decisions and the edge models"."""

from __future__ import annotations

import torch

from ...config import Gemma4Config
from ...model import Gemma4ForCausalLM
from ...ple import per_layer_inputs
from ..exercises import Decimals, Exact
from ..scaling import GB, kv_bytes, kv_without_sharing, ple_bytes_per_token


def _e4b_ple_bytes_per_token() -> int:
    return ple_bytes_per_token(Gemma4Config.from_preset("e4b"), bits=16)


def _e4b_kv_saved_gb() -> float:
    e4b = Gemma4Config.from_preset("e4b")
    full = kv_bytes(kv_without_sharing(e4b), 131_072, bits=16)
    return (full - kv_bytes(e4b, 131_072, bits=16)) / GB


ANSWERS = {
    "10.1": (_e4b_ple_bytes_per_token, Exact()),
    "10.3": (_e4b_kv_saved_gb, Decimals(2)),
}


def validate_per_layer_inputs(fn) -> bool:
    """Exercise 10.2: ``fn(text_model, ids, embeds)`` must return what
    :func:`gemma4_lite.ple.per_layer_inputs` returns, [B, S, L, P], on the
    E2B tiny twin with random weights."""
    torch.manual_seed(1010)
    model = Gemma4ForCausalLM(Gemma4Config.from_preset("e2b-tiny"))
    g = torch.Generator().manual_seed(1010)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.uniform_(0.5, 1.5, generator=g)
        text = model.model
        ids = torch.randint(0, 512, (2, 7), generator=g)
        embeds = text.embed_tokens(ids)
        want = per_layer_inputs(text, ids, embeds)
        try:
            got = fn(text, ids, embeds)
        except Exception:
            return False
    return (
        isinstance(got, torch.Tensor)
        and got.shape == want.shape
        and torch.allclose(got, want, atol=1e-5, rtol=1e-5)
    )
