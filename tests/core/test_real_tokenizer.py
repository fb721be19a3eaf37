"""Optional: the tokenizer and chat template of a real Gemma 4 checkpoint
against transformers' AutoTokenizer, when the reader has one (set
GEMMA4_CHECKPOINT, as for test_real_checkpoint.py). Only the tokenizer
files and generation_config.json are read."""

import json
import os
from pathlib import Path

import pytest

from gemma4_lite import Tokenizer

CHECKPOINT = os.environ.get("GEMMA4_CHECKPOINT")
pytestmark = pytest.mark.skipif(
    not CHECKPOINT, reason="set GEMMA4_CHECKPOINT to a local Gemma 4 folder"
)

TEXTS = [
    "Name three moons of Jupiter.",
    "<|turn>user\nhi<turn|>\n<|turn>model\n",
    "Zoë, Ærø, 日本語 🦊 and 3.14159   with   runs\n\n\t",
]
CHAT = [
    {"role": "system", "content": "Answer in one sentence."},
    {"role": "user", "content": "Name three moons of Jupiter."},
    {"role": "assistant", "content": "Io, Europa and Ganymede."},
    {"role": "user", "content": "Which of them is the largest?"},
]


@pytest.fixture(scope="module")
def both():
    from transformers import AutoTokenizer

    path = Path(CHECKPOINT)
    return Tokenizer.from_pretrained(path), AutoTokenizer.from_pretrained(path)


def test_ids_and_text_equal_transformers(both):
    ours, theirs = both
    assert len(ours) == len(theirs)
    assert (ours.bos_id, ours.eos_id, ours.pad_id) == (
        theirs.bos_token_id, theirs.eos_token_id, theirs.pad_token_id
    )  # fmt: skip
    for text in TEXTS:
        ids = ours.encode(text)
        assert ids == theirs.encode(text)
        for skip in (True, False):
            assert ours.decode(ids, skip) == theirs.decode(ids, skip)


@pytest.mark.parametrize("prompt", [False, True])
def test_chat_template_equals_transformers(both, prompt):
    ours, theirs = both
    for chat in (CHAT[1:2], CHAT):
        kw = dict(add_generation_prompt=prompt)
        text = ours.apply_chat_template(chat, tokenize=False, **kw)
        assert text == theirs.apply_chat_template(chat, tokenize=False, **kw)
        ids = ours.apply_chat_template(chat, **kw)
        assert ids == theirs.apply_chat_template(chat, return_dict=False, **kw)


def test_end_of_turn_is_an_eos_id(both):
    ours, _ = both
    config = Path(CHECKPOINT) / "generation_config.json"
    eos = json.loads(config.read_text())["eos_token_id"]
    eos = [eos] if isinstance(eos, int) else eos
    assert ours.token_to_id("<turn|>") in eos
