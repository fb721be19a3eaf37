"""Gemma 4 against Gemma 3, Qwen3-Next and DeepSeek-V4, computed from each
model's own configuration rather than quoted. Chapter: "Key takeaways"
(``notebooks/13_key_takeaways.ipynb``).

Where each number comes from
----------------------------
* **Totals** of Gemma 3 27B, Qwen3-Next-80B-A3B and DeepSeek-V4-Flash are
  counted from modules instantiated on the meta device with transformers 5.24
  (``Gemma3ForCausalLM``, ``Qwen3NextForCausalLM``,
  ``DeepseekV4ForCausalLM``): no weights are allocated, every parameter
  tensor is created with its real shape. The five Gemma 4 rows come from the
  package presets and :func:`gemma4_lite.book.accounting.count_parameters`,
  so they agree with the earlier chapters.
* **Configs.** ``Qwen3NextConfig()``'s defaults are the 80B-A3B shapes, but
  its ``max_position_embeddings`` (32,768) and RoPE base (10,000) are not the
  release's; the released ``config.json`` has 262,144 and 10,000,000 (a
  transcription of it sits in public parser tests; Qwen3-Coder-Next, whose
  base is 5,000,000, is described there as "half the 80B's theta").
  ``DeepseekV4Config()``'s default ``layer_types`` follow neither release:
  they put HCA on layer 2 and CSA on layer 3, while both released configs
  have CSA on the even layers from 2 on. V4-Flash's ``compress_ratios`` are
  ``[0, 0, 4, 128, 4, 128, ..., 4, 0]`` (44 entries: two window-only layers,
  21 CSA, 20 HCA, and the window-only MTP block); V4-Pro's are
  ``[128, 128, 4, 128, ..., 4, 0]`` (31 HCA, 30 CSA, MTP). Both are passed
  explicitly below. Gemma 3 27B's values are the released ones (also in
  :mod:`gemma4_lite.book.lineage`).
* **Active parameters per token** = every parameter, minus the routed experts
  a token does not use: ``total - routed * (E - k) / E``. Shared experts, the
  router, attention, norms, DeepSeek's mHC mixers and compressors, the
  embedding table and the output head are all counted as active (this is
  also how :func:`gemma4_lite.book.accounting.count_parameters` counts the
  26B-A4B's 3.8B).
  :func:`active_parameters` also returns the figure without the embedding
  table and without table and head, since publishers differ. Measured
  against the published figures: DeepSeek-V4-Flash 13.80B (12.74B without
  table and head; published 13B), Qwen3-Next 3.87B (3.25B without table and
  head; published "3B"), Gemma 4 26B-A4B 3.82B (published 3.8B). Neither
  DeepSeek nor Qwen states what its figure includes; DeepSeek's 13B lies
  between the two countings, Qwen's "3B" below both (it is 3.25B even
  without table and head, so the published figure is rounded down).
* **Memory per sequence** is what a decode step needs to keep per sequence,
  batch 1, bf16, from each model's own cache layout (read from the
  transformers cache classes; see each function). Sliding windows are
  counted as ``W`` tokens, the keys a decode step attends to (and what this
  package's ring buffer holds); transformers' dynamic window layers keep
  ``W - 1`` between steps and concatenate the new token, which the tests
  account for when they compare against transformers' real caches.

Published figure checked: DeepSeek's model card says that at 1M tokens
V4-Pro needs "10% of KV cache compared with DeepSeek-V3.2". With every
cached value in bf16 (V3.2: 61 layers of a 576-wide MLA latent plus a
128-wide indexer key), :func:`deepseek_v32_memory` and
:func:`deepseek_v4_memory` give 9.63 GiB / 83.9 GiB = 11.5%. The remaining
gap is the storage format: DeepSeek stores most of each row in fp8 (a
serving engine's layout prices a V4 row at 512 fp8 bytes plus 128 bf16
bytes), which this bf16 accounting does not model. vLLM's DeepSeek-V4 post
is reported (in secondary copies) to give 9.62 GiB of bf16 cache per
1M-token V4-Pro sequence and 8.7 times less than V3.2; the functions here
give 9.62 GiB and 8.71 times.

Two details of transformers' caches that differ from the models' own
layouts, found by the tests: DeepSeek-V4's two window-only layers go
through the generic sliding layer, which stores the single K=V tensor twice
(as keys and as values), and Qwen3-Next's reference Gated DeltaNet kernels
return the recurrent state in float32 (72 MiB for the 36 layers, against
36 MiB in bf16).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import torch
from torch import nn

from ..config import Gemma4Config
from . import accounting

GIB = 1024**3
CONTEXTS = (4096, 131_072, 262_144, 1_048_576)
CONTEXT_LABELS = ("4K", "128K", "256K", "1M")

FLASH_COMPRESS_RATIOS = (0, 0) + (4, 128) * 20 + (4,)
PRO_COMPRESS_RATIOS = (128, 128) + (4, 128) * 29 + (4,)
_V4_YARN = dict(
    type="yarn",
    factor=16,
    original_max_position_embeddings=65_536,
    beta_fast=32,
    beta_slow=1,
)


def deepseek_v4_flash_config(**overrides: Any) -> Any:
    """DeepSeek-V4-Flash as released (``config.json`` of
    deepseek-ai/DeepSeek-V4-Flash: 43 layers, hidden 4096, 256 routed experts
    top-6 + 1 shared of width 2048, 64 query heads of 512 on one K=V head,
    window 128, CSA every 4 / HCA every 128 tokens). ``overrides`` replace
    any field (the tests build a tiny one)."""
    from transformers import DeepseekV4Config

    values: dict[str, Any] = dict(
        compress_ratios=list(FLASH_COMPRESS_RATIOS),
        num_hash_layers=3,
        rope_scaling=dict(_V4_YARN),
    )
    values.update(overrides)
    return DeepseekV4Config(**values)


def deepseek_v4_pro_config() -> Any:
    """DeepSeek-V4-Pro's attention geometry (61 layers, hidden 7168, 128
    query heads, 384 experts of width 3072, indexer top-1024), used for its
    memory only: it is not built here."""
    from transformers import DeepseekV4Config

    return DeepseekV4Config(
        hidden_size=7168,
        num_hidden_layers=61,
        num_attention_heads=128,
        q_lora_rank=1536,
        o_groups=16,
        n_routed_experts=384,
        moe_intermediate_size=3072,
        routed_scaling_factor=2.5,
        index_topk=1024,
        compress_ratios=list(PRO_COMPRESS_RATIOS),
        num_hash_layers=3,
        rope_scaling=dict(_V4_YARN),
    )


def qwen3_next_config(**overrides: Any) -> Any:
    """Qwen3-Next-80B-A3B: transformers' defaults plus the released context
    (262,144) and RoPE base (1e7)."""
    from transformers import Qwen3NextConfig

    values: dict[str, Any] = dict(
        max_position_embeddings=262_144,
        rope_parameters=dict(
            rope_type="default", rope_theta=10_000_000.0,
            partial_rotary_factor=0.25,
        ),
    )  # fmt: skip
    values.update(overrides)
    return Qwen3NextConfig(**values)


def gemma3_27b_config(**overrides: Any) -> Any:
    """Gemma 3 27B's text decoder as released (62 layers, hidden 5376, 32 /
    16 heads of 128, window 1024, 5:1 from layer 0, 128K context; global
    RoPE base 1e6 stretched linearly x8, local base 1e4)."""
    from transformers import Gemma3TextConfig

    values: dict[str, Any] = dict(
        vocab_size=262_208,
        hidden_size=5376,
        intermediate_size=21_504,
        num_hidden_layers=62,
        num_attention_heads=32,
        num_key_value_heads=16,
        head_dim=128,
        query_pre_attn_scalar=168,
        sliding_window=1024,
        max_position_embeddings=131_072,
        rope_scaling={"rope_type": "linear", "factor": 8.0},
    )
    values.update(overrides)
    return Gemma3TextConfig(**values)


def build_on_meta(config: Any) -> nn.Module:
    """The transformers causal LM of ``config`` with every parameter on the
    meta device (shapes only, no memory)."""
    from transformers import AutoModelForCausalLM

    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config)


def parameter_groups(model: nn.Module) -> dict[str, int]:
    """Parameters of a transformers MoE/dense model by role, from the module
    names: ``embedding`` (token table), ``head`` (output projection, 0 when
    tied), ``routed_experts``, ``shared_experts`` (with Qwen's sigmoid gate of
    the shared expert), ``router``, ``other`` (attention, norms, linear
    attention, mHC, compressors), and ``total``. Buffers such as DeepSeek's
    frozen hash table ``tid2eid`` are not parameters and are not counted."""
    groups = dict.fromkeys(
        ("embedding", "head", "routed_experts", "shared_experts", "router",
         "other"), 0,
    )  # fmt: skip
    for name, tensor in model.named_parameters():
        if "embed_tokens" in name:
            key = "embedding"
        elif name.startswith("lm_head"):
            key = "head"
        elif ".mlp.experts." in name:
            key = "routed_experts"
        elif ".mlp.shared_expert" in name:
            key = "shared_experts"
        elif ".mlp.gate." in name:
            key = "router"
        else:
            key = "other"
        groups[key] += tensor.numel()
    groups["total"] = sum(groups.values())
    return groups


def active_parameters(
    groups: dict[str, int], num_experts: int, top_k: int
) -> dict[str, int]:
    """Parameters one token uses: everything but the ``num_experts - top_k``
    routed experts it skips (see the module docstring). Returns ``active``,
    ``active_without_table`` (minus the embedding table, a lookup that reads
    one row) and ``active_without_table_and_head``."""
    skipped = groups["routed_experts"] * (num_experts - top_k) // num_experts
    active = groups["total"] - skipped
    return {
        "active": active,
        "active_without_table": active - groups["embedding"],
        "active_without_table_and_head": (
            active - groups["embedding"] - groups["head"]
        ),
    }


# ---------------------------------------------------------------- memory


def _size(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def gemma4_memory(
    config: Gemma4Config, tokens: int, dtype: torch.dtype = torch.bfloat16
) -> dict[str, int]:
    """Gemma 4: keys and values of the layers that own a cache, sliding
    layers capped at the window, K=V global layers storing both tensors (see
    :func:`gemma4_lite.book.accounting.kv_cache_layer_bytes`); no other
    state."""
    per_layer = accounting.kv_cache_layer_bytes(config, tokens, dtype)
    sliding = sum(b for i, b in enumerate(per_layer) if config.is_sliding(i))
    return {
        "window": sliding,
        "kv": sum(per_layer) - sliding,
        "state": 0,
        "total": sum(per_layer),
    }


def gemma3_memory(
    config: Any,
    tokens: int,
    dtype: torch.dtype = torch.bfloat16,
    window_tokens: int | None = None,
) -> dict[str, int]:
    """Gemma 3 (a transformers ``Gemma3TextConfig``): K and V of
    ``num_key_value_heads x head_dim`` per layer; sliding layers keep
    ``window_tokens`` (default the window), global layers every token."""
    keep = config.sliding_window if window_tokens is None else window_tokens
    row = 2 * config.num_key_value_heads * config.head_dim * _size(dtype)
    sliding = config.layer_types.count("sliding_attention")
    full = config.num_hidden_layers - sliding
    window = sliding * min(tokens, keep) * row
    kv = full * tokens * row
    return {"window": window, "kv": kv, "state": 0, "total": window + kv}


def qwen3_next_memory(
    config: Any,
    tokens: int,
    dtype: torch.dtype = torch.bfloat16,
    state_dtype: torch.dtype = torch.float32,
) -> dict[str, int]:
    """Qwen3-Next: the full-attention layers keep K and V of every token
    (``num_key_value_heads x head_dim`` each); each Gated DeltaNet layer keeps
    a fixed state whatever the length: the causal-conv state
    ``(2 x key heads x key dim + value heads x value dim) x kernel`` in the
    model dtype, and the recurrent state ``value heads x key dim x value dim``,
    which transformers' reference kernels return in float32
    (``state_dtype``)."""
    size = _size(dtype)
    full = config.layer_types.count("full_attention")
    linear = config.layer_types.count("linear_attention")
    kv = full * tokens * 2 * config.num_key_value_heads * config.head_dim
    conv_dim = (
        2 * config.linear_num_key_heads * config.linear_key_head_dim
        + config.linear_num_value_heads * config.linear_value_head_dim
    )
    conv = linear * conv_dim * config.linear_conv_kernel_dim * size
    recurrent = (
        linear
        * config.linear_num_value_heads
        * config.linear_key_head_dim
        * config.linear_value_head_dim
        * _size(state_dtype)
    )
    state = conv + recurrent if tokens else 0
    kv_bytes = kv * size
    return {
        "window": 0,
        "kv": kv_bytes,
        "state": state,
        "total": kv_bytes + state,
    }


def deepseek_v4_memory(
    config: Any,
    tokens: int,
    dtype: torch.dtype = torch.bfloat16,
    window_tokens: int | None = None,
) -> dict[str, int]:
    """DeepSeek-V4, from ``DeepseekV4HCACache`` / ``DeepseekV4CSACache``.

    Every layer keeps a sliding window of its single K=V head
    (``head_dim`` values per token; keys and values are one tensor).
    A CSA layer (rate ``m``, 4) adds one compressed ``head_dim`` entry and one
    indexer key of ``index_head_dim`` per ``m`` tokens; an HCA layer (rate
    128) one compressed entry per 128 tokens. The compressor state
    (``state``): the tokens of the window not yet closed (``tokens mod m``),
    stored as projected kv plus gate (``2 x head_dim`` each on CSA, which
    carries two overlapping series, ``head_dim`` each on HCA; the indexer's
    ``2 x index_head_dim`` each), and on CSA the previous window's first
    series (``m x head_dim`` kv and gate, and the same at ``index_head_dim``
    for the indexer). At 4K, 128K, 256K and 1M no window is open, so
    ``state`` is only the overlap carry.
    """
    size = _size(dtype)
    keep = config.sliding_window if window_tokens is None else window_tokens
    hd, ihd = config.head_dim, config.index_head_dim
    window = compressed = indexer = state = 0
    for kind in config.layer_types:
        window += min(tokens, keep) * hd
        if kind == "sliding_attention":
            continue
        m = config.compress_rates[kind]
        entries, pending = divmod(tokens, m)
        compressed += entries * hd
        if kind == "heavily_compressed_attention":
            state += pending * 2 * hd
            continue
        indexer += entries * ihd
        state += pending * 2 * (2 * hd + 2 * ihd)
        if entries:
            state += 2 * m * (hd + ihd)
    values = {
        "window": window,
        "kv": compressed + indexer,
        "state": state,
        "compressed": compressed,
        "indexer": indexer,
    }
    out = {key: v * size for key, v in values.items()}
    out["total"] = out["window"] + out["kv"] + out["state"]
    return out


def deepseek_v32_memory(
    tokens: int, layers: int = 61, dtype: torch.dtype = torch.bfloat16
) -> int:
    """DeepSeek-V3.2 (MLA + DSA), for the published "10% of V3.2" check:
    per layer and token a 512-wide latent, a 64-wide RoPE key and a 128-wide
    indexer key (``kv_lora_rank``, ``qk_rope_head_dim``, ``index_head_dim``
    of the released config), all priced at ``dtype``."""
    return layers * tokens * (512 + 64 + 128) * _size(dtype)


def transformers_cache_bytes(cache: Any) -> int:
    """Bytes held by a transformers cache object: every tensor reachable
    from its layers (attributes and dicts of tensors), a tensor bound to two
    names counted once (DeepSeek-V4's compressed layers make ``values`` the
    very ``keys`` tensor). Sizes are those of the tensors themselves: right
    after a prefill, a sliding layer's window is a view that keeps the whole
    prompt's storage alive until the next step replaces it."""
    seen: set[tuple[int, int]] = set()
    total = 0
    for layer in cache.layers:
        tensors: list[torch.Tensor] = []
        for name, value in vars(layer).items():
            if name.startswith("_"):
                continue
            if isinstance(value, torch.Tensor):
                tensors.append(value)
            elif isinstance(value, dict):
                tensors += [
                    v for v in value.values() if isinstance(v, torch.Tensor)
                ]
        for t in tensors:
            key = (t.data_ptr(), t.numel())
            if t.numel() == 0 or key in seen:
                continue
            seen.add(key)
            total += t.numel() * t.element_size()
    return total


