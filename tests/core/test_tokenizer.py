"""The tokenizer on folders shaped like a Gemma 4 checkpoint's
(``tokenizer.json``, ``tokenizer_config.json``, ``chat_template.jinja``)
and on the book's own checkpoints, compared with transformers'
AutoTokenizer on the same folder. The book's SentencePiece files and their
conversion to ``tokenizer.json`` are tested in
``tests/book/test_sentencepiece.py``.
"""

from pathlib import Path

import pytest
import tokenizers
import torch

from gemma4_lite import Tokenizer

BOOK_FOLDER = (
    Path(__file__).resolve().parents[2] / "checkpoints/shakespeare-dense"
)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="no tokenizer.json"):
        Tokenizer.from_pretrained(tmp_path)
    # a SentencePiece file alone: the error says how to convert it
    (tmp_path / "tokenizer.model").write_bytes(
        (BOOK_FOLDER / "tokenizer.model").read_bytes()
    )
    with pytest.raises(FileNotFoundError, match=r"book\.data\.convert_tok"):
        Tokenizer.from_pretrained(tmp_path)


# A folder shaped like a Gemma 4 checkpoint's (tokenizer.json, no
# tokenizer.model), compared with transformers' AutoTokenizer on it.

TEXTS = [
    "The lazy fox  jumps over\tthe quick dog.",
    "<|turn>user\nWho is there?<turn|>\n<|turn>model\n",  # control tokens
    "<bos>already<eos> and <|image|> in the text",
    "Zoë, Ærø, naïve café: 日本語 🦊",  # non-ASCII, byte fallback
    "  leading, trailing  \n\n\n\t\t  runs   ",  # whitespace runs
    "1623, 3.14159 and 100000000",  # digits split one by one
    "",
]

CHATS = {
    "one turn": [{"role": "user", "content": "Who's there?"}],
    "system and turns": [
        {"role": "system", "content": "  Answer in verse.  "},
        {"role": "user", "content": "Who's there?"},
        {"role": "assistant", "content": "Nay, answer me.\n"},
        {"role": "user", "content": "Long live the king!", "name": None},
    ],
    "special text": [
        {"role": "user", "content": "What is <|turn>? And 日本語 🦊"},
    ],
}


@pytest.fixture(scope="module")
def chat_dir(tmp_path_factory):
    pytest.importorskip("transformers")
    from chat_folder import build_chat_folder

    return build_chat_folder(tmp_path_factory.mktemp("gemma4-tokenizer"))


