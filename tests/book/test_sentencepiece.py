"""The book's SentencePiece tokenizer (``data.SentencePieceTokenizer``) and
its conversion to ``tokenizer.json`` (``data.convert_tokenizer``), on a
model trained with the book's settings on the one-play fixture. The whole
corpus is compared in ``tests/book/test_checkpoints.py``."""

import filecmp
import pickle
import shutil
import sys
from pathlib import Path

import pytest
import torch

from gemma4_lite import Tokenizer
from gemma4_lite.book import data

pytest.importorskip("sentencepiece")

ROOT = Path(__file__).parents[2]
FIXTURE = ROOT / "tests" / "fixtures" / "comedy_of_errors_gut.txt"
VOCAB_SIZE = 600

# Text the fixture play never shows: whitespace runs, tabs, blank lines,
# digits, characters spelt in bytes, a line break inside a word
TRICKY = [
    "The lazy fox  jumps over\tthe quick dog.",
    "  leading, trailing  \n\n\n\t\t  runs   ",
    "a    b     c      d\n \n  \n",
    " ",
    "\n",
    "1623, 3.14159 and 100000000",
    "Zoë, Ærø, naïve café: 日本語 🦊",
    "DROMIO OF\nSYRACUSE.\r\nWhat, sir?\x00\x7f",
    "",
]


@pytest.fixture(scope="module")
def folder(tmp_path_factory) -> Path:
    """A checkpoint-like folder: the trained ``tokenizer.model`` and its
    conversion beside it."""
    folder = tmp_path_factory.mktemp("spm")
    play = FIXTURE.read_text(encoding="utf-8")
    model = data.train_tokenizer(play, folder / "tok", VOCAB_SIZE)
    shutil.copyfile(model, folder / "tokenizer.model")
    data.convert_tokenizer(folder)
    return folder


@pytest.fixture(scope="module")
def spm_tok(folder) -> data.SentencePieceTokenizer:
    return data.SentencePieceTokenizer.from_file(folder / "tokenizer.model")


def test_special_ids_and_size(spm_tok):
    assert (spm_tok.pad_id, spm_tok.eos_id, spm_tok.bos_id) == (0, 1, 2)
    assert [spm_tok.id_to_piece(i) for i in range(4)] == [
        "<pad>", "<eos>", "<bos>", "<unk>",
    ]  # fmt: skip
    assert spm_tok.special_tokens == {
        "bos_token": "<bos>", "eos_token": "<eos>",
        "pad_token": "<pad>", "unk_token": "<unk>",
    }  # fmt: skip
    assert len(spm_tok) == spm_tok.vocab_size == VOCAB_SIZE


def test_round_trip(spm_tok):
    text = "The lazy fox  jumps over\tthe quick dog."
    ids = spm_tok.encode(text)
    assert ids[0] == spm_tok.bos_id and spm_tok.bos_id not in ids[1:]
    assert spm_tok.encode(text, add_bos=False) == ids[1:]
    assert spm_tok.decode(ids) == text
    assert spm_tok.decode(torch.tensor(ids)) == text
    assert spm_tok.decode(ids, skip_special_tokens=False) == "<bos>" + text
    eos = ids + [spm_tok.eos_id]
    assert spm_tok.decode(eos, False) == "<bos>" + text + "<eos>"


def test_digits_are_split(spm_tok):
    ids = spm_tok.encode("1111", add_bos=False)  # "1" is in the play
    assert [spm_tok.id_to_piece(i) for i in ids] == ["1"] * 4
    texts = [  # byte pieces aside (<0x31> ...)
        spm_tok.id_to_piece(i)
        for i in range(spm_tok.vocab_size)
        if not spm_tok.sp.is_byte(i)
    ]
    assert not [p for p in texts if len(p) > 1 and any(map(str.isdigit, p))]


def test_byte_fallback_for_unseen_characters(spm_tok):
    text = "Zoë 🦊"
    ids = spm_tok.encode(text, add_bos=False)
    assert spm_tok.sp.unk_id() not in ids
    pieces = [spm_tok.id_to_piece(i) for i in ids]
    assert "<0xC3>" in pieces and "<0xAB>" in pieces  # ë in UTF-8
    assert spm_tok.decode(ids) == text


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer file"):
        data.SentencePieceTokenizer.from_file(tmp_path / "nope.model")


