"""Answers of chapter 09, "Training"."""

from __future__ import annotations

import math
from typing import Callable

import torch

from ...config import Gemma4Config
from ...model import Gemma4ForCausalLM
from .. import data
from ..accounting import count_parameters
from ..exercises import Exact, SignificantDigits
from ..train import evaluate, shape_config

GEMMA_VOCAB = 262_144


def _dense_with_gemma_vocabulary() -> int:
    config = shape_config("dense").replace(
        vocab_size=GEMMA_VOCAB, vocab_size_per_layer_input=GEMMA_VOCAB
    )
    return count_parameters(config)["total"]


def _unseen_bigram_percent(data_dir: str = "data") -> float:
    """Share of the held-out stream's consecutive pairs (in percent) that
    never occur as a pair in the training stream."""
    path, works, held_out = data.prepare(data_dir)
    tok = data.SentencePieceTokenizer.from_file(path)
    corpus = data.build_corpus(tok, works, held_out)
    vocab = len(corpus.token_bytes)
    seen = torch.unique(corpus.train[:-1] * vocab + corpus.train[1:])
    pairs = corpus.valid[:-1] * vocab + corpus.valid[1:]
    unseen = ~torch.isin(pairs, seen)
    return 100 * float(unseen.double().mean())


ANSWERS = {
    "09.1": (_dense_with_gemma_vocabulary, Exact()),
    "09.3": (_unseen_bigram_percent, SignificantDigits(3)),
}


def _bits_per_byte_cases() -> list[tuple]:
    """Two small cases with random weights: one chunk, then three chunks
    whose tokens stand for different numbers of bytes."""
    config = Gemma4Config.from_preset("dense-tiny", vocab_size=64)
    torch.manual_seed(0)
    model = Gemma4ForCausalLM(config).eval()
    gen = torch.Generator().manual_seed(1)
    token_bytes = torch.randint(1, 6, (64,), generator=gen)
    one = torch.randint(0, 64, (1, 12), generator=gen)
    three = torch.randint(0, 64, (3, 16), generator=gen)
    return [
        ("one chunk of 12 tokens", model, one, token_bytes),
        ("three chunks of 16 tokens", model, three, token_bytes),
    ]


def validate_bits_per_byte(fn: Callable) -> bool | str:
    """Exercise 09.2: ``fn(model, chunks, token_bytes)`` must give the bits
    per byte of :func:`gemma4_lite.book.train.evaluate` (fp32), to 1e-4,
    on a tiny random model. Says where it differs, and by how much."""
    for name, model, chunks, token_bytes in _bits_per_byte_cases():
        want = evaluate(model, chunks, token_bytes, 16)[1]
        try:
            with torch.no_grad():
                got = float(fn(model, chunks, token_bytes))
        except NotImplementedError:
            raise
        except Exception as error:  # the reader's code, any failure
            return f"on {name} it raised {type(error).__name__}: {error}"
        if abs(got - want) <= 1e-4:
            continue
        every = int(token_bytes[chunks].sum())
        targets = int(token_bytes[chunks[:, 1:]].sum())
        hint = ""
        if abs(got - want * math.log(2)) <= 1e-4:
            hint = " (that is nats per byte: a nat is 1/ln 2 bits)"
        elif abs(got - want * targets / every) <= 1e-4:
            hint = (
                " (you divided by the bytes of every token; the first of "
                "each chunk is never predicted)"
            )
        return (
            f"on {name} of a tiny random model you give {got:.5f} bits "
            f"per byte, the package {want:.5f} (off by {got - want:+.5f})"
            f"{hint}"
        )
    return True
