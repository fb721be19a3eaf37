"""Hyperparameters of a Gemma 4 text decoder, in one dataclass with named
presets.

Field names follow the Hugging Face ``Gemma4TextConfig`` (and the released
``config.json`` files), so a reader can hold the two side by side. Chapter:
"Gemma 4 at a glance".
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

SLIDING = "sliding_attention"
FULL = "full_attention"
LAYER_TYPES = (SLIDING, FULL)


def layers_of_type(
    layer_types: "list[str] | tuple[str, ...]", kind: str
) -> list[int]:
    """Indices of the layers of one attention kind."""
    return [i for i, t in enumerate(layer_types) if t == kind]


def layer_pattern(num_layers: int, period: int) -> list[str]:
    """``period - 1`` sliding layers then one global layer, repeated
    (period 5 is 4:1, period 6 is 5:1)."""
    return [
        FULL if (i + 1) % period == 0 else SLIDING for i in range(num_layers)
    ]


@dataclass
class Gemma4Config:
    """Everything the five released Gemma 4 text decoders need.

    Global ("full_attention") layers have their own head size
    (``global_head_dim``), their own KV-head count
    (``num_global_key_value_heads``; ``None`` means as many as the sliding
    layers), keys that may double as values (``attention_k_eq_v``), and their
    own RoPE ("proportional": only ``global_partial_rotary_factor`` of the
    frequency pairs rotate).

    Unlike transformers' keyword of the same name, which only counts when
    ``attention_k_eq_v`` is on, ``num_global_key_value_heads`` applies with or
    without K=V, as a ``per_layer_config`` in a transformers file can;
    :meth:`to_hf_dict` writes such a ``per_layer_config`` when the keyword
    would be ignored.
    """

    vocab_size: int = 262_144
    hidden_size: int = 1536
    intermediate_size: int = 6144
    num_hidden_layers: int = 35
    num_attention_heads: int = 8
    num_key_value_heads: int = 1
    head_dim: int = 256
    global_head_dim: int | None = 512
    num_global_key_value_heads: int | None = None
    attention_k_eq_v: bool = False
    layer_types: list[str] = field(
        default_factory=lambda: layer_pattern(35, 5)
    )
    sliding_window: int = 512
    sliding_rope_theta: float = 10_000.0
    global_rope_type: str = "proportional"
    global_rope_theta: float = 1_000_000.0
    global_partial_rotary_factor: float = 0.25
    global_rope_factor: float = 1.0
    hidden_size_per_layer_input: int = 0
    vocab_size_per_layer_input: int = 262_144
    num_kv_shared_layers: int = 0
    use_double_wide_mlp: bool = False
    enable_moe_block: bool = False
    num_experts: int | None = None
    top_k_experts: int | None = None
    moe_intermediate_size: int | None = None
    final_logit_softcapping: float | None = 30.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = True
    max_position_embeddings: int = 131_072
    hidden_activation: str = "gelu_pytorch_tanh"
    pad_token_id: int = 0
    bos_token_id: int = 2
    eos_token_id: int | list[int] = 1

    def __post_init__(self) -> None:
        self.layer_types = list(self.layer_types)
        self.validate()

    # ------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the fix for any config
        the model cannot honour."""

        def fail(field_name: str, problem: str, fix: str) -> None:
            raise ValueError(f"Gemma4Config.{field_name}: {problem}. {fix}")

        for name in (
            "vocab_size",
            "hidden_size",
            "intermediate_size",
            "num_hidden_layers",
            "num_attention_heads",
            "num_key_value_heads",
            "head_dim",
            "max_position_embeddings",
        ):
            value = getattr(self, name)
            if (
                not isinstance(value, int)
                or isinstance(value, bool)
                or value < 1
            ):
                fail(
                    name,
                    f"must be a positive integer, got {value!r}",
                    "Use a value >= 1",
                )
        if self.head_dim % 2:
            fail(
                "head_dim",
                f"must be even for RoPE's pairs, got {self.head_dim}",
                "Use an even head size",
            )
        if len(self.layer_types) != self.num_hidden_layers:
            fail(
                "layer_types",
                f"has {len(self.layer_types)} entries but "
                f"num_hidden_layers is {self.num_hidden_layers}",
                "Give one layer type per layer",
            )
        for i, kind in enumerate(self.layer_types):
            if kind not in LAYER_TYPES:
                fail(
                    "layer_types",
                    f"entry {i} is the unknown layer type {kind!r}",
                    f"Use one of {LAYER_TYPES}",
                )
        if self.layer_types[-1] != FULL:
            fail(
                "layer_types",
                "the last layer must be 'full_attention' (every Gemma 4 "
                "ends with a global layer; transformers rewrites it with "
                "only a logged warning)",
                "Make layer_types[-1] 'full_attention'",
            )
        if not isinstance(self.sliding_window, int) or self.sliding_window < 1:
            fail(
                "sliding_window",
                f"must be at least 1, got {self.sliding_window!r}",
                "A window of W lets each query see W keys, itself included",
            )
        if self.num_attention_heads % self.num_key_value_heads:
            fail(
                "num_key_value_heads",
                f"{self.num_attention_heads} query heads cannot be split "
                f"evenly over {self.num_key_value_heads} KV heads",
                "Choose a divisor of num_attention_heads",
            )
        has_full = FULL in self.layer_types
        if has_full:
            if self.global_head_dim is None:
                fail(
                    "global_head_dim",
                    "is missing but the model has global (full_attention) "
                    "layers",
                    "Set it (512 in every released Gemma 4)",
                )
            if (
                not isinstance(self.global_head_dim, int)
                or isinstance(self.global_head_dim, bool)
                or self.global_head_dim < 2
                or self.global_head_dim % 2
            ):
                fail(
                    "global_head_dim",
                    "must be an even positive integer, got "
                    f"{self.global_head_dim!r}",
                    "Use an even head size",
                )
        global_kv = self.num_global_key_value_heads
        if global_kv is not None and (
            not isinstance(global_kv, int)
            or isinstance(global_kv, bool)
            or global_kv < 1
            or self.num_attention_heads % global_kv
        ):
            fail(
                "num_global_key_value_heads",
                f"{self.num_attention_heads} query heads cannot be split "
                f"evenly over {global_kv!r} KV heads",
                "Choose a positive divisor of num_attention_heads, or None "
                "for as many as the sliding layers have",
            )
        if self.global_rope_type not in ("default", "proportional"):
            fail(
                "global_rope_type",
                f"unknown RoPE type {self.global_rope_type!r}",
                "Use 'proportional' (released models) or 'default'",
            )
        if not 0.0 < self.global_partial_rotary_factor <= 1.0:
            fail(
                "global_partial_rotary_factor",
                f"must be in (0, 1], got {self.global_partial_rotary_factor}",
                "Released models rotate 0.25 of the pairs",
            )
        for name in (
            "sliding_rope_theta",
            "global_rope_theta",
            "global_rope_factor",
            "rms_norm_eps",
        ):
            if not getattr(self, name) > 0:
                fail(
                    name,
                    f"must be positive, got {getattr(self, name)}",
                    "Use a positive number",
                )
        if self.hidden_size_per_layer_input < 0:
            fail(
                "hidden_size_per_layer_input",
                "must be >= 0",
                "Use 0 to switch per-layer embeddings off",
            )
        if (
            self.hidden_size_per_layer_input
            and self.vocab_size_per_layer_input < self.vocab_size
        ):
            fail(
                "vocab_size_per_layer_input",
                f"{self.vocab_size_per_layer_input} is smaller than "
                f"vocab_size {self.vocab_size}, so valid token ids would "
                "index past the per-layer table",
                "Make it at least vocab_size",
            )
        if not 0 <= self.num_kv_shared_layers < self.num_hidden_layers:
            fail(
                "num_kv_shared_layers",
                "must be in [0, num_hidden_layers), got "
                f"{self.num_kv_shared_layers}",
                "At least one layer has to compute its own keys and values",
            )
        first_shared = self.first_kv_shared_layer
        for i in range(first_shared, self.num_hidden_layers):
            if self.kv_producer(i) is None:
                fail(
                    "num_kv_shared_layers",
                    f"shared layer {i} is {self.layer_types[i]!r} but no "
                    f"earlier non-shared layer (0..{first_shared - 1}) has "
                    "that type to lend it keys and values",
                    "Share fewer layers or put a layer of that type before "
                    "the shared tail",
                )
        if self.use_double_wide_mlp and not self.num_kv_shared_layers:
            fail(
                "use_double_wide_mlp",
                "only widens KV-shared layers, and there are none",
                "Set num_kv_shared_layers > 0 or switch it off",
            )
        if self.enable_moe_block:
            for name in (
                "num_experts",
                "top_k_experts",
                "moe_intermediate_size",
            ):
                value = getattr(self, name)
                if value is None or value < 1:
                    fail(
                        name,
                        "must be a positive integer when "
                        f"enable_moe_block=True, got {value!r}",
                        "Set the MoE sizes (26B-A4B: 128 experts, top 8, "
                        "width 704)",
                    )
            if self.top_k_experts > self.num_experts:
                fail(
                    "top_k_experts",
                    f"{self.top_k_experts} exceeds num_experts "
                    f"{self.num_experts}",
                    "Route each token to at most num_experts experts",
                )
        if (
            self.final_logit_softcapping is not None
            and not self.final_logit_softcapping > 0
        ):
            fail(
                "final_logit_softcapping",
                "must be positive or None",
                "Released models use 30.0",
            )
        if self.hidden_activation not in ("gelu_pytorch_tanh", "gelu_tanh"):
            fail(
                "hidden_activation",
                f"{self.hidden_activation!r} is not Gemma 4's activation",
                "Use 'gelu_pytorch_tanh'",
            )
        if not self.tie_word_embeddings:
            fail(
                "tie_word_embeddings",
                "untied heads are not supported (every Gemma 4 ties them)",
                "Set tie_word_embeddings=True",
            )

    # ----------------------------------------------- derived per-layer facts
    @property
    def first_kv_shared_layer(self) -> int:
        return self.num_hidden_layers - self.num_kv_shared_layers

    def is_sliding(self, layer: int) -> bool:
        return self.layer_types[layer] == SLIDING

    def is_kv_shared(self, layer: int) -> bool:
        return layer >= self.first_kv_shared_layer

    def kv_producer(self, layer: int) -> int | None:
        """The layer whose keys/values ``layer`` attends to: itself, or for
        a shared layer the *last* non-shared layer of the same type (not
        "the matching earlier layer")."""
        if not self.is_kv_shared(layer):
            return layer
        kind = self.layer_types[layer]
        for j in range(self.first_kv_shared_layer - 1, -1, -1):
            if self.layer_types[j] == kind:
                return j
        return None

    def stores_shared_kv(self, layer: int) -> bool:
        """True for the layers whose keys/values later shared layers read."""
        return any(
            self.kv_producer(j) == layer
            for j in range(self.first_kv_shared_layer, self.num_hidden_layers)
        )

    def head_dim_for(self, layer: int) -> int:
        return (
            self.head_dim
            if self.is_sliding(layer)
            else int(self.global_head_dim)
        )

    def kv_heads_for(self, layer: int) -> int:
        if (
            not self.is_sliding(layer)
            and self.num_global_key_value_heads is not None
        ):
            return self.num_global_key_value_heads
        return self.num_key_value_heads

    def k_eq_v_for(self, layer: int) -> bool:
        return self.attention_k_eq_v and not self.is_sliding(layer)

    def mlp_width_for(self, layer: int) -> int:
        wide = self.use_double_wide_mlp and self.is_kv_shared(layer)
        return self.intermediate_size * (2 if wide else 1)

    @property
    def global_layers(self) -> list[int]:
        return layers_of_type(self.layer_types, FULL)

    @property
    def sliding_layers(self) -> list[int]:
        return layers_of_type(self.layer_types, SLIDING)

    # --------------------------------------------------------------- presets
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "Gemma4Config":
        """A released variant (``"e2b"``, ``"e4b"``, ``"12b"``,
        ``"26b-a4b"``, ``"31b"``) or a tiny CPU twin of one (the same name
        with ``"-tiny"``, plus ``"dense-tiny"``). Keyword overrides are
        applied on top."""
        key = name.lower().replace("_", "-")
        if key not in PRESETS:
            raise ValueError(
                f"Unknown preset {name!r}. Known presets: "
                f"{', '.join(sorted(PRESETS))}"
            )
        values = dict(PRESETS[key])
        values.update(overrides)
        if "num_hidden_layers" in overrides and "layer_types" not in overrides:
            period = 5 if key.startswith("e2b") else 6
            values["layer_types"] = layer_pattern(
                values["num_hidden_layers"], period
            )
        return cls(**values)

    # ------------------------------------------------- Hugging Face interop
    @classmethod
    def from_hf(cls, source: str | Path | dict[str, Any]) -> "Gemma4Config":
        """Read a Hugging Face ``config.json`` (a folder, a file, or an
        already-parsed dict) the way transformers 5.24 reads it.

        Text-only files (``gemma4_text``, ``gemma4_unified_text``) hold the
        decoder settings at the top level, multimodal ones (``gemma4``,
        ``gemma4_unified``) under ``text_config``. The family picks the
        defaults for keys a file omits; the 12B "Unified" decoder has no
        per-layer embeddings or experts (transformers ignores such keys in
        its files), a 1024-token window and 256K positions by default.

        Global layers take ``global_head_dim`` and, with K=V,
        ``num_global_key_value_heads`` (the released files) only when the
        file has no ``per_layer_config``. When it has one (transformers
        5.23+ writes it, ``{}`` included), each layer takes its own
        overrides and otherwise ``head_dim`` and ``num_key_value_heads``.
        Files transformers cannot build, or whose shape this model cannot
        hold (global layers that differ from each other, one RoPE for all
        layer types, RoPE kinds other than default/proportional), raise
        ``ValueError``.
        """
        if isinstance(source, dict):
            raw = source
        else:
            path = Path(source)
            if path.is_dir():
                path = path / "config.json"
            if not path.is_file():
                raise FileNotFoundError(f"No config.json at {path}")
            raw = json.loads(path.read_text())
        text, family = _text_section(raw)
        if text.get("use_bidirectional_attention") == "all":
            raise ValueError(
                "use_bidirectional_attention='all' (encoder-style) is not a "
                "causal decoder; gemma4_lite supports causal text decoding "
                "only"
            )
        if text.get("attention_bias"):
            raise ValueError(
                "attention_bias=True is not part of any Gemma 4; gemma4_lite "
                "has no attention biases"
            )

        unified = family == "gemma4_unified"
        if unified:
            defaults = UNIFIED_TRANSFORMERS_DEFAULTS
        else:
            defaults = TRANSFORMERS_DEFAULTS
        ignored = _NOT_FILE_KEYS | (_NOT_IN_UNIFIED if unified else set())
        known = {f.name for f in fields(cls)} - ignored
        # A key the file leaves out means transformers' default, which is
        # not always our preset default
        values = {
            **defaults,
            **{k: v for k, v in text.items() if k in known and v is not None},
        }
        if "layer_types" not in values:
            values["layer_types"] = layer_pattern(
                values["num_hidden_layers"], 6
            )
        values.update(_attention_geometry(text, values, defaults))
        values.update(_rope_fields(text, values["layer_types"]))
        if text.get("final_logit_softcapping") is None:
            values["final_logit_softcapping"] = None
        if (
            not unified
            and "hidden_size_per_layer_input" in text
            and text["hidden_size_per_layer_input"] is None
        ):
            values["hidden_size_per_layer_input"] = 0
        return cls(**values)

    def to_hf_dict(self) -> dict[str, Any]:
        """The text-only ``config.json`` that transformers'
        ``Gemma4ForCausalLM`` reads back to the same model (the 12B
        decoder included: ``Gemma4UnifiedForCausalLM`` builds the same
        modules)."""
        values = asdict(self)
        for key in _ROPE_FIELDS:
            values.pop(key)
        full_rope: dict[str, Any] = {
            "rope_type": self.global_rope_type,
            "rope_theta": self.global_rope_theta,
            "partial_rotary_factor": self.global_partial_rotary_factor,
        }
        if self.global_rope_factor != 1.0:
            full_rope["factor"] = self.global_rope_factor
        values["rope_parameters"] = {
            SLIDING: {
                "rope_type": "default",
                "rope_theta": self.sliding_rope_theta,
            },
            FULL: full_rope,
        }
        if (
            self.num_global_key_value_heads is not None
            and not self.attention_k_eq_v
        ):
            # transformers drops the num_global_key_value_heads keyword
            # without K=V; a per_layer_config gives the global layers their
            # KV heads anyway (and then global_head_dim is ignored too)
            del values["global_head_dim"], values["num_global_key_value_heads"]
            values["per_layer_config"] = {
                str(i): {
                    "head_dim": self.global_head_dim,
                    "num_key_value_heads": self.num_global_key_value_heads,
                }
                for i in self.global_layers
            }
        values.update(
            model_type="gemma4_text",
            architectures=["Gemma4ForCausalLM"],
            attention_bias=False,
        )
        return values

    def replace(self, **changes: Any) -> "Gemma4Config":
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