@pytest.mark.parametrize(
    "raw", [b"", b"not a model", pickle.dumps({"vocab": ["a"]})]
)
def test_not_a_sentencepiece_model(tmp_path, raw):
    path = tmp_path / "tokenizer.model"
    path.write_bytes(raw)
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        data.SentencePieceTokenizer.from_file(path)


def test_helpful_error_without_sentencepiece(folder, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentencepiece", None)
    with pytest.raises(ImportError, match="pip install sentencepiece"):
        data.SentencePieceTokenizer.from_file(folder / "tokenizer.model")


# The conversion: the same ids and text through tokenizer.json


@pytest.fixture(scope="module")
def converted(folder) -> Tokenizer:
    return Tokenizer.from_pretrained(folder)


def test_conversion_writes_the_two_files_and_nothing_else(folder):
    names = {p.name for p in folder.iterdir()}
    assert {"tokenizer.json", "tokenizer_config.json"} <= names
    assert not names & {"special_tokens_map.json", "chat_template.jinja"}


def test_same_vocabulary_and_special_ids(spm_tok, converted):
    assert converted.vocab_size == spm_tok.vocab_size  # no <mask> added
    assert converted.special_tokens == spm_tok.special_tokens
    assert (converted.pad_id, converted.eos_id, converted.bos_id) == (
        spm_tok.pad_id, spm_tok.eos_id, spm_tok.bos_id
    )  # fmt: skip
    assert [converted.id_to_piece(i) for i in range(VOCAB_SIZE)] == [
        spm_tok.id_to_piece(i) for i in range(VOCAB_SIZE)
    ]


@pytest.mark.parametrize("text", TRICKY)
def test_same_ids_and_text_as_sentencepiece(spm_tok, converted, text):
    ids = spm_tok.encode(text)
    assert converted.encode(text) == ids
    assert converted.encode(text, add_bos=False) == ids[1:]
    for skip in (True, False):
        assert converted.decode(ids, skip) == spm_tok.decode(ids, skip)
    assert converted.decode(ids) == text


def test_same_ids_on_the_play(spm_tok, converted):
    play = FIXTURE.read_text(encoding="utf-8")
    ids = spm_tok.encode(play)
    assert converted.encode(play) == ids
    assert converted.decode(ids) == play


def test_special_token_literals_are_the_one_difference(spm_tok, converted):
    # SentencePiece spells "<eos>" in the text out in pieces; tokenizer.json
    # reads it as the token, as transformers does. The corpus has no "<".
    assert converted.encode("<eos>", add_bos=False) == [spm_tok.eos_id]
    spelt = spm_tok.encode("<eos>", add_bos=False)
    assert len(spelt) > 1 and spm_tok.decode(spelt) == "<eos>"


def test_transformers_reads_the_converted_folder(folder, converted):
    transformers = pytest.importorskip("transformers")
    theirs = transformers.AutoTokenizer.from_pretrained(folder)
    assert len(theirs) == VOCAB_SIZE
    for text in TRICKY:
        assert theirs.encode(text) == converted.encode(text)


def test_conversion_is_deterministic(folder, tmp_path):
    shutil.copyfile(folder / "tokenizer.model", tmp_path / "tokenizer.model")
    assert data.convert_tokenizer(tmp_path) == tmp_path / "tokenizer.json"
    for name in ("tokenizer.json", "tokenizer_config.json"):
        assert filecmp.cmp(folder / name, tmp_path / name, shallow=False)


@pytest.mark.parametrize("name", ["shakespeare-dense", "shakespeare-moe"])
def test_committed_files_are_the_conversion_of_the_model(name, tmp_path):
    committed = ROOT / "checkpoints" / name
    shutil.copyfile(
        committed / "tokenizer.model", tmp_path / "tokenizer.model"
    )
    data.convert_tokenizer(tmp_path)
    for file in ("tokenizer.json", "tokenizer_config.json"):
        assert filecmp.cmp(committed / file, tmp_path / file, shallow=False)
