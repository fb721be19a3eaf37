"""How far information can travel through a stack of sliding and global layers.
Chapter: "Global attention layers".

A hidden state at position ``p`` after ``L`` layers depends on a contiguous run
of input positions ``p - r .. p``; we call ``r`` the *reach*. Everything
outside attention (norms, MLPs, MoE, per-layer inputs, the final norm and head)
works position by position, so only attention can grow it:

* a sliding layer with window ``W`` lets position ``p`` read keys
  ``p - W + 1 .. p``, each of which already reaches ``r`` tokens back, so the
  reach grows by exactly ``W - 1``;
* a global layer reads every earlier key, so the reach becomes the whole prefix
  (``math.inf`` here);
* a KV-shared layer (E2B/E4B) reads the keys and values its *producer* layer
  computed from the producer's input, so its attention adds ``W - 1`` to the
  producer's input reach, not to its own.

This module gives the closed form (:func:`reach_by_depth`), the same thing by
brute force over boolean dependency matrices (:func:`dependency_by_depth`, used
by the tests as an independent check), and the empirical measurement on a real
model: the gradient of one position's hidden state with respect to every input
embedding (:func:`input_gradient_norms`), which is nonzero exactly inside the
predicted reach.
"""

from __future__ import annotations

import math
from typing import Sequence

import torch

from ..config import FULL, SLIDING, Gemma4Config
from ..masks import visible

INF = math.inf


def _producers(
    layer_types: Sequence[str], kv_producers: Sequence[int | None] | None
) -> list[int]:
    if kv_producers is None:
        return list(range(len(layer_types)))
    if len(kv_producers) != len(layer_types):
        raise ValueError(
            f"kv_producers has {len(kv_producers)} entries for "
            f"{len(layer_types)} layers"
        )
    out = []
    for i, (kind, j) in enumerate(zip(layer_types, kv_producers)):
        j = i if j is None else j
        if not 0 <= j <= i or layer_types[j] != kind:
            raise ValueError(
                f"layer {i} ({kind}) cannot read keys/values from layer {j}: "
                "a producer must be an earlier (or the same) layer of the "
                "same attention type"
            )
        out.append(j)
    return out


def reach_by_depth(
    layer_types: Sequence[str],
    window: int,
    kv_producers: Sequence[int | None] | None = None,
) -> list[float]:
    """Reach after 0, 1, ..., n layers: entry ``L`` is how many tokens back the
    hidden state after ``L`` layers can see (``math.inf``: the whole prefix).
    Entry 0 is 0, the embedding sees only its own token.

    ``kv_producers[i]`` is the layer whose keys/values layer ``i`` attends to
    (``i`` itself unless KV is shared); leave it ``None`` for a stack where
    every layer computes its own.
    """
    if window < 1:
        raise ValueError(f"window must be >= 1, got {window}")
    producers = _producers(layer_types, kv_producers)
    reach: list[float] = [0]
    for i, kind in enumerate(layer_types):
        if kind not in (SLIDING, FULL):
            raise ValueError(f"unknown layer type {kind!r} at layer {i}")
        # keys/values were computed from the input of the producer layer, whose
        # reach is reach[producer]
        through_attention = (
            INF if kind == FULL else reach[producers[i]] + (window - 1)
        )
        # the residual stream (and the query) keep whatever layer i's own input
        # already reaches
        reach.append(max(reach[i], through_attention))
    return reach


def config_reach(config: Gemma4Config) -> list[float]:
    """:func:`reach_by_depth` for a model config, KV sharing included."""
    producers = [
        config.kv_producer(i) for i in range(config.num_hidden_layers)
    ]
    return reach_by_depth(config.layer_types, config.sliding_window, producers)


def sliding_only_reach(num_layers: int, window: int) -> list[float]:
    """The counterfactual with no global layer at all: ``L * (W - 1)`` after
    ``L`` layers.
    """
    return reach_by_depth([SLIDING] * num_layers, window)


def receptive_field(reach: Sequence[float], position: int) -> list[int]:
    """How many input tokens can influence ``position`` after each depth:
    ``min(position, reach) + 1`` (a token near the start of the sequence runs
    out of prefix before it runs out of reach)."""
    if position < 0:
        raise ValueError("position must be >= 0")
    return [int(min(position, r)) + 1 for r in reach]


def layers_to_span(context_length: int, window: int) -> int:
    """Sliding layers needed before the last of ``context_length`` tokens can
    see the first one.
    """
    if window < 2:
        raise ValueError("a window of 1 never reaches an earlier token")
    return math.ceil((context_length - 1) / (window - 1))


def dependency_by_depth(
    layer_types: Sequence[str],
    window: int,
    length: int,
    kv_producers: Sequence[int | None] | None = None,
) -> torch.Tensor:
    """Brute force: ``out[L, p, j]`` is True when input token ``j`` can
    influence position ``p`` after ``L`` layers. Propagates boolean matrices
    through the attention masks (an independent check of
    :func:`reach_by_depth`; quadratic in ``length``, so keep it small)."""
    producers = _producers(layer_types, kv_producers)
    pos = torch.arange(length)
    deps = [torch.eye(length, dtype=torch.bool)]
    for i, kind in enumerate(layer_types):
        mask = visible(pos, pos, window if kind == SLIDING else None).float()
        through_attention = (
            mask @ deps[producers[i]].float()
        ) > 0  # p sees key k, key k depends on j
        deps.append(deps[i] | through_attention)
    return torch.stack(deps)


