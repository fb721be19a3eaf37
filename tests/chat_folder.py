"""A tokenizer folder shaped like a Gemma 4 checkpoint's, built offline
(test-only code): transformers converts the book's SentencePiece file into a
fast tokenizer, adds Gemma 4's turn, thinking and tool tokens, and saves
``tokenizer.json``, ``tokenizer_config.json`` and ``chat_template.jinja``
with a chat template in Gemma 4's format written for these tests.
"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SENTENCEPIECE = ROOT / "checkpoints" / "shakespeare-dense" / "tokenizer.model"

# Gemma 4's control tokens (the released vocabulary has them among its
# first ids; here they follow the 4,096 pieces of the book's tokenizer)
TURN_TOKENS = [
    "<|turn>", "<turn|>", "<|think|>", "<|channel>", "<channel|>",
    "<|tool_call>", "<tool_call|>", "<|tool_response>", "<tool_response|>",
]  # fmt: skip

# Gemma 4's chat format: <|turn>role\n ... <turn|>\n, the assistant's role
# called "model", the system turn first, <|think|> at its start to ask for
# thinking, tools as JSON in the system turn. Whitespace control both ways
# ({%- -%}) and plain tags, so that trim_blocks and lstrip_blocks matter.
CHAT_TEMPLATE = """\
{{- bos_token -}}
{%- set ns = namespace(system=none) -%}
{%- if messages and messages[0]['role'] == 'system' -%}
    {%- set ns.system = messages[0]['content'] | trim -%}
    {%- set messages = messages[1:] -%}
{%- endif -%}
{%- if ns.system is not none or tools or enable_thinking %}
<|turn>system
{% if enable_thinking %}<|think|>{% endif %}
{% if ns.system %}{{ ns.system }}{% endif %}
{% if tools %}
    {{- '\n\n' if ns.system }}Tools: {{ tools | tojson -}}
{% endif %}
<turn|>
{% endif %}
{% for message in messages %}
    {% if message['role'] not in ['user', 'assistant'] %}
        {{ raise_exception('Unknown role: ' + message['role']) }}
    {% endif %}
    {% if (message['role'] == 'user') != (loop.index0 % 2 == 0) %}
        {{ raise_exception('Roles must alternate user/assistant') }}
    {% endif %}
    {% set role = 'model' if message['role'] == 'assistant' else 'user' %}
<|turn>{{ role }}
{% if role == 'model' %}
    {% generation %}{{ message['content'] | trim }}{% endgeneration %}
{% else %}
    {{- message['content'] | trim -}}
{% endif %}
<turn|>
{% endfor %}
{% if add_generation_prompt %}
<|turn>model
{% endif %}"""


def build_chat_folder(folder: Path, template: str = CHAT_TEMPLATE) -> Path:
    """Save the Gemma 4-style tokenizer into ``folder`` and return it."""
    from transformers import GemmaTokenizer
    from transformers.tokenization_utils_sentencepiece import (
        SentencePieceExtractor,
    )

    vocab, _, merges = SentencePieceExtractor(str(SENTENCEPIECE)).extract()
    tokenizer = GemmaTokenizer(
        vocab=vocab,
        merges=merges,
        add_bos_token=True,  # as the released tokenizer.json: <bos> first
        extra_special_tokens={"image_token": "<|image|>"},
    )
    tokenizer.add_special_tokens({"additional_special_tokens": TURN_TOKENS})
    tokenizer.chat_template = template
    tokenizer.save_pretrained(folder)
    return folder
