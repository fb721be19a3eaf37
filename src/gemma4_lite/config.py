"""Hyperparameters of a Gemma 4 text decoder, in one dataclass with named presets.

Field names follow the Hugging Face ``Gemma4TextConfig`` (and the released ``config.json`` files), so a
reader can hold the two side by side. Chapter: "Gemma 4 at a glance".
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
    """``period - 1`` sliding layers then one global layer, repeated (period 5 is 4:1, period 6 is 5:1)."""
    return [
        FULL if (i + 1) % period == 0 else SLIDING for i in range(num_layers)
    ]


@dataclass
class Gemma4Config:
    """Everything the four released Gemma 4 text decoders need.

    Global ("full_attention") layers have their own head size (``global_head_dim``), their own KV-head
    count when keys equal values (``num_global_key_value_heads`` with ``attention_k_eq_v``), and their own
    RoPE ("proportional": only ``global_partial_rotary_factor`` of the frequency pairs rotate).
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

    # ------------------------------------------------------------------ validation
    def validate(self) -> None:
        """Raise ``ValueError`` naming the field and the fix for any config the model cannot honour."""

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
                f"has {len(self.layer_types)} entries but num_hidden_layers is "
                f"{self.num_hidden_layers}",
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
                "the last layer must be 'full_attention' (every Gemma 4 ends with a global "
                "layer; transformers rewrites it with only a logged warning)",
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
                f"{self.num_attention_heads} query heads cannot be split evenly over "
                f"{self.num_key_value_heads} KV heads",
                "Choose a divisor of num_attention_heads",
            )
        has_full = FULL in self.layer_types
        if has_full:
            if self.global_head_dim is None:
                fail(
                    "global_head_dim",
                    "is missing but the model has global (full_attention) layers",
                    "Set it (512 in every released Gemma 4)",
                )
            if self.global_head_dim < 2 or self.global_head_dim % 2:
                fail(
                    "global_head_dim",
                    f"must be an even positive integer, got {self.global_head_dim}",
                    "Use an even head size",
                )
        if self.num_global_key_value_heads is not None:
            if not self.attention_k_eq_v:
                fail(
                    "num_global_key_value_heads",
                    "is only used together with attention_k_eq_v=True "
                    "(transformers ignores it otherwise)",
                    "Set attention_k_eq_v=True or drop the field",
                )
            if (
                self.num_global_key_value_heads < 1
                or self.num_attention_heads % self.num_global_key_value_heads
            ):
                fail(
                    "num_global_key_value_heads",
                    f"{self.num_attention_heads} query heads cannot be split "
                    f"evenly over {self.num_global_key_value_heads} KV heads",
                    "Choose a positive divisor of num_attention_heads",
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
                f"{self.vocab_size_per_layer_input} is smaller than vocab_size "
                f"{self.vocab_size}, so valid token ids would index past the per-layer table",
                "Make it at least vocab_size",
            )
        if not 0 <= self.num_kv_shared_layers < self.num_hidden_layers:
            fail(
                "num_kv_shared_layers",
                f"must be in [0, num_hidden_layers), got {self.num_kv_shared_layers}",
                "At least one layer has to compute its own keys and values",
            )
        first_shared = self.first_kv_shared_layer
        for i in range(first_shared, self.num_hidden_layers):
            if self.kv_producer(i) is None:
                fail(
                    "num_kv_shared_layers",
                    f"shared layer {i} is {self.layer_types[i]!r} but no earlier "
                    f"non-shared layer (0..{first_shared - 1}) has that type to lend it keys and values",
                    "Share fewer layers or put a layer of that type before the shared tail",
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
                        f"must be a positive integer when enable_moe_block=True, got {value!r}",
                        "Set the MoE sizes (26B-A4B: 128 experts, top 8, width 704)",
                    )
            if self.top_k_experts > self.num_experts:
                fail(
                    "top_k_experts",
                    f"{self.top_k_experts} exceeds num_experts {self.num_experts}",
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

    # ------------------------------------------------------------------ derived per-layer facts
    @property
    def first_kv_shared_layer(self) -> int:
        return self.num_hidden_layers - self.num_kv_shared_layers

    def is_sliding(self, layer: int) -> bool:
        return self.layer_types[layer] == SLIDING

    def is_kv_shared(self, layer: int) -> bool:
        return layer >= self.first_kv_shared_layer

    def kv_producer(self, layer: int) -> int | None:
        """The layer whose keys/values ``layer`` attends to: itself, or for a shared layer the *last*
        non-shared layer of the same type (not "the matching earlier layer")."""
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
            and self.attention_k_eq_v
            and self.num_global_key_value_heads
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

    # ------------------------------------------------------------------ presets
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> "Gemma4Config":
        """A released variant (``"e2b"``, ``"e4b"``, ``"26b-a4b"``, ``"31b"``) or a tiny CPU twin of one
        (the same name with ``"-tiny"``, plus ``"dense-tiny"``). Keyword overrides are applied on top."""
        key = name.lower().replace("_", "-")
        if key not in PRESETS:
            raise ValueError(
                f"Unknown preset {name!r}. Known presets: {', '.join(sorted(PRESETS))}"
            )
        values = dict(PRESETS[key])
        values.update(overrides)
        if "num_hidden_layers" in overrides and "layer_types" not in overrides:
            period = 5 if key.startswith("e2b") else 6
            values["layer_types"] = layer_pattern(
                values["num_hidden_layers"], period
            )
        return cls(**values)

    # ------------------------------------------------------------------ Hugging Face interop
    @classmethod
    def from_hf(cls, source: str | Path | dict[str, Any]) -> "Gemma4Config":
        """Read a Hugging Face ``config.json`` (a folder, a file, or an already-parsed dict).

        Multimodal files keep the decoder settings under ``text_config``; text-only files hold them at the
        top level. Both the released spelling (``global_head_dim``, ``num_global_key_value_heads``) and the
        ``per_layer_config`` that newer transformers write are understood.
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
        text = (
            raw.get("text_config", raw)
            if isinstance(raw.get("text_config"), dict)
            else raw
        )
        model_type = text.get("model_type")
        if model_type not in (None, "gemma4_text", "gemma4"):
            raise ValueError(
                f"config model_type is {model_type!r}, not a Gemma 4 text decoder ('gemma4_text')"
            )
        if text.get("use_bidirectional_attention") == "all":
            raise ValueError(
                "use_bidirectional_attention='all' (encoder-style) is not a causal decoder; "
                "gemma4_lite supports causal text decoding only"
            )
        if text.get("attention_bias"):
            raise ValueError(
                "attention_bias=True is not part of any Gemma 4; gemma4_lite has no attention biases"
            )

        known = {f.name for f in fields(cls)}
        # A key the file leaves out means transformers' default, which is not always our preset default
        values = {
            **TRANSFORMERS_DEFAULTS,
            **{k: v for k, v in text.items() if k in known and v is not None},
        }
        num_layers = values["num_hidden_layers"]
        if "layer_types" not in values:
            values["layer_types"] = layer_pattern(num_layers, 6)
        for key, value in (text.get("per_layer_config") or {}).items():
            layer = int(key)
            if values["layer_types"][layer] != FULL:
                raise ValueError(
                    f"per_layer_config overrides layer {layer}, which is not a global layer; "
                    "only global layers have their own geometry in Gemma 4"
                )
            if "head_dim" in value:
                values["global_head_dim"] = value["head_dim"]
            if "num_key_value_heads" in value:
                values["num_global_key_value_heads"] = value[
                    "num_key_value_heads"
                ]
        if FULL in values["layer_types"] and "global_head_dim" not in values:
            values["global_head_dim"] = (
                512  # the transformers default when the file omits it
            )
        if not values.get("attention_k_eq_v"):
            values.pop(
                "num_global_key_value_heads", None
            )  # transformers ignores it without K=V
        rope = text.get("rope_parameters") or {}
        if SLIDING in rope:
            values["sliding_rope_theta"] = float(
                rope[SLIDING].get("rope_theta", 10_000.0)
            )
            if rope[SLIDING].get("rope_type", "default") != "default":
                raise ValueError(
                    f"sliding layers use RoPE type {rope[SLIDING]['rope_type']!r}; Gemma 4 "
                    "uses 'default' there"
                )
        if FULL in rope:
            values["global_rope_type"] = rope[FULL].get("rope_type", "default")
            values["global_rope_theta"] = float(
                rope[FULL].get("rope_theta", 1_000_000.0)
            )
            values["global_partial_rotary_factor"] = float(
                rope[FULL].get("partial_rotary_factor", 1.0)
            )
            values["global_rope_factor"] = float(rope[FULL].get("factor", 1.0))
        if text.get("final_logit_softcapping") is None:
            values["final_logit_softcapping"] = None
        if (
            "hidden_size_per_layer_input" in text
            and text["hidden_size_per_layer_input"] is None
        ):
            values["hidden_size_per_layer_input"] = 0
        return cls(**values)

    def to_hf_dict(self) -> dict[str, Any]:
        """The text-only ``config.json`` that transformers' ``Gemma4ForCausalLM`` reads."""
        values = asdict(self)
        for key in (
            "sliding_rope_theta",
            "global_rope_type",
            "global_rope_theta",
            "global_partial_rotary_factor",
            "global_rope_factor",
        ):
            values.pop(key)
        full_rope: dict[str, Any] = {
            "rope_type": self.global_rope_type,
            "rope_theta": self.global_rope_theta,
        }
        if self.global_rope_type == "proportional":
            full_rope["partial_rotary_factor"] = (
                self.global_partial_rotary_factor
            )
            if self.global_rope_factor != 1.0:
                full_rope["factor"] = self.global_rope_factor
        values["rope_parameters"] = {
            SLIDING: {
                "rope_type": "default",
                "rope_theta": self.sliding_rope_theta,
            },
            FULL: full_rope,
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


# transformers' Gemma4TextConfig defaults (5.24.0), applied by from_hf to keys a config file omits.
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

PRESETS: dict[str, dict[str, Any]] = {
    # Released text decoders (HF convert_gemma4_weights.py _VARIANTS; see reference/gemma4_facts.md §1).
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

# Tiny twins: the same structure (pattern, sharing, K=V, MoE beside the dense MLP) at a size that runs a
# forward pass on a laptop CPU in milliseconds. Windows are small so short prompts already cross them.
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

RELEASED = ("e2b", "e4b", "26b-a4b", "31b")
