"""Answers of chapter 11, "The full model"."""

from __future__ import annotations

import copy

import torch

from ...accounting import count_parameters, kv_cache_bytes
from ...config import Gemma4Config
from ...generation import filter_logits
from ...model import Gemma4ForCausalLM
from ..debugger import compare_layers, planted_bug
from ..exercises import Exact, SignificantDigits


def _mystery_location() -> tuple[int, str]:
    """Where the planted "mystery" bug first shows on an E2B twin."""
    torch.manual_seed(11)
    model = Gemma4ForCausalLM(Gemma4Config.from_preset("e2b-tiny")).eval()
    clean = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, model.config.vocab_size, (1, 20), generator=gen)
    with planted_bug(model, "mystery"):
        report = compare_layers(model, clean, ids)
    return report.first_divergence()


def _serving_gib() -> float:
    """GiB of the 26B-A4B's bf16 weights plus the KV caches of four
    conversations of 131,072 tokens each."""
    config = Gemma4Config.from_preset("26b-a4b")
    weights = 2 * count_parameters(config)["total"]
    cache = kv_cache_bytes(config, 131_072, torch.bfloat16, batch_size=4)
    return (weights + cache) / 2**30


ANSWERS = {
    "11.1": (_mystery_location, Exact()),
    "11.3": (_serving_gib, SignificantDigits(3)),
}


def validate_top_p(fn) -> bool:
    """Exercise 11.2: ``fn(logits, top_p)`` must keep exactly the tokens
    that ``generate`` keeps (the nucleus) and set the rest to -inf, for
    random logits of several shapes and thresholds."""
    g = torch.Generator().manual_seed(1102)
    for shape in ((1, 10), (3, 50), (2, 7)):
        for top_p in (0.1, 0.5, 0.9, 1.0):
            logits = 3 * torch.randn(shape, generator=g)
            want = filter_logits(logits, None, top_p)
            try:
                got = torch.as_tensor(fn(logits.clone(), top_p))
            except Exception:
                return False
            if got.shape != want.shape:
                return False
            if not torch.equal(torch.isinf(got), torch.isinf(want)):
                return False
            kept = ~torch.isinf(want)
            if not torch.allclose(got[kept], want[kept]):
                return False
    return True