# ------------------------------------------------- reading transformers files
# model_type of a text-only file -> family; multimodal files name the family
TEXT_MODEL_TYPES = {
    None: "gemma4",
    "gemma4_text": "gemma4",
    "gemma4_unified_text": "gemma4_unified",
}
MULTIMODAL_MODEL_TYPES = ("gemma4", "gemma4_unified")

# Our RoPE fields: transformers files spell them as rope_parameters
_ROPE_FIELDS = (
    "sliding_rope_theta",
    "global_rope_type",
    "global_rope_theta",
    "global_partial_rotary_factor",
    "global_rope_factor",
)
# Fields from_hf never copies from a file by name: RoPE fields (not
# transformers keys) and the global geometry (resolved by its own rule)
_NOT_FILE_KEYS = {
    *_ROPE_FIELDS,
    "global_head_dim",
    "num_global_key_value_heads",
}
# Gemma4UnifiedTextConfig has no such fields and its model never reads them
_NOT_IN_UNIFIED = {
    "hidden_size_per_layer_input",
    "vocab_size_per_layer_input",
    "enable_moe_block",
    "num_experts",
    "top_k_experts",
    "moe_intermediate_size",
}
# What each layer of a Gemma 4 may override in transformers' per_layer_config
_PER_LAYER_KEYS = ("head_dim", "num_key_value_heads")


