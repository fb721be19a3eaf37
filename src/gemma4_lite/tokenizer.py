"""A small wrapper over Gemma's SentencePiece ``tokenizer.model`` files.

Gemma ships its tokenizer as a SentencePiece model (a protobuf, never a
pickle): BPE with byte fallback, digits split one by one, no normalization.
How such a tokenizer is trained is the subject of the chapter "Training"
(Part 4). ``sentencepiece`` is an optional dependency
(``pip install gemma4-lite[tokenizer]``) imported only when a file is read.
"""

from __future__ import annotations

from itertools import groupby
from pathlib import Path

import torch


class Tokenizer:
    """Text to token ids and back, with the special ids of the model file."""

    def __init__(self, processor) -> None:
        self.sp = processor
        self.bos_id = processor.bos_id()
        self.eos_id = processor.eos_id()
        pad_id = processor.pad_id()  # files without <pad> pad with <eos>
        self.pad_id = pad_id if pad_id >= 0 else self.eos_id

    @classmethod
    def from_file(cls, path: str | Path) -> Tokenizer:
        try:
            import sentencepiece
        except ImportError as error:
            raise ImportError(
                "Tokenizer needs sentencepiece: pip install sentencepiece "
                "(or pip install gemma4-lite[tokenizer])"
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

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> Tokenizer:
        """Reads ``tokenizer.model`` in a checkpoint folder."""
        return cls.from_file(Path(directory) / "tokenizer.model")

    @property
    def vocab_size(self) -> int:
        return self.sp.get_piece_size()

    def __len__(self) -> int:
        return self.vocab_size

    def id_to_piece(self, token_id: int) -> str:
        return self.sp.id_to_piece(token_id)

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        ids = self.sp.encode(text)
        return [self.bos_id, *ids] if add_bos else ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        if skip_special_tokens:  # SentencePiece drops control pieces
            return self.sp.decode(ids)
        return "".join(  # else spells them (<bos>, <eos>...) in place
            "".join(map(self.id_to_piece, run))
            if special
            else self.sp.decode(list(run))
            for special, run in groupby(ids, self.sp.is_control)
        )

    def batch_encode(
        self, texts: list[str], add_bos: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded ``(input_ids, attention_mask)``, mask 1 on tokens."""
        rows = [self.encode(text, add_bos) for text in texts]
        width = max(map(len, rows), default=0)
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, width - len(row) :] = torch.tensor(row, dtype=torch.long)
            mask[i, width - len(row) :] = 1
        return ids, mask
