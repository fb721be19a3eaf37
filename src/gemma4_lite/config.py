"""Hyperparameters of a Gemma 4 text decoder: one dataclass, named presets.

Chapter: "Gemma 4 at a glance". Field names are those of Hugging Face's
``Gemma4TextConfig`` and the released ``config.json`` files, so that the two
can be read side by side; reading and writing those files is the separate
concern of :mod:`gemma4_lite.hf_config`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

SLIDING = "sliding_attention"
FULL = "full_attention"
LAYER_TYPES = (SLIDING, FULL)


def layers_of_type(layer_types: Sequence[str], kind: str) -> list[int]:
    return [i for i, t in enumerate(layer_types) if t == kind]


def layer_pattern(num_layers: int, period: int) -> list[str]:
    """``period - 1`` sliding layers, then one global layer, repeated: most
    layers pay only for a window (period 5 is 4:1, period 6 is 5:1)."""
    return [
        FULL if (i + 1) % period == 0 else SLIDING for i in range(num_layers)
    ]


# fmt: off
# Fields that must be positive integers, and those of an MoE block
_POSITIVE_INTS = ("vocab_size", "hidden_size", "intermediate_size",
                  "num_hidden_layers", "num_attention_heads",
                  "num_key_value_heads", "head_dim", "global_head_dim",
                  "sliding_window", "max_position_embeddings")
_MOE_SIZES = ("num_experts", "top_k_experts", "moe_intermediate_size")
# fmt: on


def _positive_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


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
    ``gemma4_lite.book.export.to_hf_dict`` writes such a ``per_layer_config``
    when the keyword would be ignored.
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

    def validate(self) -> None:
        """A config the model cannot honour fails here, naming the field and
        the fix, rather than as a shape error deep in a forward pass."""
        for name, bad, problem, fix in self._checks():
            if bad:
                raise ValueError(f"Gemma4Config.{name}: {problem}. {fix}")

    def _checks(self) -> Iterator[tuple[str, Any, str, str]]:
        """``(field, is it wrong, problem, fix)`` one at a time, so that each
        check may rely on the ones before it having passed."""
        types, heads = self.layer_types, self.num_attention_heads
        shared, layers = self.num_kv_shared_layers, self.num_hidden_layers
        # fmt: off
        moe = self.enable_moe_block
        for name in _POSITIVE_INTS + (_MOE_SIZES if moe else ()):
            value = getattr(self, name)
            yield (name, not _positive_int(value),
                   f"must be a positive integer, got {value!r}",
                   "Use a value >= 1")
        for name in ("head_dim", "global_head_dim"):
            size = getattr(self, name)
            yield (name, size % 2, f"must be even, got {size}",
                   "Use an even head size: RoPE rotates pairs of features")
        for name in ("num_key_value_heads", "num_global_key_value_heads"):
            kv = getattr(self, name)  # None: as many as the sliding layers
            fits = kv is None or (_positive_int(kv) and heads % kv == 0)
            yield (name, not fits, f"{heads} query heads cannot be split "
                   f"evenly over {kv!r} KV heads",
                   "Choose a positive divisor of num_attention_heads")
        yield ("layer_types", len(types) != layers,
               f"has {len(types)} entries but num_hidden_layers is {layers}",
               "Give one layer type per layer")
        for i, kind in enumerate(types):
            yield ("layer_types", kind not in LAYER_TYPES,
                   f"entry {i} is the unknown layer type {kind!r}",
                   f"Use one of {LAYER_TYPES}")
        yield ("layer_types", types[-1] != FULL,
               "the last layer must be 'full_attention' (every Gemma 4 ends "
               "with a global layer; transformers rewrites it with only a "
               "logged warning)", "Make layer_types[-1] 'full_attention'")
        rope = self.global_rope_type
        yield ("global_rope_type", rope not in ("default", "proportional"),
               f"unknown RoPE type {rope!r}",
               "Use 'proportional' (released models) or 'default'")
        rotary = self.global_partial_rotary_factor
        yield ("global_partial_rotary_factor", not 0.0 < rotary <= 1.0,
               f"must be in (0, 1], got {rotary}",
               "Released models rotate 0.25 of the pairs")
        for name in ("sliding_rope_theta", "global_rope_theta",
                     "global_rope_factor", "rms_norm_eps"):
            value = getattr(self, name)
            yield (name, not value > 0, f"must be positive, got {value}",
                   "Use a positive number")
        ple, vocab = self.hidden_size_per_layer_input, self.vocab_size
        yield ("hidden_size_per_layer_input", ple < 0, "must be >= 0",
               "Use 0 to switch per-layer embeddings off")
        ple_vocab = self.vocab_size_per_layer_input
        yield ("vocab_size_per_layer_input", ple and ple_vocab < vocab,
               f"{ple_vocab} is smaller than vocab_size {vocab}, so valid "
               "token ids would index past the per-layer table",
               "Make it at least vocab_size")
        yield ("num_kv_shared_layers", not 0 <= shared < layers,
               f"must be in [0, num_hidden_layers), got {shared}",
               "At least one layer has to compute its own keys and values")
        first = self.first_kv_shared_layer
        for i in range(first, layers):
            yield ("num_kv_shared_layers", self.kv_producer(i) is None,
                   f"shared layer {i} is {types[i]!r} but no earlier "
                   f"non-shared layer (0..{first - 1}) has that type to "
                   "lend it keys and values", "Share fewer layers or put a "
                   "layer of that type before the shared tail")
        yield ("use_double_wide_mlp", self.use_double_wide_mlp and not shared,
               "only widens KV-shared layers, and there are none",
               "Set num_kv_shared_layers > 0 or switch it off")
        top_k, experts = self.top_k_experts, self.num_experts
        yield ("top_k_experts", moe and top_k > experts,
               f"{top_k} exceeds num_experts {experts}",
               "Route each token to at most num_experts experts")
        cap, act = self.final_logit_softcapping, self.hidden_activation
        yield ("final_logit_softcapping", cap is not None and not cap > 0,
               "must be positive or None", "Released models use 30.0")
        yield ("hidden_activation",
               act not in ("gelu_pytorch_tanh", "gelu_tanh"),
               f"{act!r} is not Gemma 4's activation",
               "Use 'gelu_pytorch_tanh'")
        yield ("tie_word_embeddings", not self.tie_word_embeddings,
               "untied heads are not supported (every Gemma 4 ties them)",
               "Set tie_word_embeddings=True")
        # fmt: on

    # ----------------------------------------------- derived per-layer facts
    @property
    def first_kv_shared_layer(self) -> int:
        return self.num_hidden_layers - self.num_kv_shared_layers

    @property
    def global_layers(self) -> list[int]:
        return layers_of_type(self.layer_types, FULL)

    @property
    def sliding_layers(self) -> list[int]:
        return layers_of_type(self.layer_types, SLIDING)

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
        unshared = self.layer_types[: self.first_kv_shared_layer]
        lenders = layers_of_type(unshared, self.layer_types[layer])
        return lenders[-1] if lenders else None

    def stores_shared_kv(self, layer: int) -> bool:
        """True for a layer whose keys and values later KV-shared layers
        read, so the forward pass has to hand them on."""
        shared = range(self.first_kv_shared_layer, self.num_hidden_layers)
        return any(self.kv_producer(j) == layer for j in shared)

    def head_dim_for(self, layer: int) -> int:
        sliding = self.is_sliding(layer)
        return self.head_dim if sliding else int(self.global_head_dim)

    def kv_heads_for(self, layer: int) -> int:
        global_kv = self.num_global_key_value_heads
        if self.is_sliding(layer) or global_kv is None:
            return self.num_key_value_heads
        return global_kv

    def k_eq_v_for(self, layer: int) -> bool:
        return self.attention_k_eq_v and not self.is_sliding(layer)

    def mlp_width_for(self, layer: int) -> int:
        wide = self.use_double_wide_mlp and self.is_kv_shared(layer)
        return self.intermediate_size * (2 if wide else 1)

    # ----------------------------------------------- presets and HF files
    @classmethod
    def from_preset(cls, name: str, **overrides: Any) -> Gemma4Config:
        """A released variant (``"e2b"``, ``"e4b"``, ``"12b"``,
        ``"26b-a4b"``, ``"31b"``) or a tiny CPU twin of one (the same name
        with ``"-tiny"``, plus ``"dense-tiny"``), with keyword overrides: the
        book's experiments start from a real shape and change one thing."""
        key = name.lower().replace("_", "-")
        if key not in PRESETS:
            known = "Known presets: " + ", ".join(sorted(PRESETS))
            raise ValueError(f"Unknown preset {name!r}. {known}")
        values = {**PRESETS[key], **overrides}
        if "layer_types" not in overrides:
            # a deeper or shallower twin keeps the preset's interleaving
            period = PRESETS[key]["layer_types"].index(FULL) + 1
            layers = values["num_hidden_layers"]
            values["layer_types"] = layer_pattern(layers, period)
        return cls(**values)

    @classmethod
    def from_hf(cls, source: str | Path | dict[str, Any]) -> Gemma4Config:
        """A Hugging Face ``config.json`` (a folder, a file or a parsed dict)
        read exactly as transformers 5.24 reads it, so that a checkpoint
        loads into the model transformers builds from it; the rules are in
        :mod:`gemma4_lite.hf_config`."""
        from .hf_config import config_values  # it imports this module

        return cls(**config_values(source))

    def replace(self, **changes: Any) -> Gemma4Config:
        """A copy with some fields changed (validated again)."""
        return replace(self, **changes)