def _text_section(raw: dict[str, Any]) -> tuple[dict[str, Any], str]:
    """The decoder's settings and the family (``"gemma4"`` or
    ``"gemma4_unified"``) whose defaults fill the gaps."""
    outer = raw.get("model_type")
    if outer in MULTIMODAL_MODEL_TYPES:
        # transformers builds the family's text config from text_config
        # (defaults when it is absent), whatever model_type it names
        text = raw.get("text_config") or {}
        if not isinstance(text, dict):
            raise ValueError("config text_config must be a JSON object")
        return text, outer
    if outer is None and isinstance(raw.get("text_config"), dict):
        raw = raw["text_config"]
        outer = raw.get("model_type")
    if outer not in TEXT_MODEL_TYPES:
        raise ValueError(
            f"config model_type is {outer!r}, not a Gemma 4 text decoder "
            "('gemma4_text' or 'gemma4_unified_text')"
        )
    return raw, TEXT_MODEL_TYPES[outer]


def _attention_geometry(
    text: dict[str, Any],
    values: dict[str, Any],
    defaults: dict[str, Any],
) -> dict[str, Any]:
    """Head size and KV heads of each layer type, as transformers 5.24
    resolves them from the file (``Gemma4TextConfig.__post_init__`` and
    ``per_layer_config``), folded back into our fields."""
    if "per_layer_config" not in text:
        # The released layout: the keywords become per-layer overrides of
        # every global layer, the KV heads only with K=V
        return {
            "global_head_dim": text.get("global_head_dim", 512),
            "num_global_key_value_heads": (
                text.get("num_global_key_value_heads")
                if values["attention_k_eq_v"]
                else None
            ),
        }
    layer_types = values["layer_types"]
    overrides = _per_layer_overrides(text, values, defaults)

    def shape(layer: int) -> tuple[Any, Any]:
        own = overrides.get(layer, {})
        return (
            own.get("head_dim", values["head_dim"]),
            own.get("num_key_value_heads", values["num_key_value_heads"]),
        )

    shapes = {}
    for kind in LAYER_TYPES:
        layers = layers_of_type(layer_types, kind)
        if not layers:
            continue
        if len({shape(i) for i in layers}) > 1:
            found = ", ".join(
                f"layer {i}: head_dim {shape(i)[0]}, {shape(i)[1]} KV heads"
                for i in layers
            )
            raise ValueError(
                f"per_layer_config gives the {kind} layers different "
                f"shapes ({found}); transformers 5.24 refuses this too "
                "(its rotary embedding needs one shape per layer type) and "
                "gemma4_lite has one head size and KV-head count per layer "
                "type"
            )
        shapes[kind] = shape(layers[0])
    out: dict[str, Any] = {}
    if SLIDING in shapes:
        out["head_dim"], out["num_key_value_heads"] = shapes[SLIDING]
    if FULL in shapes:
        sliding_kv = out.get(
            "num_key_value_heads", values["num_key_value_heads"]
        )
        first_global = layers_of_type(layer_types, FULL)[0]
        explicit = "num_key_value_heads" in overrides.get(first_global, {})
        out["global_head_dim"], global_kv = shapes[FULL]
        out["num_global_key_value_heads"] = (
            global_kv if explicit or global_kv != sliding_kv else None
        )
    return out