# ---------------------------------------------------------------- the rows


@dataclass(frozen=True)
class Comparator:
    """One model of the comparison: its config and what its authors
    report (``published_*``, billions, labelled "reported" on the page)."""

    name: str
    family: str
    config: Any
    context_length: int
    published_total: float
    published_active: float | None


GEMMA4_NAMES = {
    "e2b": "Gemma 4 E2B",
    "e4b": "Gemma 4 E4B",
    "12b": "Gemma 4 12B",
    "26b-a4b": "Gemma 4 26B-A4B",
    "31b": "Gemma 4 31B",
}
# Gemma 4's published totals (model card): E2B/E4B/12B include the vision
# and audio towers, see gemma4_lite.book.accounting.
_GEMMA4_PUBLISHED = {
    "e2b": (5.1, None),
    "e4b": (8.0, None),
    "12b": (11.95, None),
    "26b-a4b": (25.2, 3.8),
    "31b": (30.7, None),
}


@lru_cache(maxsize=1)
def comparators() -> tuple[Comparator, ...]:
    """The models of the chapter, smallest Gemma first."""
    rows = [
        Comparator(
            GEMMA4_NAMES[p],
            "gemma4",
            Gemma4Config.from_preset(p),
            Gemma4Config.from_preset(p).max_position_embeddings,
            *_GEMMA4_PUBLISHED[p],
        )  # fmt: skip
        for p in GEMMA4_NAMES
    ]
    rows += [
        Comparator(
            "Gemma 3 27B", "gemma3", gemma3_27b_config(), 131_072, 27.0, None
        ),
        Comparator(
            "Qwen3-Next-80B-A3B",
            "qwen3_next",
            qwen3_next_config(),
            262_144,
            80.0,
            3.0,
        ),  # fmt: skip
        Comparator(
            "DeepSeek-V4-Flash",
            "deepseek_v4",
            deepseek_v4_flash_config(),
            1_048_576,
            284.0,
            13.0,
        ),  # fmt: skip
    ]
    return tuple(rows)


