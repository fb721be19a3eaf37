"""Hugging Face ``config.json`` files, read exactly as transformers 5.24 reads
them, so that a checkpoint loads here into the very model transformers
builds from it. Chapter: "Gemma 4 at a glance".

Text-only files (``gemma4_text``, ``gemma4_unified_text``) hold the decoder
settings at the top level, multimodal ones (``gemma4``, ``gemma4_unified``)
under ``text_config``. The family picks the defaults for keys a file omits:
the 12B "Unified" decoder has no per-layer embeddings or experts
(transformers ignores such keys in its files), a 1024-token window and 256K
positions by default.

Global layers take ``global_head_dim`` and, with K=V,
``num_global_key_value_heads`` (the released files) only when the file has no
``per_layer_config``. When it has one (transformers 5.23+ writes it, ``{}``
included), each layer takes its own overrides and otherwise ``head_dim`` and
``num_key_value_heads``. Files transformers cannot build, or whose shape this
model cannot hold (global layers that differ from each other, one RoPE for
all layer types, RoPE kinds other than default/proportional), raise
``ValueError``.
"""

from __future__ import annotations

import json
from dataclasses import fields
from pathlib import Path
from typing import Any

from .config import FULL, LAYER_TYPES, SLIDING, Gemma4Config, layer_pattern

# fmt: off
# transformers' Gemma4TextConfig defaults (5.24.0), for keys a file omits
TRANSFORMERS_DEFAULTS: dict[str, Any] = dict(
    vocab_size=262_144, hidden_size=2304, intermediate_size=9216,
    num_hidden_layers=30, num_attention_heads=8, num_key_value_heads=4,
    head_dim=256, max_position_embeddings=131_072, rms_norm_eps=1e-6,
    sliding_window=512, final_logit_softcapping=None,
    vocab_size_per_layer_input=262_144, hidden_size_per_layer_input=256,
    attention_k_eq_v=False, num_kv_shared_layers=0, enable_moe_block=False,
    use_double_wide_mlp=False, tie_word_embeddings=True, pad_token_id=0,
    bos_token_id=2, eos_token_id=1,
)
# Gemma4UnifiedTextConfig (5.24.0) differs in two defaults and has neither
# per-layer embeddings nor experts
UNIFIED_DEFAULTS: dict[str, Any] = dict(
    TRANSFORMERS_DEFAULTS, max_position_embeddings=262_144,
    sliding_window=1024, hidden_size_per_layer_input=0,
)
# Our RoPE fields, which files spell as rope_parameters
ROPE_FIELDS = ("sliding_rope_theta", "global_rope_type", "global_rope_theta",
                "global_partial_rotary_factor", "global_rope_factor")
# Fields never copied from a file by name: resolved by their own rules
_RESOLVED = {*ROPE_FIELDS, "global_head_dim", "num_global_key_value_heads"}
# Gemma4UnifiedTextConfig has no such fields and its model never reads them
_NOT_IN_UNIFIED = {"hidden_size_per_layer_input", "vocab_size_per_layer_input",
                   "enable_moe_block", "num_experts", "top_k_experts",
                   "moe_intermediate_size"}
# family (a multimodal model_type) -> its defaults, the fields it ignores
_FAMILIES = {"gemma4": (TRANSFORMERS_DEFAULTS, _RESOLVED),
             "gemma4_unified": (UNIFIED_DEFAULTS, _RESOLVED | _NOT_IN_UNIFIED)}
# model_type of a text-only file -> family
_TEXT_FAMILIES = {None: "gemma4", "gemma4_text": "gemma4",
                  "gemma4_unified_text": "gemma4_unified"}
# Settings no Gemma 4 causal decoder has: refused, not ignored
_REFUSED = {"use_bidirectional_attention": "all", "attention_bias": True}
# What a layer may override in a per_layer_config, and our fields for it
_PER_LAYER_KEYS = ("head_dim", "num_key_value_heads")
_GEOMETRY = {SLIDING: _PER_LAYER_KEYS,
             FULL: ("global_head_dim", "num_global_key_value_heads")}