def _per_layer_overrides(
    text: dict[str, Any],
    values: dict[str, Any],
    defaults: dict[str, Any],
) -> dict[int, dict[str, Any]]:
    """The file's ``per_layer_config`` by layer index, keeping only the
    head size and KV heads (the only things a Gemma 4 layer can change)."""
    given = text["per_layer_config"] or {}  # null reads like {}
    if not isinstance(given, dict):
        raise ValueError(
            "per_layer_config must map layer indices to overrides, got "
            f"{given!r}"
        )
    num_layers = values["num_hidden_layers"]
    overrides: dict[int, dict[str, Any]] = {}
    for key, override in given.items():
        try:
            layer = int(key)
        except (TypeError, ValueError):
            raise ValueError(
                f"per_layer_config key {key!r} is not a layer index"
            ) from None
        if not 0 <= layer < num_layers:
            raise ValueError(
                f"per_layer_config names layer {layer}, but the model has "
                f"layers 0..{num_layers - 1}"
            )
        if not isinstance(override, dict):
            raise ValueError(
                f"per_layer_config[{key!r}] must be an object of overrides"
            )
        kept = {}
        for name, value in override.items():
            if name in _PER_LAYER_KEYS:
                kept[name] = value
            elif name == "skip" and not value:
                continue  # an empty skip list changes nothing
            elif name != "skip" and value == text.get(
                name, defaults.get(name, _ABSENT)
            ):
                continue  # transformers drops overrides equal to the global
            else:
                raise ValueError(
                    f"per_layer_config overrides {name!r} on layer {layer}; "
                    "a Gemma 4 layer can only change head_dim and "
                    "num_key_value_heads (transformers' Gemma 4 cannot "
                    "build or ignores anything else)"
                )
        overrides[layer] = kept
    return overrides