def by_name(name: str) -> Comparator:
    for row in comparators():
        if row.name == name:
            return row
    raise KeyError(name)


@lru_cache(maxsize=None)
def counted(name: str) -> dict[str, int]:
    """Total and active parameters of one comparator: Gemma 4 from
    :func:`gemma4_lite.book.accounting.count_parameters`, the others counted
    on the meta device (built once per process)."""
    row = by_name(name)
    if row.family == "gemma4":
        c = accounting.count_parameters(row.config)
        return {
            "total": c["total"],
            "active": c["active_per_token"],
            "active_without_table": c["active_per_token"] - c["embedding"]
            - c["per_layer_embedding_table"],
            "active_without_table_and_head": c["active_per_token"]
            - c["embedding"] - c["per_layer_embedding_table"],
        }  # fmt: skip
    groups = parameter_groups(build_on_meta(row.config))
    experts, top_k = moe_shape(row)[:2]
    return {**groups, **active_parameters(groups, max(experts, 1), top_k)}


def moe_shape(row: Comparator) -> tuple[int, int, int, int, int]:
    """``(experts, active, shared, expert width, hidden)``; dense models
    report ``(0, 0, 0, 0, hidden)``."""
    c = row.config
    if row.family == "gemma4":
        if not c.enable_moe_block:
            return (0, 0, 0, 0, c.hidden_size)
        return (c.num_experts, c.top_k_experts, 0,
                c.moe_intermediate_size, c.hidden_size)  # fmt: skip
    if row.family == "qwen3_next":
        return (c.num_experts, c.num_experts_per_tok, 1,
                c.moe_intermediate_size, c.hidden_size)  # fmt: skip
    if row.family == "deepseek_v4":
        return (c.n_routed_experts, c.num_experts_per_tok,
                c.n_shared_experts, c.moe_intermediate_size,
                c.hidden_size)  # fmt: skip
    return (0, 0, 0, 0, c.hidden_size)