# fmt: on
_ABSENT = object()  # a key neither the file nor the defaults hold


def config_values(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """The :class:`Gemma4Config` keywords of a ``config.json`` (a folder, a
    file or a parsed dict): the model transformers would build from it,
    with the defaults transformers fills in where the file says nothing."""
    text, (defaults, ignored) = _text_section(read_config(source))
    for key, value in _REFUSED.items():
        if text.get(key) == value:
            raise ValueError(
                f"{key}={value!r} is not part of a Gemma 4 causal decoder, "
                "the only kind gemma4_lite runs"
            )
    # A key the file leaves out means the family's default, not ours
    known = {f.name for f in fields(Gemma4Config)} - ignored
    given = {k: v for k, v in text.items() if k in known and v is not None}
    values = {**defaults, **given}
    if text.get("hidden_size_per_layer_input", 0) is None:
        values["hidden_size_per_layer_input"] = 0  # null: no per-layer inputs
    if "layer_types" not in values:
        values["layer_types"] = layer_pattern(values["num_hidden_layers"], 6)
    values.update(_attention_geometry(text, values))
    values.update(_rope_fields(text, values["layer_types"]))
    return values


def read_config(source: str | Path | dict[str, Any]) -> dict[str, Any]:
    """A ``config.json`` parsed: from a folder, a file or already a dict."""
    if isinstance(source, dict):
        return source
    path = Path(source)
    path = path / "config.json" if path.is_dir() else path
    if not path.is_file():
        raise FileNotFoundError(f"No config.json at {path}")
    return json.loads(path.read_text())


def _text_section(raw: dict[str, Any]) -> tuple[dict[str, Any], tuple]:
    """The decoder's settings, and the defaults and ignored fields of its
    family (``"gemma4"`` or ``"gemma4_unified"``)."""
    outer, text = raw.get("model_type"), raw.get("text_config")
    if outer in _FAMILIES:
        # transformers builds the family's text config from text_config
        # (defaults when it is absent), whatever model_type it names
        if not isinstance(text or {}, dict):
            raise ValueError("config text_config must be a JSON object")
        return text or {}, _FAMILIES[outer]
    if outer is None and isinstance(text, dict):
        raw, outer = text, text.get("model_type")
    if outer not in _TEXT_FAMILIES:
        raise ValueError(
            f"config model_type is {outer!r}, not a Gemma 4 text decoder "
            "('gemma4_text' or 'gemma4_unified_text')"
        )
    return raw, _FAMILIES[_TEXT_FAMILIES[outer]]


def _attention_geometry(
    text: dict[str, Any], values: dict[str, Any]
) -> dict[str, Any]:
    """Head size and KV heads of each layer type, as transformers 5.24
    resolves them (``Gemma4TextConfig.__post_init__``, then the file's
    ``per_layer_config``), folded back into our fields, which hold one shape
    per layer type. A ``per_layer_config`` that changes anything else is
    refused: nothing else varies between the layers of a Gemma 4."""
    if "per_layer_config" not in text:
        # The released layout: the keywords override every global layer,
        # the KV heads only with K=V
        kv = text.get("num_global_key_value_heads")
        kv = kv if values["attention_k_eq_v"] else None
        size = text.get("global_head_dim", 512)
        return {"global_head_dim": size, "num_global_key_value_heads": kv}
    types, given = values["layer_types"], text["per_layer_config"] or {}
    rule = (
        f"per_layer_config must map layers 0..{len(types) - 1} (by index) "
        "to objects of overrides"
    )
    if not isinstance(given, dict):
        raise ValueError(f"{rule}, got {given!r}")
    overrides: dict[int, dict[str, Any]] = {}
    for key, override in given.items():
        try:
            layer = int(key)
        except (TypeError, ValueError):
            layer = -1
        if not (0 <= layer < len(types) and isinstance(override, dict)):
            raise ValueError(f"{rule}, got {key!r}: {override!r}")
        for name, value in override.items():
            # transformers drops an empty skip list and any override equal
            # to the file's own setting (or the default it stands for)
            same = value == text.get(name, values.get(name, _ABSENT))
            dropped = not value if name == "skip" else same
            if name not in _PER_LAYER_KEYS and not dropped:
                raise ValueError(
                    f"per_layer_config overrides {name!r} on layer {layer}; "
                    "a Gemma 4 layer can only change head_dim and "
                    "num_key_value_heads (transformers' Gemma 4 cannot "
                    "build or ignores anything else)"
                )
        overrides[layer] = override

    def shape(layer: int) -> tuple[Any, ...]:
        own = overrides.get(layer, {})
        return tuple(own.get(key, values[key]) for key in _PER_LAYER_KEYS)

    out = {key: values[key] for key in _PER_LAYER_KEYS}
    for kind, names in _GEOMETRY.items():
        shapes = {i: shape(i) for i, t in enumerate(types) if t == kind}
        if len(set(shapes.values())) > 1:
            found = ", ".join(f"layer {i} {s}" for i, s in shapes.items())
            raise ValueError(
                f"per_layer_config gives the {kind} layers different "
                f"shapes (head_dim, KV heads): {found}; gemma4_lite, like "
                "transformers 5.24's rotary embedding, needs one shape per "
                "layer type"
            )
        out.update(zip(names, next(iter(shapes.values()), ())))
    # Global layers keep a KV-head count of their own when one is written
    # for them or when it differs from the sliding layers'
    if FULL in types:
        written = overrides.get(types.index(FULL), {})
        if "num_key_value_heads" not in written and (
            out["num_global_key_value_heads"] == out["num_key_value_heads"]
        ):
            out["num_global_key_value_heads"] = None
    return out


def _rope_fields(text: dict[str, Any], layer_types: list) -> dict[str, Any]:
    """Our RoPE fields from ``rope_parameters``, read like transformers
    5.24: one entry per layer type, ``rope_type`` or else the legacy
    ``type`` (``validate_rope`` renames it), and where an entry leaves out
    ``rope_theta`` / ``partial_rotary_factor`` the top-level keys of the
    same name, which ``standardize_rope_params`` copies in while building a
    proportional RoPE."""
    rope = text.get("rope_parameters")
    if rope is None:
        return {}  # transformers' default is the released RoPE, as is ours
    entries = rope if isinstance(rope, dict) else {}
    entries = {k: entries.get(k) for k in LAYER_TYPES if k in layer_types}
    missing = [k for k in entries if not isinstance(entries[k], dict)]
    if missing:
        raise ValueError(
            f"rope_parameters has no {' or '.join(map(repr, missing))} entry "
            "but the model has such layers: Gemma 4 needs one entry per "
            "layer type, not one flat entry for all (transformers 5.24 "
            "fails on this too)"
        )
    types = {
        kind: entry.get("rope_type", entry.get("type")) or "default"
        for kind, entry in entries.items()
    }
    proportional = "proportional" in types.values()
    out: dict[str, Any] = {}
    for kind, entry in entries.items():
        rope_type, theta = types[kind], entry.get("rope_theta")
        # Gemma4Config.validate checks the global layers' RoPE type
        if kind == SLIDING and rope_type != "default":
            raise ValueError(
                f"sliding layers use RoPE type {rope_type!r}; Gemma 4 (and "
                "gemma4_lite) use 'default' there"
            )
        if theta is None and proportional and rope_type == "default":
            theta = text.get("rope_theta")
        if theta is None:
            raise ValueError(
                f"rope_parameters[{kind!r}] has no rope_theta (transformers "
                "5.24 cannot build the RoPE without one either)"
            )
        rotary = entry.get("partial_rotary_factor")
        if rotary is None and rope_type == "proportional":
            rotary = text.get("partial_rotary_factor")
        if kind == SLIDING:
            out["sliding_rope_theta"] = float(theta)
        else:
            out["global_rope_type"] = rope_type
            out["global_rope_theta"] = float(theta)
            out["global_partial_rotary_factor"] = float(
                1.0 if rotary is None else rotary
            )
            out["global_rope_factor"] = float(entry.get("factor", 1.0))
    return out