_ABSENT = object()


def _rope_fields(
    text: dict[str, Any], layer_types: list[str]
) -> dict[str, Any]:
    """Our RoPE fields from ``rope_parameters``, read like transformers
    5.24: one entry per layer type, ``rope_type`` or else the legacy
    ``type`` (``validate_rope`` renames it), and where an entry leaves out
    ``rope_theta`` / ``partial_rotary_factor`` the top-level keys of the
    same name, which ``standardize_rope_params`` copies in while building a
    proportional RoPE."""
    rope = text.get("rope_parameters")
    if rope is None:  # transformers' default: the released settings
        return dict(
            sliding_rope_theta=10_000.0,
            global_rope_type="proportional",
            global_rope_theta=1_000_000.0,
            global_partial_rotary_factor=0.25,
            global_rope_factor=1.0,
        )
    kinds = sorted(set(layer_types))
    if not isinstance(rope, dict) or not any(k in rope for k in LAYER_TYPES):
        raise ValueError(
            "rope_parameters is one flat entry for every layer; Gemma 4 "
            "needs one per layer type ('sliding_attention', "
            "'full_attention'), and transformers 5.24 fails on a flat one "
            "too (KeyError)"
        )
    entries = {}
    for kind in kinds:
        entry = rope.get(kind)
        if not isinstance(entry, dict):
            raise ValueError(
                f"rope_parameters has no {kind!r} entry, but the model has "
                f"{kind} layers (transformers 5.24 fails on this too)"
            )
        entries[kind] = dict(
            entry, rope_type=entry.get("rope_type", entry.get("type"))
        )
    proportional = any(
        e["rope_type"] == "proportional" for e in entries.values()
    )
    out: dict[str, Any] = {}
    for kind, entry in entries.items():
        rope_type = entry["rope_type"] or "default"
        theta = entry.get("rope_theta")
        if theta is None and proportional and rope_type == "default":
            theta = text.get("rope_theta")
        if theta is None:
            raise ValueError(
                f"rope_parameters[{kind!r}] has no rope_theta (transformers "
                "5.24 cannot build the RoPE without one either)"
            )
        if kind == SLIDING:
            if rope_type != "default":
                raise ValueError(
                    f"sliding layers use RoPE type {rope_type!r}; Gemma 4 "
                    "(and gemma4_lite) use 'default' there"
                )
            out["sliding_rope_theta"] = float(theta)
            continue
        if rope_type not in ("default", "proportional"):
            raise ValueError(
                f"global layers use RoPE type {rope_type!r}; gemma4_lite "
                "implements 'proportional' (released models) and 'default'"
            )
        rotary = entry.get("partial_rotary_factor")
        if rotary is None and rope_type == "proportional":
            rotary = text.get("partial_rotary_factor")
        out.update(
            global_rope_type=rope_type,
            global_rope_theta=float(theta),
            global_partial_rotary_factor=float(
                1.0 if rotary is None else rotary
            ),
            global_rope_factor=float(entry.get("factor", 1.0)),
        )
    return out


