"""Answers of chapter 11, "The full model"."""

from __future__ import annotations

import copy
import re
from typing import Any, Callable

import torch

from ...config import Gemma4Config
from ...model import Gemma4ForCausalLM
from ..debugger import compare_decoding, compare_layers, planted_bug
from ..exercises import Exact

# the sub-block names of the report and of its table
STAGE_NAMES = {"PLE": "per-layer input"}
MYSTERY_EXPLANATION = "b"  # the option of Exercise 11.1 that is the bug


def _twin(name: str, seed: int) -> Gemma4ForCausalLM:
    torch.manual_seed(seed)
    return Gemma4ForCausalLM(Gemma4Config.from_preset(name)).eval()


def _ids(config: Gemma4Config, length: int = 20) -> torch.Tensor:
    gen = torch.Generator().manual_seed(1)
    return torch.randint(3, config.vocab_size, (1, length), generator=gen)


def _mystery_location() -> tuple[int, str]:
    """Where the planted "mystery" bug first shows on an E2B twin."""
    model = _twin("e2b-tiny", 11)
    clean = copy.deepcopy(model)
    ids = _ids(model.config)
    with planted_bug(model, "mystery"):
        report = compare_layers(model, clean, ids)
    return report.first_divergence()


def validate_mystery(answer: Any) -> bool | str:
    """Exercise 11.1: ``(layer, sub-block, option)``; the sub-block as
    ``first_divergence`` names it or as the table heads it (``"PLE"``)."""
    if not isinstance(answer, (tuple, list)) or len(answer) != 3:
        return "answer with three things: (layer, sub-block, option letter)"
    layer, stage, option = answer
    stage = STAGE_NAMES.get(stage, stage)
    where = _mystery_location()
    located = (layer, stage) == tuple(where)
    explained = str(option).strip().lower() == MYSTERY_EXPLANATION
    if located and explained:
        return True
    if located:
        return "the place is right; the explanation (the letter) is not"
    if explained:
        return "the explanation is right; the (layer, sub-block) is not"
    return "neither the place nor the explanation is right yet"


def _which_check() -> dict[str, str]:
    """Exercise 11.2: which check reports each of the two bugs on the E2B
    twin ("layers", "decoding" or "neither")."""
    found = {}
    for bug in ("mystery_a", "mystery_b"):
        model = _twin("e2b-tiny", 11)
        clean = copy.deepcopy(model)
        ids = _ids(model.config, 12)
        with planted_bug(model, bug):
            layers = compare_layers(model, clean, ids).first_divergence()
            decoding = compare_decoding(model, ids, 12).first_divergence()
        names = [
            n
            for n, hit in (("layers", layers), ("decoding", decoding))
            if hit is not None
        ]
        found[bug] = " and ".join(names) or "neither"
    return found


# ----------------------------------------------------- Exercise 11.3: chat
THOUGHT = re.compile(r"<\|channel>thought.*?<channel\|>", re.DOTALL)


def chat_prompt(turns: list[tuple[str, str]]) -> str:
    """The book's rendering of a conversation in the format of Exercise
    11.3 (not the checkpoint's template, which is the authority)."""
    parts = ["<bos>"]
    for role, text in turns:
        if role == "model":
            text = THOUGHT.sub("", text)
        parts.append(f"<|turn>{role}\n{text}<turn|>\n")
    parts.append("<|turn>model\n")
    return "".join(parts)


CONVERSATIONS = [
    [("user", "Name three moons of Jupiter.")],
    [
        ("system", "Answer in one line."),
        ("user", "What is 2 + 2?"),
        ("model", "4"),
        ("user", "And 3 + 3?"),
    ],
    [
        ("user", "Is 91 prime?"),
        (
            "model",
            "<|channel>thought\n91 = 7 * 13.<channel|>No: 91 = 7 x 13.",
        ),
        ("user", "And 97?"),
    ],
]


def validate_chat(fn: Callable[[list[tuple[str, str]]], str]) -> bool | str:
    """Exercise 11.3: ``fn(turns)`` must render every test conversation as
    :func:`chat_prompt` does; says which conversation and where not."""
    for number, turns in enumerate(CONVERSATIONS, 1):
        want = chat_prompt(turns)
        got = fn([tuple(t) for t in turns])
        if not isinstance(got, str):
            return f"conversation {number}: returned {type(got).__name__}"
        if got == want:
            continue
        at = next(
            (i for i, (a, b) in enumerate(zip(got, want)) if a != b),
            min(len(got), len(want)),
        )
        return (
            f"conversation {number} ({len(turns)} turns) differs at "
            f"character {at}: yours {got[at : at + 24]!r}, expected "
            f"{want[at : at + 24]!r}"
        )
    return True


ANSWERS = {
    "11.1": (_mystery_location, Exact()),
    "11.2": (_which_check, Exact()),
}
