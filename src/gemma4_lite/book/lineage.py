"""Gemma 2 -> Gemma 3 -> Gemma 4: the attention geometry that decides KV-cache
memory, as typed data. Chapter: "The evolution from Gemma 3"
(``notebooks/03_evolution_from_gemma3.ipynb``).

Gemma 4 entries are built from the package presets (:mod:`gemma4_lite.config`),
so they cannot drift from the model code. Gemma 2 and Gemma 3 have no code in
this package; their figures are typed in below, each with the reference it
comes from:

* ``[facts §10]``   the Gemma 3 entries of transformers'
  ``convert_gemma3_weights.py`` (``_VARIANTS``) and the gemma3 modelling file,
  and the released Gemma 2 configs (section 10 of the book's fact sheet,
  which collects them);
* ``[comp A.3]``    the released configuration files of each model, as
  tabulated in the book's comparison notes (table A.3), and ``[comp A.5]``
  the KV bytes per token computed from them;
* ``[g2-config]``   the released Gemma 2 ``config.json`` values as copied in
  public config fixtures (checked against
  ``transformers/models/gemma2/configuration_gemma2.py``, whose default layer
  pattern is ``sliding if (i + 1) % 2 else full``).

Where two references disagree the comment says so;
``tests/book/test_lineage.py`` re-checks every figure that both references
give. Two disagreements concern KV
accounting rather than the configs themselves:

* [comp A.6] counts keys *and* values on K=V global layers (as transformers and
  this package store them), while the notes on the report count one tensor
  there; the Gemma 4 report's Table 3 matches the second reading for all
  four models, even E2B/E4B whose global layers are not K=V. The chapter prints
  both.
* [comp A.5]'s "960 KiB per token if all 60 layers were global" for the 31B
  prices every layer with the *sliding* shape (16 KV heads x 256); with Gemma
  4's own global shape (4 x 512, K=V) it is 480 KiB.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Iterable, Sequence

import torch

from ..config import FULL, SLIDING, Gemma4Config, layers_of_type
from . import accounting
from .receptive_field import (
    hypothetical_reaches,
    sliding_only_reach,
    sliding_runs,
)

GENERATIONS = ("Gemma 2", "Gemma 3", "Gemma 4")


def periodic_layer_types(
    num_layers: int, period: int, *, force_last_global: bool
) -> tuple[str, ...]:
    """``period - 1`` sliding layers, then one global layer, repeated from
    layer 0.

    Gemma 2 is period 2 (1:1, local first), Gemma 3 and the large Gemma 4
    period 6 (5:1), E2B period 5 (4:1). Gemma 3 does *not* force the last layer
    to be global (its 1B, 4B and 27B end on sliding layers); Gemma 4 does
    (``Gemma4TextConfig.__post_init__`` rewrites ``layer_types[-1]``).
    """
    if period < 1:
        raise ValueError(f"period must be >= 1, got {period}")
    kinds = [
        FULL if (i + 1) % period == 0 else SLIDING for i in range(num_layers)
    ]
    if force_last_global and kinds:
        kinds[-1] = FULL
    return tuple(kinds)


@dataclass(frozen=True)
class LineageModel:
    """The KV-relevant geometry of one Gemma text decoder, plus the attention
    details that changed between generations.

    ``query_pre_attn_scalar`` is ``None`` when queries are not scaled at all
    (Gemma 4: scaling 1.0); otherwise the attention logits are multiplied by
    ``query_pre_attn_scalar ** -0.5``.
    """

    name: str
    generation: str
    num_layers: int
    hidden_size: int
    num_heads: int
    kv_heads: int  # KV heads of sliding (local) layers
    head_dim: int  # head size of sliding layers
    global_kv_heads: int  # KV heads of global layers
    global_head_dim: int  # head size of global layers
    layer_types: tuple[str, ...]
    sliding_window: int  # W: a query sees W keys, itself included
    max_context: int  # tokens the released model supports
    norm_form: str  # "x*(1+w)" (Gemma 2, 3) or "x*w" (Gemma 4)
    query_pre_attn_scalar: float | None
    attn_softcap: float | None
    final_softcap: float | None
    qk_norm: bool
    v_norm: bool
    k_eq_v_global: bool = (
        False  # global layers take values from the key projection
    )
    kv_shared_layers: int = (
        0  # the last N layers reuse earlier K/V and store none
    )
    # RoPE base of sliding / global layers, and how global layers change it
    rope: str = ""
    config: Gemma4Config | None = field(
        default=None, compare=False, repr=False
    )

    def __post_init__(self) -> None:
        if len(self.layer_types) != self.num_layers:
            raise ValueError(
                f"{self.name}: {len(self.layer_types)} layer types for "
                f"{self.num_layers} layers"
            )
        if self.norm_form not in ("x*(1+w)", "x*w"):
            raise ValueError(
                f"{self.name}: unknown norm form {self.norm_form!r}"
            )

    # ----------------------------------------------------------- derived facts
    @property
    def global_layers(self) -> list[int]:
        return layers_of_type(self.layer_types, FULL)

    @property
    def sliding_layers(self) -> list[int]:
        return layers_of_type(self.layer_types, SLIDING)

    @property
    def ratio(self) -> str:
        """The designed sliding:global pattern ("5:1"): the sliding layers
        before the first global one.

        It is not always #sliding / #global: Gemma 3 27B has 52 sliding and 10
        global layers (5.2), because its stack ends on two sliding layers.
        """
        return f"{self.global_layers[0]}:1"

    @property
    def last_layer_global(self) -> bool:
        return self.layer_types[-1] == FULL

    @property
    def query_scale(self) -> float:
        """The factor on ``q . k`` before the softmax."""
        return (
            1.0
            if self.query_pre_attn_scalar is None
            else self.query_pre_attn_scalar**-0.5
        )

    def is_kv_shared(self, layer: int) -> bool:
        return layer >= self.num_layers - self.kv_shared_layers

    def kv_values_per_token(self, layer: int) -> int:
        """Numbers one token adds to ``layer``'s cache (keys and values; 0 for
        a KV-shared layer).
        """
        if self.is_kv_shared(layer):
            return 0
        if self.layer_types[layer] == SLIDING:
            return 2 * self.kv_heads * self.head_dim
        return 2 * self.global_kv_heads * self.global_head_dim


def from_gemma4_config(name: str, config: Gemma4Config) -> LineageModel:
    """A Gemma 4 row read off a package config (the presets are the released
    text decoders).
    """
    first_global = config.global_layers[0]
    return LineageModel(
        name=name,
        generation="Gemma 4",
        num_layers=config.num_hidden_layers,
        hidden_size=config.hidden_size,
        num_heads=config.num_attention_heads,
        kv_heads=config.num_key_value_heads,
        head_dim=config.head_dim,
        global_kv_heads=config.kv_heads_for(first_global),
        global_head_dim=config.head_dim_for(first_global),
        layer_types=tuple(config.layer_types),
        sliding_window=config.sliding_window,
        max_context=config.max_position_embeddings,
        norm_form="x*w",
        query_pre_attn_scalar=None,
        attn_softcap=None,
        final_softcap=config.final_logit_softcapping,
        qk_norm=True,
        v_norm=True,
        k_eq_v_global=config.attention_k_eq_v,
        kv_shared_layers=config.num_kv_shared_layers,
        # sliding 10k on every pair; global 1M, proportional: 64 of 256 pairs
        rope=_rope_label(config),
        config=config,
    )


def _rope_label(config: Gemma4Config) -> str:
    def base(theta: float) -> str:
        return f"{theta / 1e6:g}M" if theta >= 1e6 else f"{theta / 1e3:g}k"

    pairs = config.global_head_dim // 2
    rotated = int(config.global_partial_rotary_factor * pairs)
    return (
        f"{base(config.sliding_rope_theta)} / "
        f"{base(config.global_rope_theta)}, {rotated} of {pairs} pairs"
    )


def _gemma2(
    name: str,
    layers: int,
    hidden: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    query_pre_attn_scalar: float,
) -> LineageModel:
    # Shared by every Gemma 2 size:
    #   1:1 alternation, local first
    #       [facts §10] "1 : 1", [comp A.3] "alternating, local first"
    #   window 4096, context 8192
    #       [facts §10], [comp A.3] (agree)
    #   attention softcap 50, final softcap 30
    #       [facts §10], [comp A.3] (agree)
    #   RMSNorm x*(1+w)
    #       transformers Gemma2RMSNorm (the same class as Gemma 3's);
    #       neither reference states it for Gemma 2
    #   no QK-norm, no V-norm
    #       [comp A.3]: Gemma 3 "replaced" soft-capping by QK-norm
    return LineageModel(
        name=name,
        generation="Gemma 2",
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        global_kv_heads=kv_heads,
        global_head_dim=head_dim,
        layer_types=periodic_layer_types(layers, 2, force_last_global=False),
        sliding_window=4096,
        max_context=8192,
        norm_form="x*(1+w)",
        query_pre_attn_scalar=query_pre_attn_scalar,
        attn_softcap=50.0,
        final_softcap=30.0,
        qk_norm=False,
        v_norm=False,
        rope="10k",  # one base for every layer
    )


def _gemma3(
    name: str,
    layers: int,
    hidden: int,
    heads: int,
    kv_heads: int,
    head_dim: int,
    query_pre_attn_scalar: float,
    window: int,
    context: int,
) -> LineageModel:
    # Shared by every Gemma 3 size:
    #   5:1, global where i % 6 == 5, last layer NOT forced global
    #       [facts §10]; [comp A.3] "global at layers 6, 12, ... (1-based)"
    #       (agree)
    #   RMSNorm x*(1+w), w initialised to 0
    #       [facts §10]
    #   QK-norm, no V-norm, no soft-caps
    #       [facts §10]; [comp A.3] "soft-capping replaced by QK-norm"
    return LineageModel(
        name=name,
        generation="Gemma 3",
        num_layers=layers,
        hidden_size=hidden,
        num_heads=heads,
        kv_heads=kv_heads,
        head_dim=head_dim,
        global_kv_heads=kv_heads,
        global_head_dim=head_dim,
        layer_types=periodic_layer_types(layers, 6, force_last_global=False),
        sliding_window=window,
        max_context=context,
        norm_form="x*(1+w)",
        query_pre_attn_scalar=query_pre_attn_scalar,
        attn_softcap=None,
        final_softcap=None,
        qk_norm=True,
        v_norm=False,
        # local 10k / global 1M; the 128K models stretch the global base
        # with linear scaling x8 (Gemma 3 report; transformers' gemma3
        # conversion script)
        rope="10k / 1M" if context <= 32_768 else "10k / 1M, linear x8",
    )


GEMMA2: dict[str, LineageModel] = {
    # 2B: 26 layers, hidden 2304, 8 heads / 4 KV x 256,
    #     query_pre_attn_scalar 256.
    #     [g2-config] for the shape; [facts §10] for the scalar 256. [comp A.3]
    #     gives no 2B shape.
    "Gemma 2 2B": _gemma2("Gemma 2 2B", 26, 2304, 8, 4, 256, 256.0),
    # 9B: 42 layers, hidden 3584, 16 / 8 KV x 256, scalar 256.
    #     [comp A.3] "16 Q / 8 KV x 256"; [facts §10] scalar 256; layers and
    #     hidden from [g2-config].
    "Gemma 2 9B": _gemma2("Gemma 2 9B", 42, 3584, 16, 8, 256, 256.0),
    # 27B: 46 layers, hidden 4608, 32 / 16 KV x 128,
    #     scalar 144 (= 4608 / 32, not the head size 128).
    #     [comp A.3] "32 Q / 16 KV x 128 with query_pre_attn_scalar 144";
    #     layers and hidden [g2-config]; [comp A.5] "23.7 GiB at 128K (hyp.),
    #     2.2 GiB at its real 8K" is re-derived in the tests.
    "Gemma 2 27B": _gemma2("Gemma 2 27B", 46, 4608, 32, 16, 128, 144.0),
}

GEMMA3: dict[str, LineageModel] = {
    # 1B: 26 layers, hidden 1152, 4 / 1 KV x 256, scalar 256,
    #     window 512, context 32K.
    #     [facts §10]; [comp A.3] agrees on window 512 and context 32K but
    #     gives no 1B shape.
    "Gemma 3 1B": _gemma3(
        "Gemma 3 1B", 26, 1152, 4, 1, 256, 256.0, 512, 32_768
    ),
    # 4B: 34 layers, hidden 2560, 8 / 4 KV x 256, scalar 256,
    #     window 1024, 128K.
    #     [facts §10]; [comp A.3] "4B 34 L, 8 Q / 4 KV x 256" (agree).
    "Gemma 3 4B": _gemma3(
        "Gemma 3 4B", 34, 2560, 8, 4, 256, 256.0, 1024, 131_072
    ),
    # 12B: 48 layers, hidden 3840, 16 / 8 KV x 256, scalar 256,
    #     window 1024, 128K.
    #     [facts §10]; [comp A.3] "12B 48 L, 16/8 x 256" (agree).
    "Gemma 3 12B": _gemma3(
        "Gemma 3 12B", 48, 3840, 16, 8, 256, 256.0, 1024, 131_072
    ),
    # 27B: 62 layers, hidden 5376, 32 / 16 KV x 128,
    #     scalar 168 (= 5376 / 32), window 1024, 128K.
    #     [facts §10]; [comp A.3] "27B 62 L (10 global + 52 local),
    #     32/16 x 128" (agree); [comp A.5] "83.2 KiB per token at 128K" is
    #     re-derived in the tests.
    "Gemma 3 27B": _gemma3(
        "Gemma 3 27B", 62, 5376, 32, 16, 128, 168.0, 1024, 131_072
    ),
}

# Gemma 4 from the package presets (which follow [facts §1]; [comp A.3]
# per-variant table agrees on every KV-relevant entry: layers, KV heads 1/1,
# 2/2, 8/2, 16/4, head sizes 256/512, windows, shared layers).
GEMMA4: dict[str, LineageModel] = {
    f"Gemma 4 {label}": from_gemma4_config(
        f"Gemma 4 {label}", Gemma4Config.from_preset(preset)
    )
    for label, preset in (
        ("E2B", "e2b"),
        ("E4B", "e4b"),
        ("12B", "12b"),
        ("26B-A4B", "26b-a4b"),
        ("31B", "31b"),
    )
}

LINEAGE: dict[str, LineageModel] = {**GEMMA2, **GEMMA3, **GEMMA4}

# The four models whose KV cache the chapter plots against context.
KV_COMPARISON = (
    "Gemma 2 27B",
    "Gemma 3 27B",
    "Gemma 4 31B",
    "Gemma 4 26B-A4B",
)


# -------------------------------------------------------------------- KV bytes
def geometry_layer_bytes(
    model: LineageModel,
    context_length: int,
    dtype: torch.dtype = torch.bfloat16,
    batch_size: int = 1,
) -> list[int]:
    """Per-layer KV bytes computed from the geometry alone (how Gemma 2 and 3
    are priced). Handed a Gemma 4 row it gives exactly what
    :mod:`gemma4_lite.book.accounting` gives, KV sharing included
    (tested)."""
    size = accounting.dtype_bytes(dtype)
    out = []
    for layer, kind in enumerate(model.layer_types):
        # a sliding layer never needs more than the last W tokens; a global
        # layer needs all of them
        tokens = (
            min(context_length, model.sliding_window)
            if kind == SLIDING
            else context_length
        )
        out.append(
            batch_size * tokens * model.kv_values_per_token(layer) * size
        )
    return out


def kv_cache_layer_bytes(
    model: LineageModel,
    context_length: int,
    dtype: torch.dtype = torch.bfloat16,
    batch_size: int = 1,
) -> list[int]:
    """Bytes of keys plus values each layer holds after ``context_length``
    tokens.

    Gemma 4 models go through
    :func:`gemma4_lite.book.accounting.kv_cache_layer_bytes` (the package's one
    accounting of sliding, global, K=V and shared layers); Gemma 2 and 3 use
    the same rule written for a plain geometry: sliding layers cap at the
    window, global layers keep every token.
    """
    if context_length < 0:
        raise ValueError("context_length must be >= 0")
    if model.config is not None:
        return accounting.kv_cache_layer_bytes(
            model.config, context_length, dtype, batch_size
        )
    return geometry_layer_bytes(model, context_length, dtype, batch_size)


def kv_cache_bytes(
    model: LineageModel,
    context_length: int,
    dtype: torch.dtype = torch.bfloat16,
    batch_size: int = 1,
) -> int:
    """Total KV-cache bytes of any generation at ``context_length`` tokens
    (bf16 and batch 1 by default).

    Gemma 4 equals :func:`gemma4_lite.book.accounting.kv_cache_bytes`. The
    context is not capped at ``model.max_context``, so hypothetical lengths
    can be priced too; the chapter's plots cap it themselves.
    """
    return sum(kv_cache_layer_bytes(model, context_length, dtype, batch_size))


def kv_cache_split(
    model: LineageModel,
    context_length: int,
    dtype: torch.dtype = torch.bfloat16,
    batch_size: int = 1,
) -> dict[str, int]:
    """``{"sliding": bytes, "global": bytes}``: where the KV cache lives."""
    per_layer = kv_cache_layer_bytes(model, context_length, dtype, batch_size)
    return {
        "sliding": sum(
            b
            for b, kind in zip(per_layer, model.layer_types)
            if kind == SLIDING
        ),
        "global": sum(
            b for b, kind in zip(per_layer, model.layer_types) if kind == FULL
        ),
    }


def global_share(model: LineageModel, context_length: int) -> float:
    """Fraction of the KV bytes held by global layers (it tends to 1 as the
    context grows).
    """
    split = kv_cache_split(model, context_length)
    total = split["sliding"] + split["global"]
    return split["global"] / total if total else 0.0


def context_grid(low: int = 1024, high: int = 262_144) -> list[int]:
    """Powers of two from ``low`` to ``high`` inclusive (1K ... 256K by
    default).
    """
    if low < 1 or high < low:
        raise ValueError("need 1 <= low <= high")
    out, n = [], 1
    while n <= high:
        if n >= low:
            out.append(n)
        n *= 2
    return out


def kv_curve(
    model: LineageModel,
    contexts: Iterable[int],
    dtype: torch.dtype = torch.bfloat16,
) -> tuple[list[int], list[int]]:
    """KV bytes at each context the model supports; the grid is cut at
    ``model.max_context`` and the maximum itself is appended when it falls
    between grid points."""
    xs = [n for n in contexts if n <= model.max_context]
    if not xs or xs[-1] != model.max_context:
        xs.append(model.max_context)
    return xs, [kv_cache_bytes(model, n, dtype) for n in xs]


def sliding_reach(num_layers: int, window: int) -> int:
    """How far back (in tokens) information can travel through ``num_layers``
    stacked sliding layers: each hop moves at most ``W - 1`` positions, because
    a query sees itself and the ``W - 1`` before it. The chapter "Global
    attention layers" derives this reach layer by layer
    (:func:`gemma4_lite.receptive_field.sliding_only_reach`); this is its last
    entry."""
    if num_layers < 0:
        raise ValueError("num_layers must be >= 0")
    return int(sliding_only_reach(num_layers, window)[-1]) if num_layers else 0


def reaches(model: LineageModel) -> dict[str, int]:
    """The reach (tokens back) that sliding attention alone gives ``model``,
    in the cases of :data:`~gemma4_lite.book.receptive_field.REACH_CASES`.
    Gemma 4 rows go through
    :func:`~gemma4_lite.book.receptive_field.hypothetical_reaches`; Gemma 2 and
    3 have no KV sharing, so the same rule needs only their layer types."""
    if model.config is not None:
        return hypothetical_reaches(model.config)
    window = model.sliding_window
    runs = sliding_runs(model.layer_types)
    return {
        "one run": sliding_reach(max(runs, default=0), window),
        "globals off": sliding_reach(len(model.sliding_layers), window),
        "all sliding, shared": sliding_reach(model.num_layers, window),
        "all sliding": sliding_reach(model.num_layers, window),
    }


# -------------------------------------------------------------------- what-ifs
def shaped_like(
    preset: str, *, window: int, sliding_per_global: int | None
) -> Gemma4Config:
    """A released Gemma 4 with its window and local:global ratio changed (for
    the chapter's widget).

    ``sliding_per_global=None`` makes every layer global. The last layer stays
    global, as in every Gemma 4. Heads, head sizes and K=V are kept, so only
    the attention pattern moves the KV bytes.
    """
    base = Gemma4Config.from_preset(preset)
    if sliding_per_global is None:
        types = (FULL,) * base.num_hidden_layers
    else:
        types = periodic_layer_types(
            base.num_hidden_layers,
            sliding_per_global + 1,
            force_last_global=True,
        )
    return base.replace(layer_types=list(types), sliding_window=window)


def gemma3_norm_weight_to_gemma4(weight: torch.Tensor) -> torch.Tensor:
    """The gain a Gemma 4 style ``x * w`` norm needs to reproduce a Gemma 3
    ``x * (1 + w)`` norm.

    Computed and returned in fp32: rounding ``1 + w`` back to bf16 costs up to
    2^-8 relative per channel, because bf16 has 8 significant bits near 1.0 but
    many more near 0, where Gemma 3 keeps ``w``.
    """
    return 1.0 + weight.float()


# -------------------------------------------------------------------- printing
def format_table(
    header: Sequence[str], rows: Sequence[Sequence[object]]
) -> str:
    """A plain-text table (the book does not depend on pandas): columns padded
    to their widest cell, the first column left-aligned and the others
    right-aligned."""
    cells = [[str(c) for c in header]] + [
        [str(c) for c in row] for row in rows
    ]
    widths = [max(len(row[j]) for row in cells) for j in range(len(header))]

    def line(row: list[str]) -> str:
        return "  ".join(
            c.ljust(w) if j == 0 else c.rjust(w)
            for j, (c, w) in enumerate(zip(row, widths))
        )

    return "\n".join(
        [line(cells[0]), "  ".join("-" * w for w in widths)]
        + [line(r) for r in cells[1:]]
    )


def short_tokens(n: int) -> str:
    """8192 -> "8K", 131072 -> "128K", 1000 -> "1000"."""
    return f"{n // 1024}K" if n % 1024 == 0 else str(n)


def _yes(flag: bool) -> str:
    return "yes" if flag else "no"


GEOMETRY_HEADER = (
    "model",
    "layers",
    "local:global",
    "#global",
    "last global",
    "window",
    "context",
    "KV local",
    "KV global",
)
NUMERICS_HEADER = (
    "model",
    "norm",
    "q.k scale",
    "attn softcap",
    "final softcap",
    "QK-norm",
    "V-norm",
    "RoPE base",
)


def geometry_rows(models: Iterable[LineageModel]) -> list[list[object]]:
    """Rows for the chapter's first table: the attention pattern and the KV
    shapes (heads x head size).
    """
    rows = []
    for m in models:
        kv_global = f"{m.global_kv_heads}x{m.global_head_dim}" + (
            " K=V" if m.k_eq_v_global else ""
        )
        rows.append(
            [
                m.name,
                m.num_layers,
                m.ratio,
                len(m.global_layers),
                _yes(m.last_layer_global),
                m.sliding_window,
                short_tokens(m.max_context),
                f"{m.kv_heads}x{m.head_dim}",
                kv_global,
            ]
        )
    return rows


def numerics_rows(models: Iterable[LineageModel]) -> list[list[object]]:
    """Rows for the chapter's second table: norm form, logit scale, soft-caps,
    QK- and V-norm.
    """
    rows = []
    for m in models:
        scale = (
            "1.0"
            if m.query_pre_attn_scalar is None
            else f"{m.query_pre_attn_scalar:g}^-1/2 = {m.query_scale:.4f}"
        )
        rows.append(
            [
                m.name,
                m.norm_form,
                scale,
                "-" if m.attn_softcap is None else f"{m.attn_softcap:g}",
                "-" if m.final_softcap is None else f"{m.final_softcap:g}",
                _yes(m.qk_norm),
                _yes(m.v_norm),
                m.rope,
            ]
        )
    return rows


def columns(
    header: Sequence[str], rows: Sequence[Sequence[object]], names: list[str]
) -> tuple[list[str], list[list[object]]]:
    """The columns ``names`` (by header name) of a table, so that a wide table
    can be printed as two narrow ones."""
    keep = [list(header).index(n) for n in names]
    return [header[j] for j in keep], [[r[j] for j in keep] for r in rows]