def memory(
    row: Comparator, tokens: int, dtype: torch.dtype = torch.bfloat16
) -> dict[str, int]:
    """Memory per sequence of one comparator after ``tokens`` tokens."""
    if row.family == "gemma4":
        return gemma4_memory(row.config, tokens, dtype)
    if row.family == "gemma3":
        return gemma3_memory(row.config, tokens, dtype)
    if row.family == "qwen3_next":
        return qwen3_next_memory(row.config, tokens, dtype)
    return deepseek_v4_memory(row.config, tokens, dtype)


def memory_rows(
    contexts: tuple[int, ...] = CONTEXTS,
) -> list[list[object]]:
    """``[name, GiB at each context or None beyond the model's context]``."""
    rows: list[list[object]] = []
    for row in comparators():
        cells: list[object] = [row.name]
        for n in contexts:
            cells.append(
                round(memory(row, n)["total"] / GIB, 3)
                if n <= row.context_length
                else None
            )
        rows.append(cells)
    return rows


def parameter_rows() -> list[list[object]]:
    """``[name, total B, active B, published total, published active]``."""
    return [
        [
            row.name,
            round(counted(row.name)["total"] / 1e9, 2),
            round(counted(row.name)["active"] / 1e9, 2),
            row.published_total,
            row.published_active,
        ]
        for row in comparators()
    ]


