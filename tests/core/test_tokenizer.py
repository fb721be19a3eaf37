"""The SentencePiece wrapper, on a tiny BPE model trained with Gemma's
settings at test time (byte fallback, split digits, no normalization,
pad/eos/bos/unk = 0/1/2/3).
"""

import pickle
import sys

import pytest
import torch

from gemma4_lite import Tokenizer

spm = pytest.importorskip("sentencepiece")

VOCAB_SIZE = 320  # 4 specials + 256 byte pieces + characters and merges
TEXT = "\n".join(
    f"The quick brown fox {i} jumps over the lazy dog number {i * 37}. "
    f"Sliding windows and global layers share one cache of size {i + 512}."
    for i in range(60)
)


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tokenizer")
    corpus = folder / "corpus.txt"
    corpus.write_text(TEXT, encoding="utf-8")
    spm.SentencePieceTrainer.train(
        input=str(corpus),
        model_prefix=str(folder / "tokenizer"),
        model_type="bpe",
        vocab_size=VOCAB_SIZE,
        character_coverage=1.0,
        byte_fallback=True,
        split_digits=True,
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        pad_id=0,
        eos_id=1,
        bos_id=2,
        unk_id=3,
        pad_piece="<pad>",
        eos_piece="<eos>",
        bos_piece="<bos>",
        unk_piece="<unk>",
        minloglevel=2,
    )
    return folder


@pytest.fixture(scope="module")
def tok(model_dir):
    return Tokenizer.from_pretrained(model_dir)


def test_special_ids_and_size(tok):
    assert (tok.pad_id, tok.eos_id, tok.bos_id) == (0, 1, 2)
    assert [tok.id_to_piece(i) for i in range(4)] == [
        "<pad>",
        "<eos>",
        "<bos>",
        "<unk>",
    ]
    assert len(tok) == tok.vocab_size == VOCAB_SIZE


def test_round_trip(tok):
    text = "The lazy fox  jumps over\tthe quick dog."
    ids = tok.encode(text)
    assert ids[0] == tok.bos_id and tok.bos_id not in ids[1:]
    assert tok.encode(text, add_bos=False) == ids[1:]
    assert tok.decode(ids) == text
    assert tok.decode(torch.tensor(ids)) == text
    assert tok.decode(ids, skip_special_tokens=False) == "<bos>" + text


def test_digits_are_split(tok):
    pieces = [tok.id_to_piece(i) for i in tok.encode("512", add_bos=False)]
    assert pieces == ["5", "1", "2"]


def test_byte_fallback_for_unseen_characters(tok):
    text = "Zoë 🦊"
    ids = tok.encode(text, add_bos=False)
    assert 3 not in ids  # no <unk>
    pieces = [tok.id_to_piece(i) for i in ids]
    assert "<0xC3>" in pieces and "<0xAB>" in pieces  # ë in UTF-8
    assert tok.decode(ids) == text


def test_batch_encode_pads_on_the_left(tok):
    texts = ["The fox", "The quick brown fox jumps", ""]
    ids, mask = tok.batch_encode(texts)
    assert ids.dtype == mask.dtype == torch.long
    assert ids.shape == mask.shape == (3, len(tok.encode(texts[1])))
    for row, m, text in zip(ids, mask, texts):
        real = tok.encode(text)
        assert row[-len(real) :].tolist() == real
        assert m.tolist() == [0] * (len(row) - len(real)) + [1] * len(real)
        assert (row[: len(row) - len(real)] == tok.pad_id).all()
    empty, empty_mask = tok.batch_encode([""], add_bos=False)
    assert empty.shape == empty_mask.shape == (1, 0)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="tokenizer.model"):
        Tokenizer.from_pretrained(tmp_path)
    with pytest.raises(FileNotFoundError):
        Tokenizer.from_file(tmp_path / "nope.model")


@pytest.mark.parametrize(
    "data", [b"", b"not a model", pickle.dumps({"vocab": ["a"]})]
)
def test_not_a_sentencepiece_model(tmp_path, data):
    path = tmp_path / "tokenizer.model"
    path.write_bytes(data)
    with pytest.raises(ValueError, match="not a SentencePiece model"):
        Tokenizer.from_file(path)


def test_helpful_error_without_sentencepiece(model_dir, monkeypatch):
    monkeypatch.setitem(sys.modules, "sentencepiece", None)
    with pytest.raises(ImportError, match="pip install sentencepiece"):
        Tokenizer.from_pretrained(model_dir)
