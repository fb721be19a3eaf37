"""What one decoder layer stores, what one token touches and what it costs
in FLOPs, by part. Chapter: "Expert architecture"."""

from __future__ import annotations

from ..config import Gemma4Config
from .accounting import layer_parameters

LAYER_PARTS = (
    "attention",
    "attention_scores",
    "mlp",
    "router",
    "experts",
    "norms",
    "per_layer_input",
)


def layer_token_budget(
    config: Gemma4Config, layer: int, context_length: int = 4096
) -> dict[str, dict[str, int]]:
    """Parameters stored, parameters one token uses, and FLOPs per token for
    one decoder layer, by part.

    Returns ``{part: {"stored": ..., "active": ..., "flops": ...}}`` for the
    parts in :data:`LAYER_PARTS` plus a ``"total"`` row. Conventions:

    * A multiply-add is 2 FLOPs, so a weight matrix costs 2 FLOPs per token per
      parameter. Norms, the activation and the softmax are elementwise and left
      out (they are under 0.1% of the total).
    * ``attention`` is the projections (q, k, v, o); ``attention_scores`` has
      no parameters and costs 2 * heads * head_dim FLOPs for q.k and again for
      the weighted sum of values, per visible key. A token at position
      ``context_length - 1`` sees ``min(context_length, W)`` keys in a sliding
      layer and ``context_length`` keys in a global one.
    * ``router``: the projection to E scores (plus its two scale vectors, which
      cost no matmul).
    * ``experts``: all E experts are stored; a token runs ``top_k`` of them, so
      ``active`` is k/E of the stored experts. KV-shared layers still project
      their queries but not keys or values.

    ``stored`` summed over layers equals :func:`count_parameters` without the
    embedding and the final norm; ``active`` summed likewise equals its
    ``active_per_token`` (tested in ``tests/book/test_routing.py``).
    """
    params = layer_parameters(config, layer)
    h, d = config.hidden_size, config.head_dim_for(layer)
    heads = config.num_attention_heads
    keys = (
        min(context_length, config.sliding_window)
        if config.is_sliding(layer)
        else context_length
    )
    norm_gains = {
        "attention": 2 * d if not config.is_kv_shared(layer) else d
    }  # q_norm (+ k_norm)
    rows: dict[str, dict[str, int]] = {}
    for part in LAYER_PARTS:
        stored = params.get(part, 0)
        active = stored
        flops = 2 * (stored - norm_gains.get(part, 0))
        if part == "attention_scores":
            flops = 2 * 2 * heads * d * keys
        elif part == "router":
            flops = (
                2 * config.num_experts * h if config.enable_moe_block else 0
            )
        elif part == "experts" and config.enable_moe_block:
            active = stored * config.top_k_experts // config.num_experts
            flops = 2 * active
        elif part == "norms":
            flops = 0
        elif part == "per_layer_input":
            flops = 2 * (stored - h) if stored else 0
        rows[part] = {"stored": stored, "active": active, "flops": flops}
    rows["total"] = {
        key: sum(row[key] for row in rows.values())
        for key in ("stored", "active", "flops")
    }
    return rows