def always_on_width(row: Comparator) -> int:
    """Width of the MLP every token runs besides its routed experts: Gemma
    4 26B-A4B's dense MLP, Qwen3-Next's and DeepSeek-V4's shared expert."""
    c = row.config
    if row.family == "gemma4":
        return c.intermediate_size if c.enable_moe_block else 0
    if row.family == "qwen3_next":
        return c.shared_expert_intermediate_size
    if row.family == "deepseek_v4":
        return c.n_shared_experts * c.moe_intermediate_size
    return 0


def moe_rows() -> list[list[object]]:
    """``[name, experts, active, shared, expert width, hidden, width /
    hidden, always-on MLP width, active MLP width per token]`` for the MoE
    models (active MLP width = top-k x expert width + always-on width)."""
    out: list[list[object]] = []
    for row in comparators():
        e, k, s, w, h = moe_shape(row)
        if e:
            dense = always_on_width(row)
            out.append(
                [row.name, e, k, s, w, h, round(w / h, 3), dense,
                 k * w + dense]
            )  # fmt: skip
    return out


def attention_scheme(row: Comparator) -> str:
    """One line on which layers attend how, read from the layer types."""
    c = row.config
    kinds = list(c.layer_types)
    if row.family in ("gemma4", "gemma3"):
        glob = kinds.count("full_attention")
        return (
            f"{len(kinds) - glob} sliding (W={c.sliding_window}) + "
            f"{glob} global"
        )
    if row.family == "qwen3_next":
        return (
            f"{kinds.count('linear_attention')} Gated DeltaNet + "
            f"{kinds.count('full_attention')} gated full attention"
        )
    return (
        f"window {c.sliding_window} on all {len(kinds)}; "
        f"{kinds.count('compressed_sparse_attention')} CSA "
        f"(/4, top-{c.index_topk}) + "
        f"{kinds.count('heavily_compressed_attention')} HCA (/128) + "
        f"{kinds.count('sliding_attention')} window-only"
    )