# fmt: off
def _preset(layers: int, period: int, hidden: int, mlp: int, heads: int,
            kv_heads: int, base: dict[str, Any], **rest: Any) -> dict:
    return dict(base, num_hidden_layers=layers,
                layer_types=layer_pattern(layers, period), hidden_size=hidden,
                intermediate_size=mlp, num_attention_heads=heads,
                num_key_value_heads=kv_heads, **rest)


# E2B and E4B: per-layer embeddings and a KV-shared tail
_EDGE = dict(hidden_size_per_layer_input=256)
# 12B, 26B-A4B and 31B: K=V global layers, a 1024 window, 256K positions
_LARGE = dict(attention_k_eq_v=True, sliding_window=1024,
              max_position_embeddings=262_144)
# Tiny twins: the same structure (pattern, sharing, K=V, MoE beside the dense
# MLP) at a size that runs a forward pass on a laptop CPU in milliseconds.
# Windows are small so short prompts already cross them.
_TINY = dict(vocab_size=512, vocab_size_per_layer_input=512, head_dim=16,
             global_head_dim=32, sliding_window=8,
             max_position_embeddings=2048)

# Released text decoders (HF convert_gemma4_weights.py _VARIANTS; see
# reference/gemma4_facts.md §1 and, for the 12B "Unified", §10), then twins
PRESETS: dict[str, dict[str, Any]] = {
    # name: _preset(layers, global every, width, MLP width, heads, KV heads)
    "e2b": _preset(35, 5, 1536, 6144, 8, 1, _EDGE, num_kv_shared_layers=20,
                   use_double_wide_mlp=True),
    "e4b": _preset(42, 6, 2560, 10240, 8, 2, _EDGE, num_kv_shared_layers=18),
    # Dense, no PLE, no KV sharing; global layers 512 wide with a single
    # KV head and K=V. transformers: Gemma4UnifiedForCausalLM.
    "12b": _preset(48, 6, 3840, 15360, 16, 8, _LARGE,
                   num_global_key_value_heads=1),
    "26b-a4b": _preset(30, 6, 2816, 2112, 16, 8, _LARGE,
                       num_global_key_value_heads=2, enable_moe_block=True,
                       num_experts=128, top_k_experts=8,
                       moe_intermediate_size=704),
    "31b": _preset(60, 6, 5376, 21504, 32, 16, _LARGE,
                   num_global_key_value_heads=4),
    "e2b-tiny": _preset(10, 5, 64, 128, 4, 1, _TINY, num_kv_shared_layers=4,
                        hidden_size_per_layer_input=16,
                        use_double_wide_mlp=True),
    "e4b-tiny": _preset(12, 6, 64, 128, 4, 2, _TINY, num_kv_shared_layers=4,
                        hidden_size_per_layer_input=16),
    # Two query heads per KV head on sliding layers and all of them on one
    # K=V head on global layers (12B: 16 / 8 / 1), two global layers. No
    # per-layer embeddings, so no PLE vocabulary either (gemma4_unified
    # files have none to read back).
    "12b-tiny": _preset(12, 6, 64, 256, 8, 4,
                        dict(_TINY, vocab_size_per_layer_input=262_144),
                        num_global_key_value_heads=1, attention_k_eq_v=True),
    "26b-a4b-tiny": _preset(6, 6, 64, 96, 4, 2, _TINY,
                            num_global_key_value_heads=1,
                            attention_k_eq_v=True, enable_moe_block=True,
                            num_experts=16, top_k_experts=4,
                            moe_intermediate_size=32),
    "31b-tiny": _preset(6, 6, 64, 256, 4, 2, _TINY,
                        num_global_key_value_heads=1, attention_k_eq_v=True),
    "dense-tiny": _preset(6, 6, 64, 256, 4, 2, _TINY),
}
# fmt: on

# In order of size, as the model card lists them
RELEASED = ("e2b", "e4b", "12b", "26b-a4b", "31b")
