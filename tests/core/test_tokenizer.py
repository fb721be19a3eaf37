"""The SentencePiece wrapper, on a tiny BPE model trained with Gemma's
settings at test time (byte fallback, split digits, no normalization,
pad/eos/bos/unk = 0/1/2/3).
"""

import pickle
import sys
from pathlib import Path

import pytest
import torch

from gemma4_lite import Tokenizer

ROOT = Path(__file__).resolve().parents[2]

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
    assert fast.sp is None and fast.fast is not None
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


def test_same_ids_as_the_sentencepiece_file_it_came_from(fast):
    # transformers' conversion of the book's tokenizer.model: ordinary text
    # gets the ids SentencePiece gives it
    spm_tok = Tokenizer.from_pretrained(ROOT / "checkpoints/shakespeare-dense")
    for text in TEXTS:
        if "<" not in text:
            assert fast.encode(text) == spm_tok.encode(text), text


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


def test_no_chat_template(model_dir):
    with pytest.raises(ValueError, match="no chat template"):
        Tokenizer.from_pretrained(model_dir).apply_chat_template(
            [{"role": "user", "content": "hi"}]
        )