# ------------------------------------------------------- empirical measurement
def input_gradient_norms(
    model: torch.nn.Module,
    input_ids: torch.Tensor,
    position: int,
    *,
    seed: int = 0,
) -> torch.Tensor:
    """``out[L, j]`` = ``|| d (u . h_L[position]) / d e_j ||`` for every depth
    ``L = 0..n`` and input position ``j``, where ``h_L`` is the residual stream
    after ``L`` layers, ``e_j`` the (scaled) input embedding of token ``j`` and
    ``u`` a fixed random direction (a random projection rather than a sum, so
    no dependency can cancel by symmetry).

    ``model`` is a :class:`~gemma4_lite.model.Gemma4ForCausalLM` or its
    ``.model``. The embeddings are made a leaf with a forward hook, and the
    layers' outputs are captured with hooks, so the measurement runs the
    package's own forward pass unchanged. ``input_ids`` must have batch size 1.
    """
    text_model = getattr(model, "model", model)
    if input_ids.dim() != 2 or input_ids.shape[0] != 1:
        raise ValueError("input_ids must have shape [1, sequence]")
    if not 0 <= position < input_ids.shape[1]:
        raise ValueError(
            f"position {position} is outside the sequence of length "
            f"{input_ids.shape[1]}"
        )
    captured: list[torch.Tensor] = []

    def make_leaf(
        module, args, output
    ):  # the embedding output becomes the leaf we differentiate against
        leaf = output.detach().requires_grad_(True)
        captured.append(leaf)
        return leaf

    def keep(module, args, output):  # a layer returns (h, its keys/values)
        captured.append(output[0])

    hooks = [text_model.embed_tokens.register_forward_hook(make_leaf)]
    hooks += [layer.register_forward_hook(keep) for layer in text_model.layers]
    try:
        with torch.enable_grad():
            text_model(input_ids)
            leaf = captured[0]
            gen = torch.Generator().manual_seed(seed)
            u = torch.randn(leaf.shape[-1], generator=gen).to(leaf.dtype)
            rows = []
            for depth, hidden in enumerate(captured):
                if (
                    depth == 0
                ):  # d(u . e_p)/d e_j is u at j = p and 0 elsewhere
                    row = torch.zeros(leaf.shape[1], dtype=leaf.dtype)
                    row[position] = u.norm()
                else:
                    (grad,) = torch.autograd.grad(
                        hidden[0, position] @ u, leaf, retain_graph=True
                    )
                    row = grad[0].norm(dim=-1)
                rows.append(row.detach())
    finally:
        for hook in hooks:
            hook.remove()
    return torch.stack(rows)


def measured_reach(gradient_norms: torch.Tensor, position: int) -> list[int]:
    """Tokens back to the earliest input with a nonzero gradient, per depth
    (from :func:`input_gradient_norms`). Also checks that nothing after
    ``position`` leaks in (causality) and that the nonzero inputs form one
    contiguous run ending at ``position``."""
    out = []
    for depth, row in enumerate(gradient_norms):
        nonzero = torch.nonzero(row != 0).flatten().tolist()
        if not nonzero or nonzero[-1] != position:
            raise AssertionError(
                f"depth {depth}: the position's own token should be the last "
                "nonzero input"
            )
        if nonzero != list(range(nonzero[0], position + 1)):
            raise AssertionError(
                f"depth {depth}: the inputs with nonzero gradient are not "
                "contiguous"
            )
        out.append(position - nonzero[0])
    return out


def sliding_runs(layer_types: Sequence[str]) -> list[int]:
    """Lengths of the runs of consecutive sliding layers (the stretches
    between global layers)."""
    runs, current = [], 0
    for kind in layer_types:
        if kind == SLIDING:
            current += 1
        elif current:
            runs.append(current)
            current = 0
    if current:
        runs.append(current)
    return runs


def sliding_path_reach(config: Gemma4Config) -> int:
    """Reach of the last layer with every global layer's attention switched
    off (its residual path kept), KV sharing included.

    Once their attention is off, the global layers add nothing, so this is
    :func:`reach_by_depth` over the sliding layers alone, each KV-shared layer
    pointed at its producer. A KV-shared sliding layer reads keys made from
    its producer's input, which the residual stream has already gone past: the
    shared layers of E2B/E4B add no reach at all.
    """
    layers = config.sliding_layers
    index = {layer: i for i, layer in enumerate(layers)}
    producers = [index[config.kv_producer(layer)] for layer in layers]
    kinds = [SLIDING] * len(layers)
    return int(reach_by_depth(kinds, config.sliding_window, producers)[-1])


REACH_CASES = {
    "one run": "the longest run of sliding layers between two globals",
    "globals off": "the global layers' attention switched off",
    "all sliding, shared": "every layer sliding, KV sharing kept",
    "all sliding": "every layer sliding, no KV sharing",
}


def hypothetical_reaches(config: Gemma4Config) -> dict[str, int]:
    """The reach (tokens back, as everywhere in the book) that sliding
    attention alone gives ``config`` in each case of :data:`REACH_CASES`:
    what the windows can carry without a global layer's help."""
    layers, window = config.num_hidden_layers, config.sliding_window
    producers = [config.kv_producer(i) for i in range(layers)]
    all_sliding = [SLIDING] * layers
    longest_run = max(sliding_runs(config.layer_types), default=0)
    return {
        "one run": int(sliding_only_reach(longest_run, window)[-1]),
        "globals off": sliding_path_reach(config),
        "all sliding, shared": int(
            reach_by_depth(all_sliding, window, producers)[-1]
        ),
        "all sliding": int(sliding_only_reach(layers, window)[-1]),
    }