# transformers' Gemma4TextConfig defaults (5.24.0), applied by from_hf to
# keys a config file omits.
TRANSFORMERS_DEFAULTS: dict[str, Any] = dict(
    vocab_size=262_144,
    hidden_size=2304,
    intermediate_size=9216,
    num_hidden_layers=30,
    num_attention_heads=8,
    num_key_value_heads=4,
    head_dim=256,
    max_position_embeddings=131_072,
    rms_norm_eps=1e-6,
    sliding_window=512,
    final_logit_softcapping=None,
    vocab_size_per_layer_input=262_144,
    hidden_size_per_layer_input=256,
    attention_k_eq_v=False,
    num_kv_shared_layers=0,
    enable_moe_block=False,
    use_double_wide_mlp=False,
    tie_word_embeddings=True,
    pad_token_id=0,
    bos_token_id=2,
    eos_token_id=1,
)
# Gemma4UnifiedTextConfig (5.24.0) differs in two defaults and has neither
# per-layer embeddings nor experts.
UNIFIED_TRANSFORMERS_DEFAULTS: dict[str, Any] = dict(
    TRANSFORMERS_DEFAULTS,
    max_position_embeddings=262_144,
    sliding_window=1024,
    hidden_size_per_layer_input=0,
    enable_moe_block=False,
)