def rope_summary(row: Comparator) -> str:
    """RoPE of each kind of layer, read from the config."""
    c = row.config
    if row.family == "gemma4":
        return (
            f"sliding: full, base {c.sliding_rope_theta:.0e}; global: "
            f"{c.global_rope_type} on {c.global_partial_rotary_factor:.0%} "
            f"of pairs, base {c.global_rope_theta:.0e}"
        )
    if row.family == "gemma3":
        full = c.rope_parameters["full_attention"]
        local = c.rope_parameters["sliding_attention"]["rope_theta"]
        kind, factor = full["rope_type"], full["factor"]
        return (
            f"sliding: full, base {local:.0e}; global: full, base "
            f"{full['rope_theta']:.0e}, {kind} x{factor:g}"
        )
    if row.family == "qwen3_next":
        p = c.rope_parameters
        return (
            f"full-attention layers: {p['partial_rotary_factor']:.0%} of "
            f"dims, base {p['rope_theta']:.0e}; DeltaNet layers: none"
        )
    main, comp = c.rope_parameters["main"], c.rope_parameters["compress"]
    return (
        f"{main['partial_rotary_factor']:.1%} of dims "
        f"({c.qk_rope_head_dim} of {c.head_dim}); window-only layers base "
        f"{main['rope_theta']:.0e}; compressed layers base "
        f"{comp['rope_theta']:.1e}, {comp['rope_type']} x{comp['factor']:g}"
    )