@pytest.fixture(scope="module")
def hf_tok(chat_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(chat_dir)


@pytest.fixture(scope="module")
def fast(chat_dir):
    return Tokenizer.from_pretrained(chat_dir)


def test_reads_tokenizer_json_without_tokenizer_model(chat_dir, fast, hf_tok):
    assert not (chat_dir / "tokenizer.model").exists()
    assert isinstance(fast.backend, tokenizers.Tokenizer)
    assert len(fast) == len(hf_tok) == 4096 + 11  # <mask>, <|image|>, turns
    assert fast.special_tokens == hf_tok.special_tokens_map
    assert (fast.bos_id, fast.eos_id, fast.pad_id) == (
        hf_tok.bos_token_id, hf_tok.eos_token_id, hf_tok.pad_token_id
    )  # fmt: skip
    turn = fast.token_to_id("<turn|>")
    assert turn == hf_tok.convert_tokens_to_ids("<turn|>") >= 4096
    assert fast.id_to_piece(turn) == "<turn|>"
    assert fast.token_to_id("<not a token>") is None


@pytest.mark.parametrize("text", TEXTS)
def test_encode_and_decode_agree_with_transformers(fast, hf_tok, text):
    ids = fast.encode(text)
    assert ids == hf_tok.encode(text)
    assert fast.encode(text, add_bos=False) == hf_tok.encode(
        text, add_special_tokens=False
    )
    for skip in (True, False):
        assert fast.decode(ids, skip_special_tokens=skip) == hf_tok.decode(
            ids, skip_special_tokens=skip
        )
    assert fast.decode(torch.tensor(ids)) == hf_tok.decode(
        ids, skip_special_tokens=True
    )


def test_control_tokens_in_text_are_single_ids(fast):
    ids = fast.encode("<|turn>user\nhi<turn|>", add_bos=False)
    assert ids[0] == fast.token_to_id("<|turn>")
    assert ids[-1] == fast.token_to_id("<turn|>")


def test_batch_encode_pads_on_the_left(fast):
    texts = ["The fox", "The quick brown fox jumps", ""]
    ids, mask = fast.batch_encode(texts)
    assert ids.dtype == mask.dtype == torch.long
    assert ids.shape == mask.shape == (3, len(fast.encode(texts[1])))
    for row, m, text in zip(ids, mask, texts):
        real = fast.encode(text)
        assert row[-len(real) :].tolist() == real
        assert m.tolist() == [0] * (len(row) - len(real)) + [1] * len(real)
        assert (row[: len(row) - len(real)] == fast.pad_id).all()
    empty, empty_mask = fast.batch_encode([""], add_bos=False)
    assert empty.shape == empty_mask.shape == (1, 0)


@pytest.fixture(scope="module")
def book_pair():
    pytest.importorskip("transformers")
    from transformers import AutoTokenizer

    return (
        Tokenizer.from_pretrained(BOOK_FOLDER),
        AutoTokenizer.from_pretrained(BOOK_FOLDER),
    )


@pytest.mark.parametrize("text", TEXTS)
def test_the_book_checkpoint_agrees_with_transformers(book_pair, text):
    ours, theirs = book_pair
    assert len(ours) == len(theirs) == 4096
    assert (ours.pad_id, ours.eos_id, ours.bos_id) == (0, 1, 2)
    assert ours.special_tokens == theirs.special_tokens_map
    ids = ours.encode(text)
    assert ids == theirs.encode(text) and ids[0] == ours.bos_id
    for skip in (True, False):
        assert ours.decode(ids, skip) == theirs.decode(ids, skip)


def test_added_tokens_leave_ordinary_ids_alone(fast, book_pair):
    # the chat folder is the book's vocabulary plus control tokens
    book = book_pair[0]
    for text in TEXTS:
        if "<" not in text:
            assert fast.encode(text) == book.encode(text), text


@pytest.mark.parametrize("name", CHATS)
@pytest.mark.parametrize("prompt", [False, True])
def test_chat_template_renders_as_transformers(fast, hf_tok, name, prompt):
    chat = CHATS[name]
    text = fast.apply_chat_template(
        chat, add_generation_prompt=prompt, tokenize=False
    )
    expected = hf_tok.apply_chat_template(
        chat, add_generation_prompt=prompt, tokenize=False
    )
    assert text == expected
    assert text.startswith("<bos>") and text.count("<turn|>") == len(
        [m for m in chat if m["role"] != "system"]
    ) + (chat[0]["role"] == "system")
    assert text.endswith("<|turn>model\n") == prompt
    ids = fast.apply_chat_template(chat, add_generation_prompt=prompt)
    assert ids == hf_tok.apply_chat_template(
        chat, add_generation_prompt=prompt, return_dict=False
    )
    assert ids[0] == fast.bos_id and ids.count(fast.bos_id) == 1


def test_template_variables_tools_and_tojson(fast, hf_tok):
    chat = CHATS["one turn"]
    tools = [{"name": "moon", "description": "Phases — «de la lune»",
              "parameters": {"type": "object", "properties": {}}}]  # fmt: skip
    for extra in ({"enable_thinking": True}, {"enable_thinking": False}, {}):
        ours = fast.apply_chat_template(
            chat, tokenize=False, tools=tools, **extra
        )
        assert ours == hf_tok.apply_chat_template(
            chat, tokenize=False, tools=tools, **extra
        )
        assert ("<|think|>" in ours) == bool(extra.get("enable_thinking"))
    assert "«de la lune»" in ours  # tojson keeps non-ASCII, as transformers


def test_raise_exception_in_the_template(fast, hf_tok):
    import jinja2

    bad = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]
    with pytest.raises(jinja2.TemplateError, match="alternate"):
        fast.apply_chat_template(bad)
    with pytest.raises(jinja2.TemplateError, match="alternate"):
        hf_tok.apply_chat_template(bad)


def test_template_helpers_and_sandbox(fast):
    import copy
    import datetime

    import jinja2

    tok = copy.copy(fast)
    tok.chat_template = "{{ strftime_now('%Y') }}"
    year = tok.apply_chat_template([], tokenize=False)
    assert year == str(datetime.date.today().year)
    tok.chat_template = "{{ bos_token }}{{ ''.__class__.__mro__ }}"
    with pytest.raises(jinja2.exceptions.SecurityError):
        tok.apply_chat_template([], tokenize=False)


@pytest.mark.parametrize("named", [False, True])
def test_template_from_tokenizer_config_and_legacy_special_map(
    chat_dir, tmp_path, named
):
    import json
    import shutil

    from transformers import AutoTokenizer

    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(chat_dir / name, tmp_path / name)
    config = json.loads((tmp_path / "tokenizer_config.json").read_text())
    template = (chat_dir / "chat_template.jinja").read_text()
    config["chat_template"] = template
    if named:  # several templates, saved by name: the default one is used
        config["chat_template"] = [
            {"name": "default", "template": template},
            {"name": "rag", "template": "{{ documents }}"},
        ]
    del config["eos_token"]
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    flags = ("lstrip", "rstrip", "normalized", "single_word")
    special = {
        "eos_token": {"content": "<turn|>"} | dict.fromkeys(flags, False)
    }
    (tmp_path / "special_tokens_map.json").write_text(json.dumps(special))
    ours = Tokenizer.from_pretrained(tmp_path)
    theirs = AutoTokenizer.from_pretrained(tmp_path)
    assert ours.eos_id == theirs.eos_token_id == ours.token_to_id("<turn|>")
    assert ours.special_tokens == theirs.special_tokens_map
    chat = CHATS["system and turns"]
    assert ours.apply_chat_template(chat, tokenize=False) == (
        theirs.apply_chat_template(chat, tokenize=False)
    )


def test_no_chat_template():
    with pytest.raises(ValueError, match="no chat template"):
        Tokenizer.from_pretrained(BOOK_FOLDER).apply_chat_template(
            [{"role": "user", "content": "hi"}]
        )