PRESETS: dict[str, dict[str, Any]] = {
    # Released text decoders (HF convert_gemma4_weights.py _VARIANTS; see
    # reference/gemma4_facts.md §1 and, for the 12B "Unified", §10).
    "e2b": dict(
        hidden_size=1536,
        intermediate_size=6144,
        num_hidden_layers=35,
        num_attention_heads=8,
        num_key_value_heads=1,
        layer_types=layer_pattern(35, 5),
        sliding_window=512,
        hidden_size_per_layer_input=256,
        num_kv_shared_layers=20,
        use_double_wide_mlp=True,
        max_position_embeddings=131_072,
    ),
    "e4b": dict(
        hidden_size=2560,
        intermediate_size=10240,
        num_hidden_layers=42,
        num_attention_heads=8,
        num_key_value_heads=2,
        layer_types=layer_pattern(42, 6),
        sliding_window=512,
        hidden_size_per_layer_input=256,
        num_kv_shared_layers=18,
        max_position_embeddings=131_072,
    ),
    # Dense, no PLE, no KV sharing; global layers 512 wide with a single
    # KV head and K=V. transformers: Gemma4UnifiedForCausalLM.
    "12b": dict(
        hidden_size=3840,
        intermediate_size=15360,
        num_hidden_layers=48,
        num_attention_heads=16,
        num_key_value_heads=8,
        num_global_key_value_heads=1,
        attention_k_eq_v=True,
        layer_types=layer_pattern(48, 6),
        sliding_window=1024,
        max_position_embeddings=262_144,
    ),
    "31b": dict(
        hidden_size=5376,
        intermediate_size=21504,
        num_hidden_layers=60,
        num_attention_heads=32,
        num_key_value_heads=16,
        num_global_key_value_heads=4,
        attention_k_eq_v=True,
        layer_types=layer_pattern(60, 6),
        sliding_window=1024,
        max_position_embeddings=262_144,
    ),
    "26b-a4b": dict(
        hidden_size=2816,
        intermediate_size=2112,
        num_hidden_layers=30,
        num_attention_heads=16,
        num_key_value_heads=8,
        num_global_key_value_heads=2,
        attention_k_eq_v=True,
        layer_types=layer_pattern(30, 6),
        sliding_window=1024,
        enable_moe_block=True,
        num_experts=128,
        top_k_experts=8,
        moe_intermediate_size=704,
        max_position_embeddings=262_144,
    ),
}

