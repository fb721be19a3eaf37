"""Text to token ids and back, and the chat format, as transformers reads a
checkpoint folder. Chapters: "Training" and "The full model".

A Gemma 4 checkpoint in Hugging Face format ships ``tokenizer.json`` (BPE
with byte fallback, read with the ``tokenizers`` library), its special
tokens in ``tokenizer_config.json`` and its chat format in
``chat_template.jinja``. The book's own checkpoints ship the same files,
converted from the SentencePiece ``tokenizer.model`` trained in the chapter
"Training" (``gemma4_lite.book.data``). The ids, the decoded text and the
rendered chat equal those of transformers' ``AutoTokenizer`` on the same
folder (``tests/core/test_tokenizer.py``).
"""

from __future__ import annotations

import json
from datetime import datetime
from functools import lru_cache
from pathlib import Path

import tokenizers
import torch


class Tokenizer:
    """Text to token ids and back, with the special tokens of the folder
    and its chat template."""

    def __init__(
        self,
        backend: tokenizers.Tokenizer,
        special_tokens: dict[str, str] | None = None,
        chat_template: str | None = None,
    ) -> None:
        """``special_tokens``: names (``bos_token``, ...) to text."""
        self.backend = backend
        self.special_tokens = dict(special_tokens or {})
        self.chat_template = chat_template
        ids = {k: self.token_to_id(v) for k, v in self.special_tokens.items()}
        self.bos_id, self.eos_id = ids.get("bos_token"), ids.get("eos_token")
        pad_id = ids.get("pad_token")  # files without <pad> pad with <eos>
        self.pad_id = self.eos_id if pad_id is None else pad_id

    @classmethod
    def from_pretrained(cls, directory: str | Path) -> Tokenizer:
        """Reads a checkpoint folder: ``tokenizer.json``; special tokens
        from ``tokenizer_config.json`` (and a legacy
        ``special_tokens_map.json``); the chat template from
        ``chat_template.jinja``, else ``tokenizer_config.json``."""
        folder = Path(directory)
        path = folder / "tokenizer.json"
        if not path.is_file():
            raise FileNotFoundError(
                f"no tokenizer.json in {folder}; a SentencePiece "
                "tokenizer.model converts to one with "
                "gemma4_lite.book.data.convert_tokenizer(folder)"
            )
        backend = tokenizers.Tokenizer.from_file(str(path))
        config = _json(folder / "tokenizer_config.json")
        if "added_tokens_decoder" not in config:  # transformers' legacy rule
            config.update(_json(folder / "special_tokens_map.json"))
        named = {k: v for k, v in config.items() if k.endswith("_token")}
        extra = config.get("extra_special_tokens")
        named.update(extra if isinstance(extra, dict) else {})
        named = {k: _text(v) for k, v in named.items()}
        special = {k: v for k, v in named.items() if isinstance(v, str)}
        template = config.get("chat_template")
        if (folder / "chat_template.jinja").is_file():
            template = (folder / "chat_template.jinja").read_text("utf-8")
        elif isinstance(template, list):  # named templates: the default
            named_templates = {t["name"]: t["template"] for t in template}
            template = named_templates.get("default")
        return cls(backend, special, template)

    @property
    def vocab_size(self) -> int:  # added tokens included, as len() in HF
        return self.backend.get_vocab_size()

    def __len__(self) -> int:
        return self.vocab_size

    def id_to_piece(self, token_id: int) -> str:
        return self.backend.id_to_token(token_id)

    def token_to_id(self, token: str | None) -> int | None:
        """The id of a token's text, ``None`` if it is not a token."""
        return None if token is None else self.backend.token_to_id(token)

    def encode(self, text: str, add_bos: bool = True) -> list[int]:
        """Token ids of ``text``; special tokens written in the text (as
        ``<|turn>``) become their ids, as in transformers."""
        ids = self.backend.encode(text, add_special_tokens=False).ids
        bos = [self.bos_id] if add_bos and self.bos_id is not None else []
        return bos + ids

    def decode(self, ids, skip_special_tokens: bool = True) -> str:
        ids = ids.tolist() if isinstance(ids, torch.Tensor) else list(ids)
        return self.backend.decode(ids, skip_special_tokens)

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

    def apply_chat_template(
        self,
        messages: list[dict],
        add_generation_prompt: bool = False,
        tokenize: bool = True,
        **variables,
    ) -> list[int] | str:
        """The conversation rendered with the folder's chat template, as
        transformers' ``apply_chat_template`` renders it: the same sandboxed
        jinja2 environment and helpers, the special tokens (``bos_token``,
        ...) and ``variables`` passed in. ``tokenize=False`` returns the
        text; else its ids (no BOS added: the template writes it)."""
        if self.chat_template is None:
            raise ValueError("this tokenizer's folder has no chat template")
        variables = {"tools": None, "documents": None, **variables}
        text = _compile(self.chat_template).render(
            # as transformers, keys set to None are dropped
            messages=[
                {k: v for k, v in m.items() if v is not None} for m in messages
            ],
            add_generation_prompt=add_generation_prompt,
            **{**self.special_tokens, **variables},
        )
        return self.encode(text, add_bos=False) if tokenize else text


def _json(path: Path) -> dict:
    return json.loads(path.read_text("utf-8")) if path.is_file() else {}


def _text(token):  # a token is saved as text or as an AddedToken dict
    return token.get("content") if isinstance(token, dict) else token


@lru_cache(maxsize=8)
def _compile(template: str):
    """The template in transformers' environment: sandboxed (a template
    from a download cannot reach Python), blocks trimmed, ``break`` and
    ``continue``, ``{% generation %}`` accepted, and its helpers."""
    import jinja2
    from jinja2.ext import Extension, loopcontrols
    from jinja2.sandbox import ImmutableSandboxedEnvironment

    class Generation(Extension):  # marks assistant text; renders as is
        tags = {"generation"}

        def parse(self, parser):
            next(parser.stream)
            return parser.parse_statements(
                ("name:endgeneration",), drop_needle=True
            )

    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    env = ImmutableSandboxedEnvironment(
        trim_blocks=True,
        lstrip_blocks=True,
        extensions=[Generation, loopcontrols],
    )
    # not jinja's tojson, which escapes HTML characters
    env.filters["tojson"] = lambda x, ensure_ascii=False, **options: (
        json.dumps(x, ensure_ascii=ensure_ascii, **options)
    )
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda f: datetime.now().strftime(f)
    return env.from_string(template)
