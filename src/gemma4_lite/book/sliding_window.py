"""Sliding-window layers: what a window costs, what it buys, and how a rolling
buffer goes wrong. Chapter: "Sliding-window layers"
(``notebooks/01_sliding_window_layers.ipynb``).

The model code proper lives in ``masks.py`` (which keys a query may see) and
``kv_cache.py`` (the ring buffer). This module holds what the chapter needs
around it:

* arithmetic on a config: attention FLOPs per token, the byte
  and FLOP price of a window (:func:`window_cost`);
* a trace of the package's :class:`~gemma4_lite.kv_cache.RingKVCache` while it
  decodes (:func:`ring_trace`);
* :class:`NaiveRingKVCache`, a ring buffer that is wrong *on purpose* (it
  commits the chunked-prefill bug), and the experiments that catch it against
  uncached attention;
* a switch that silences global attention, so that the reach of sliding
  layers alone (defined once, in ``receptive_field.py``) can be measured on a
  real (tiny) network.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass

import torch

from ..config import SLIDING, Gemma4Config
from ..kv_cache import Gemma4Cache, RingKVCache
from ..masks import ring_positions, visible
from ..model import Gemma4ForCausalLM
from .accounting import count_parameters, dtype_bytes, kv_cache_layer_bytes
from .receptive_field import (
    hypothetical_reaches,
    sliding_path_reach,
    sliding_runs,
)
from .tiny import tiny_model  # noqa: F401  (the chapter calls sw.tiny_model)

# -----------------------------------------------------------------------------
# Receptive fields
# -----------------------------------------------------------------------------


def longest_run(config: Gemma4Config) -> int:
    """Sliding layers in the longest run between two global layers."""
    return max(sliding_runs(config.layer_types), default=0)


# -----------------------------------------------------------------------------
# FLOPs and bytes
# -----------------------------------------------------------------------------


def keys_seen(config: Gemma4Config, layer: int, context: int) -> int:
    """Keys one new query attends to when ``context`` tokens (itself included)
    exist.
    """
    return (
        min(context, config.sliding_window)
        if config.is_sliding(layer)
        else context
    )


def attention_flops_per_token(
    config: Gemma4Config, layer: int, context: int
) -> int:
    """FLOPs of the two attention matmuls for one new token: scores q.k and the
    weighted sum of values, each 2 * heads * head_dim per key (a multiply and
    an add). Projections are not included: they cost the same on sliding and
    global layers of equal shape. KV-shared layers still pay this in full."""
    return (
        4
        * config.num_attention_heads
        * config.head_dim_for(layer)
        * keys_seen(config, layer, context)
    )


def model_attention_flops_per_token(
    config: Gemma4Config, context: int
) -> dict[str, int]:
    """Attention-matmul FLOPs per new token summed over sliding and over global
    layers.
    """
    out = {"sliding": 0, "global": 0}
    for layer in range(config.num_hidden_layers):
        kind = "sliding" if config.is_sliding(layer) else "global"
        out[kind] += attention_flops_per_token(config, layer, context)
    return out


def weight_flops_per_token(config: Gemma4Config) -> int:
    """2 x the weights one token multiplies by: every active layer weight plus
    the (tied) output head. Embedding and per-layer-embedding *lookups* are
    free, so their tables are left out."""
    counts = count_parameters(config)
    active_layers = (
        counts["active_per_token"]
        - counts["embedding"]
        - counts["per_layer_embedding_table"]
    )
    return 2 * (active_layers + config.vocab_size * config.hidden_size)


@dataclass(frozen=True)
class WindowCost:
    """What a sliding window of ``window`` tokens costs one variant, and what
    it buys.
    """

    window: int
    # all sliding layers (each one computes attention over W keys)
    sliding_layers: int
    # those that also store keys and values (not KV-shared)
    sliding_layers_with_kv: int
    # cache bytes one extra window slot costs, over all storing layers
    bytes_per_window_token: int
    # the whole sliding cache once it is full: W slots
    sliding_kv_bytes: int
    # what each token of context adds to the global layers' cache
    global_bytes_per_token: int
    # context at which global layers start to hold more bytes than sliding
    crossover_context: int
    # attention-matmul FLOPs of all sliding layers for one token (full window)
    sliding_flops_per_token: int
    # see weight_flops_per_token
    weight_flops_per_token: int
    # reach (tokens back) of one run of sliding layers between two globals
    run_reach: int
    # reach of the whole model with the global layers' attention switched off
    path_reach: int

    @property
    def sliding_flops_share(self) -> float:
        """Sliding attention FLOPs as a fraction of the weight FLOPs of the
        same token.
        """
        return self.sliding_flops_per_token / self.weight_flops_per_token


def window_cost(
    config: Gemma4Config,
    window: int | None = None,
    dtype: torch.dtype = torch.bfloat16,
) -> WindowCost:
    """The window's price tag for ``config`` (or for the same model with
    another ``window``).
    """
    if window is not None and window != config.sliding_window:
        config = config.replace(sliding_window=window)
    size = dtype_bytes(dtype)
    sliding = config.sliding_layers
    storing = [i for i in sliding if not config.is_kv_shared(i)]
    storing_global = [
        i for i in config.global_layers if not config.is_kv_shared(i)
    ]
    per_window_token = sum(
        2 * config.kv_heads_for(i) * config.head_dim_for(i) * size
        for i in storing
    )
    per_global_token = sum(
        2 * config.kv_heads_for(i) * config.head_dim_for(i) * size
        for i in storing_global
    )
    sliding_bytes = per_window_token * config.sliding_window
    return WindowCost(
        window=config.sliding_window,
        sliding_layers=len(sliding),
        sliding_layers_with_kv=len(storing),
        bytes_per_window_token=per_window_token,
        sliding_kv_bytes=sliding_bytes,
        global_bytes_per_token=per_global_token,
        crossover_context=kv_crossover_context(config),
        sliding_flops_per_token=model_attention_flops_per_token(
            config, config.sliding_window
        )["sliding"],
        weight_flops_per_token=weight_flops_per_token(config),
        run_reach=hypothetical_reaches(config)["one run"],
        path_reach=sliding_path_reach(config),
    )


def kv_crossover_context(config: Gemma4Config) -> int:
    """Smallest context at which the global layers' cache holds at least as
    many bytes as the sliding layers' cache. Past the window the sliding side
    is constant, so this is a ceiling division."""
    per_sliding = sum(
        2 * config.kv_heads_for(i) * config.head_dim_for(i)
        for i in config.sliding_layers
        if not config.is_kv_shared(i)
    )
    per_global = sum(
        2 * config.kv_heads_for(i) * config.head_dim_for(i)
        for i in config.global_layers
        if not config.is_kv_shared(i)
    )
    if per_global >= per_sliding:
        # globals are at least as wide per token: they lead from the first
        # token
        return 1
    return math.ceil(per_sliding * config.sliding_window / per_global)


def sliding_share_of_kv(
    config: Gemma4Config, context: int, dtype: torch.dtype = torch.bfloat16
) -> float:
    """Fraction of the KV cache at ``context`` tokens that sits in sliding
    layers.
    """
    per_layer = kv_cache_layer_bytes(config, context, dtype)
    sliding = sum(per_layer[i] for i in config.sliding_layers)
    return sliding / sum(per_layer)


# -----------------------------------------------------------------------------
# The package's ring buffer, traced
# -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RingStep:
    """The ring right after decoding ``position``: which position each slot
    holds (-1 = empty), the slot just written, and the positions the query at
    ``position`` attended to."""

    position: int
    slot_pos: tuple[int, ...]
    written_slot: int
    visible: tuple[int, ...]


def ring_trace(window: int, steps: int) -> list[RingStep]:
    """Decode ``steps`` tokens through a real :class:`RingKVCache` with one
    head of size one.

    Each key *is* its position (k = v = p) and empty slots hold -1, so the
    ring's slots and the keys it hands back to the query can be read as
    positions: that is how ``visible`` is measured rather than recomputed
    from the window formula.
    """
    ring = RingKVCache(1, 1, 1, window, dtype=torch.float64, device="cpu")
    ring.k.fill_(-1.0)
    trace = []
    for p in range(steps):
        kv = torch.full((1, 1, 1, 1), float(p), dtype=torch.float64)
        # a decode step: the token goes to its slot, the whole ring comes back
        keys, _ = ring.update(kv, kv, torch.tensor([p]))
        trace.append(
            RingStep(
                position=p,
                slot_pos=tuple(int(s) for s in ring.k[0, 0, :, 0]),
                written_slot=p % ring.size,
                # every written slot is visible; -1 marks one never written
                visible=tuple(
                    sorted(int(x) for x in keys[0, 0, :, 0] if x >= 0)
                ),
            )
        )
    return trace


# -----------------------------------------------------------------------------
# A ring buffer with the chunked-prefill bug
# -----------------------------------------------------------------------------


class NaiveRingKVCache(RingKVCache):
    """A rolling buffer that is wrong on purpose, with the interface of
    :class:`RingKVCache`.

    It does what works for decoding one token at a time: write the new keys
    into their slots ``p % W`` first, then let the queries attend to whatever
    the ring holds (masked by absolute position, so nothing wrong is *seen*).
    For a chunk of L >= 2 tokens that is longer than the free slots, the
    chunk's later tokens overwrite keys that its earlier queries still need,
    so those queries silently lose part of their window; a chunk longer than
    W even leaves its first queries with no key at all (NaN).
    """

    def update(self, k: torch.Tensor, v: torch.Tensor, start: int):
        length = k.shape[2]
        for i in range(length):  # 1. write every new key into its slot
            self.k[:, :, (start + i) % self.size] = k[:, :, i]
            self.v[:, :, (start + i) % self.size] = v[:, :, i]
        filled = min(start + length, self.size)
        return self.k[:, :, :filled], self.v[:, :, :filled]  # 2. the ring


class NaiveCache(Gemma4Cache):
    """A :class:`Gemma4Cache` whose sliding layers use the naive ring: their
    queries see what the ring holds after the whole chunk was written."""

    def __init__(self, config: Gemma4Config, batch_size: int = 1, **kw):
        super().__init__(config, batch_size, **kw)
        for i, layer in enumerate(self.layers):
            if isinstance(layer, RingKVCache):
                batch, heads, size, dim = layer.k.shape
                self.layers[i] = NaiveRingKVCache(
                    batch, heads, dim, size, dtype=layer.k.dtype,
                    device=layer.k.device,
                )  # fmt: skip

    def key_positions(self, kind: str, start: int, length: int):
        if kind != SLIDING:
            return super().key_positions(kind, start, length)
        return ring_positions(start + length, self.ring_size, self.device)


def new_cache(
    model: Gemma4ForCausalLM, naive: bool, batch_size: int = 1
) -> Gemma4Cache:
    """An empty cache for ``model``: the package's (rings of W slots) or one
    with naive rings."""
    if not naive:
        return model.new_cache(batch_size)
    kw = dict(dtype=model.dtype, device=model.device)
    return NaiveCache(model.config, batch_size, **kw)


def chunk_coverage(
    window: int, start: int, length: int, naive: bool
) -> tuple[torch.Tensor, torch.Tensor]:
    """Which keys each query of a chunk *needs* and which the cache actually
    *lets it see*.

    The first ``start`` positions are decoded one at a time, then positions
    ``start .. start+length-1`` arrive as one chunk. Keys carry their own
    position as value, so "seen" is read from what the cache returns. Both
    masks are [length, start+length] over absolute key positions.
    """
    kind = NaiveRingKVCache if naive else RingKVCache
    ring = kind(1, 1, 1, window, dtype=torch.float64, device="cpu")
    for p in range(start):
        kv = torch.full((1, 1, 1, 1), float(p), dtype=torch.float64)
        ring.update(kv, kv, p)
    total = start + length
    chunk = torch.arange(start, total, dtype=torch.float64)
    chunk = chunk.view(1, 1, length, 1)
    keys, _ = ring.update(chunk, chunk, start)
    key_pos = keys[0, 0, :, 0].long()  # what the ring handed back
    mask = visible(torch.arange(start, total), key_pos, window)
    seen = torch.zeros(length, total, dtype=torch.bool)
    for q in range(length):
        seen[q, key_pos[mask[q]]] = True
    needed = visible(torch.arange(start, total), torch.arange(total), window)
    return needed, seen


def _max_error(got: torch.Tensor, want: torch.Tensor) -> float:
    diff = (got - want).abs()
    return float("nan") if torch.isnan(diff).any() else float(diff.max())


@torch.no_grad()
def chunk_error_grid(
    model: Gemma4ForCausalLM,
    ids: torch.Tensor,
    starts: list[int],
    lengths: list[int],
    naive: bool,
) -> list[list[float]]:
    """Max |logit error| of one prefill chunk against uncached attention, for
    every (start, length).

    ``grid[i][j]``: decode ``starts[i]`` tokens one by one (exact for both
    rings), then send ``lengths[j]`` tokens as one chunk and compare that
    chunk's logits with the uncached model's. NaN means a query was left with
    no key at all.
    """
    reference = model(ids)
    prefix = new_cache(model, naive, ids.shape[0])
    grid: dict[int, list[float]] = {}
    for start in sorted(set(starts)):
        while (
            prefix.seq_len < start
        ):  # extend the shared prefix one decode step at a time
            model(ids[:, prefix.seq_len : prefix.seq_len + 1], prefix)
        row = []
        for length in lengths:
            cache = copy.deepcopy(prefix)
            got = model(ids[:, start : start + length], cache)
            row.append(_max_error(got, reference[:, start : start + length]))
        grid[start] = row
    return [grid[start] for start in starts]


@torch.no_grad()
def chunked_prefill_error(
    model: Gemma4ForCausalLM, ids: torch.Tensor, chunk: int, naive: bool
) -> float:
    """Prefill the whole of ``ids`` in chunks of ``chunk`` tokens; max |logit
    error| against uncached.
    """
    reference = model(ids)
    cache = new_cache(model, naive, ids.shape[0])
    pieces = [
        model(ids[:, s : s + chunk], cache)
        for s in range(0, ids.shape[1], chunk)
    ]
    return _max_error(torch.cat(pieces, dim=1), reference)


# -----------------------------------------------------------------------------
# Tiny models, decoding traces and a receptive-field probe
# -----------------------------------------------------------------------------


@dataclass(frozen=True)
class DecodeTrace:
    """Per decode step: slots in use in one ring layer, the ring's allocated
    size, positions held by one global layer; and the largest logit error of
    cached decoding against the uncached model."""

    ring_filled: list[int]
    ring_size: list[int]
    global_held: list[int]
    ring_holds_last_window: bool
    max_error: float


@torch.no_grad()
def decode_trace(model: Gemma4ForCausalLM, ids: torch.Tensor) -> DecodeTrace:
    """Feed ``ids`` one token at a time through the package's cache and record
    what the caches hold. After every step the ring of the first sliding
    layer is compared with the ring a one-shot prefill of the same tokens
    leaves behind, which holds exactly the last W positions."""
    config = model.config
    sliding_layer = next(
        i for i in config.sliding_layers if not config.is_kv_shared(i)
    )
    reference = model(ids)
    cache = model.new_cache(ids.shape[0])
    filled, sizes, held, outputs, exact_window = [], [], [], [], True
    for p in range(ids.shape[1]):
        outputs.append(model(ids[:, p : p + 1], cache))
        ring = cache.layers[sliding_layer]
        one_shot = model.new_cache(ids.shape[0])
        model(ids[:, : p + 1], one_shot)
        expected = one_shot.layers[sliding_layer].k
        exact_window &= torch.allclose(ring.k, expected, atol=1e-5)
        filled.append(min(p + 1, ring.size))
        sizes.append(ring.size)
        held.append(cache.seq_len)  # a global layer keeps every position
    return DecodeTrace(
        filled,
        sizes,
        held,
        exact_window,
        _max_error(torch.cat(outputs, dim=1), reference),
    )


@torch.no_grad()
def silence_global_attention(model: Gemma4ForCausalLM) -> None:
    """Zero the output projection of every global layer: its attention then
    adds exactly nothing to the residual stream, and only sliding attention can
    move information between positions."""
    for i in model.config.global_layers:
        model.model.layers[i].self_attn.o_proj.weight.zero_()


# -----------------------------------------------------------------------------
# The reader's ring update, checked against the package
# -----------------------------------------------------------------------------


def check_ring_update(
    update, *, trials: int = 40, seed: int = 0
) -> bool | str:
    """Whether ``update(ring, new, start)`` behaves like the chunk-safe
    update of :class:`~gemma4_lite.kv_cache.RingKVCache` (chapter 1,
    exercise 1.4): True, or a sentence saying at which window, start and
    chunk length the reader's version first differs, and in what.

    ``ring`` is a ``[W, D]`` tensor of keys (position p in slot ``p % W``),
    ``new`` the ``[L, D]`` keys of positions ``start .. start + L - 1``. The
    function returns the keys the chunk's queries attend to in position
    order (the ring's filled slots from the oldest position on, then the
    whole chunk; the package returns them in slot order instead) and leaves
    the ring holding the last W positions. Random windows and random chunk
    lengths, some longer than the window, are sent through both. A stub
    that raises ``NotImplementedError`` propagates it (the check says "not
    attempted").
    """
    gen = torch.Generator().manual_seed(seed)
    for _ in range(trials):
        window = int(torch.randint(1, 9, (1,), generator=gen))
        dim = int(torch.randint(1, 4, (1,), generator=gen))
        package = RingKVCache(
            1, 1, dim, window, dtype=torch.float64, device="cpu"
        )
        ring = torch.zeros(window, dim, dtype=torch.float64)
        start = 0
        for _ in range(int(torch.randint(1, 6, (1,), generator=gen))):
            length = int(torch.randint(1, 2 * window + 2, (1,), generator=gen))
            new = torch.randn(length, dim, generator=gen, dtype=torch.float64)
            slotted, _ = package.update(
                new[None, None], new[None, None], start
            )
            filled = min(start, window)
            oldest_first = [p % window for p in range(start - filled, start)]
            want = torch.cat(
                [slotted[0, 0][oldest_first], slotted[0, 0][filled:]]
            )
            where = f"W = {window}, a chunk of {length} at start = {start}"
            try:
                got = update(ring, new.clone(), start)
            except NotImplementedError:
                raise
            except Exception as error:
                return f"{where}: raised {type(error).__name__}: {error}"
            if not isinstance(got, torch.Tensor):
                return (
                    f"{where}: returned {type(got).__name__}, not the "
                    "attended keys"
                )
            if got.shape != want.shape:
                return (
                    f"{where}: returned {got.shape[0]} keys, expected "
                    f"{want.shape[0]} (min(start, W) old ones + the chunk)"
                )
            if not torch.equal(got, want):
                row = int((got != want).any(-1).nonzero()[0])
                position = start - filled + row
                return (
                    f"{where}: attended key {row} (position {position}) "
                    "differs; the keys go in position order, oldest first"
                )
            if not torch.equal(ring, package.k[0, 0]):
                slot = int((ring != package.k[0, 0]).any(-1).nonzero()[0])
                return f"{where}: afterwards ring slot {slot} differs"
            start += length
    return True