# Tiny twins: the same structure (pattern, sharing, K=V, MoE beside the dense
# MLP) at a size that runs a forward pass on a laptop CPU in milliseconds.
# Windows are small so short prompts already cross them.
_TINY_COMMON: dict[str, Any] = dict(
    vocab_size=512,
    vocab_size_per_layer_input=512,
    hidden_size=64,
    num_attention_heads=4,
    head_dim=16,
    global_head_dim=32,
    sliding_window=8,
    max_position_embeddings=2048,
)
PRESETS.update(
    {
        "e2b-tiny": dict(
            _TINY_COMMON,
            intermediate_size=128,
            num_hidden_layers=10,
            num_key_value_heads=1,
            layer_types=layer_pattern(10, 5),
            hidden_size_per_layer_input=16,
            num_kv_shared_layers=4,
            use_double_wide_mlp=True,
        ),
        "e4b-tiny": dict(
            _TINY_COMMON,
            intermediate_size=128,
            num_hidden_layers=12,
            num_key_value_heads=2,
            layer_types=layer_pattern(12, 6),
            hidden_size_per_layer_input=16,
            num_kv_shared_layers=4,
        ),
        # Two query heads per KV head on sliding layers and all of them on
        # one K=V head on global layers (12B: 16 / 8 / 1), two global
        # layers. No per-layer embeddings, so no PLE vocabulary either
        # (gemma4_unified files have none to read back).
        "12b-tiny": dict(
            {
                k: v
                for k, v in _TINY_COMMON.items()
                if k != "vocab_size_per_layer_input"
            },
            intermediate_size=256,
            num_hidden_layers=12,
            num_attention_heads=8,
            num_key_value_heads=4,
            num_global_key_value_heads=1,
            attention_k_eq_v=True,
            layer_types=layer_pattern(12, 6),
        ),
        "31b-tiny": dict(
            _TINY_COMMON,
            intermediate_size=256,
            num_hidden_layers=6,
            num_key_value_heads=2,
            num_global_key_value_heads=1,
            attention_k_eq_v=True,
            layer_types=layer_pattern(6, 6),
        ),
        "26b-a4b-tiny": dict(
            _TINY_COMMON,
            intermediate_size=96,
            num_hidden_layers=6,
            num_key_value_heads=2,
            num_global_key_value_heads=1,
            attention_k_eq_v=True,
            layer_types=layer_pattern(6, 6),
            enable_moe_block=True,
            num_experts=16,
            top_k_experts=4,
            moe_intermediate_size=32,
        ),
        "dense-tiny": dict(
            _TINY_COMMON,
            intermediate_size=256,
            num_hidden_layers=6,
            num_key_value_heads=2,
            layer_types=layer_pattern(6, 6),
        ),
    }
)

# In order of size, as the model card lists them
RELEASED = ("e2b", "e4b", "12b", "26b-a4b", "31b")