# What each model normalises and whether it predicts several tokens, read
# from the transformers modelling files (module names quoted) and the
# configs; the drafters of Gemma 4 are separate models (chapter 12).
DESIGN = {
    "gemma4": (
        "RMSNorm x*w before and after attention and MLP; q_norm, k_norm, "
        "gain-free v_norm",
        "none in the decoder; separate MTP drafter models",
    ),
    "gemma3": (
        "RMSNorm x*(1+w) before and after attention and MLP; q_norm, k_norm",
        "none",
    ),
    "qwen3_next": (
        "RMSNorm x*(1+w) before attention and MLP only; q_norm, k_norm; "
        "sigmoid output gate; gated RMSNorm on DeltaNet output",
        "1 MTP layer in the released checkpoint (not built by transformers)",
    ),
    "deepseek_v4": (
        "RMSNorm before attention and MLP inside 4-stream mHC; q_a_norm, "
        "gain-free per-head q_b_norm, kv_norm; attention sinks",
        "num_nextn_predict_layers={n} (not built by transformers)",
    ),
}


def design_rows() -> list[list[object]]:
    """``[name, attention, RoPE, norms, multi-token prediction, context]``
    for each comparator."""
    rows: list[list[object]] = []
    for row in comparators():
        norms, mtp = DESIGN[row.family]
        if row.family == "deepseek_v4":
            mtp = mtp.format(n=row.config.num_nextn_predict_layers)
        rows.append([
            row.name, attention_scheme(row), rope_summary(row), norms, mtp,
            row.context_length,
        ])  # fmt: skip
    return rows


# ------------------------------------------------- per layer, per token

# What each layer kind keeps, in words the chapter's figures use.
LAYER_KINDS = {
    "sliding": "sliding window",
    "global": "global",
    "shared": "reads another layer's cache",
    "linear_attention": "Gated DeltaNet state",
    "full_attention": "gated full attention",
    "window_only": "window only",
    "compressed_sparse_attention": "CSA: window + 1 per 4",
    "heavily_compressed_attention": "HCA: window + 1 per 128",
}


def layer_kinds(row: Comparator) -> list[str]:
    """The kind of each layer (keys of :data:`LAYER_KINDS`): Gemma's
    ``sliding`` / ``global`` (``shared`` for a KV-shared layer), Qwen3-Next's
    and DeepSeek-V4's own layer types (``window_only`` for DeepSeek's plain
    sliding layers)."""
    c = row.config
    if row.family == "gemma4":
        return [
            "shared"
            if c.is_kv_shared(i)
            else ("sliding" if c.is_sliding(i) else "global")
            for i in range(c.num_hidden_layers)
        ]
    if row.family == "gemma3":
        return [
            "sliding" if k == "sliding_attention" else "global"
            for k in c.layer_types
        ]
    if row.family == "deepseek_v4":
        return [
            "window_only" if k == "sliding_attention" else k
            for k in c.layer_types
        ]
    return list(c.layer_types)


def layer_memory(
    row: Comparator, tokens: int, dtype: torch.dtype = torch.bfloat16
) -> list[int]:
    """Bytes each layer keeps per sequence after ``tokens`` tokens, from
    the same formulas as :func:`memory` applied to a one-layer slice of
    the model (the per-layer bytes sum to ``memory(row, tokens)``)."""
    c = row.config
    kinds = layer_kinds(row)
    if row.family == "gemma4":
        return accounting.kv_cache_layer_bytes(c, tokens, dtype)
    out = []
    for kind in kinds:
        if row.family == "gemma3":
            real = (
                "sliding_attention" if kind == "sliding" else "full_attention"
            )
            out.append(gemma3_memory(_OneLayer(c, real), tokens, dtype)[
                "total"])  # fmt: skip
        elif row.family == "qwen3_next":
            out.append(qwen3_next_memory(_OneLayer(c, kind), tokens, dtype)[
                "total"])  # fmt: skip
        else:
            real = "sliding_attention" if kind == "window_only" else kind
            one = _OneLayer(c, real)
            out.append(deepseek_v4_memory(one, tokens, dtype)["total"])
    return out


class _OneLayer:
    """A view of a config with a single layer of type ``kind``: the memory
    functions read only the layer types and the shapes."""

    def __init__(self, config: Any, kind: str) -> None:
        self._config = config
        self.layer_types = [kind]
        self.num_hidden_layers = 1

    def __getattr__(self, name: str) -> Any:
        return getattr(self._config, name)


def kib_per_token(
    row: Comparator, tokens: int, dtype: torch.dtype = torch.bfloat16
) -> float:
    """Memory per sequence divided by its length, in KiB: the average
    cost of one token of context, fixed buffers and states included."""
    return memory(row, tokens, dtype)["total"] / tokens / 1024
