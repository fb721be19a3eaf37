"""Key/value caches: a ring buffer for sliding layers, a plain buffer for
global layers, and nothing at all for KV-shared layers (they read their
producer's keys and values). Chapter: "Sliding-window layers".

Every buffer is allocated once and written at explicit positions; nothing
is concatenated per decode step. Which cached keys a query may see is worked
out once per forward pass for all layers, from
:meth:`Gemma4Cache.key_positions`.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F

from .config import FULL, Gemma4Config
from .masks import ring_positions


class KVBuffers:
    """The keys and values of one layer, [batch, kv_heads, slots,
    head_dim] each, allocated as zeros."""

    def __init__(
        self, batch_size: int, kv_heads: int, head_dim: int, size: int, *,
        dtype: torch.dtype, device: torch.device | str,
    ) -> None:  # fmt: skip
        shape = (batch_size, kv_heads, size, head_dim)
        self.k = torch.zeros(shape, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)

    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes


class RingKVCache(KVBuffers):
    """The rolling buffer of a sliding layer: position p lives in slot
    ``p % size``, and ``size`` is the window (or the cache's ``max_length``
    when that is shorter: no more positions can arrive). Its keys and
    values, ``k`` and ``v``, are [batch, kv_heads, size, head_dim] tensors
    allocated once (:class:`KVBuffers`).

    A decode step writes its key first and then attends to every filled
    slot: the ring then holds exactly positions p-W+1 .. p. A prefill *chunk*
    cannot do that: writing a chunk longer than the free space first would
    overwrite keys that the chunk's own early queries still need (the classic
    chunked-prefill bug). So a chunk attends to the old ring contents plus
    the whole chunk, and only afterwards keeps its last ``size`` keys.
    """

    @property
    def size(self) -> int:
        return self.k.shape[2]

    def update(
        self, k: torch.Tensor, v: torch.Tensor, start: int | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Store the keys/values of positions ``start..``; return the keys and
        values the new queries attend to, in the order of
        :meth:`Gemma4Cache.key_positions`.

        A tensor ``start`` (one element) is a decode step with shapes that
        never change: the token goes to its slot and the whole ring comes
        back, masked by :meth:`Gemma4Cache.key_positions`.
        """
        size = self.size
        if isinstance(start, torch.Tensor):
            self.k.index_copy_(2, start % size, k)
            self.v.index_copy_(2, start % size, v)
            return self.k, self.v
        length, filled = k.shape[2], min(start, size)
        keys = torch.cat([self.k[:, :, :filled], k], dim=2)
        values = torch.cat([self.v[:, :, :filled], v], dim=2)
        keep = min(length, size)
        end = start + length
        slots = torch.arange(end - keep, end, device=k.device) % size
        self.k.index_copy_(2, slots, k[:, :, length - keep :])
        self.v.index_copy_(2, slots, v[:, :, length - keep :])
        return keys, values


class GlobalKVCache(KVBuffers):
    """The cache of a global layer: every position. Allocated at its final
    size when the cache knows its ``max_length``; otherwise grown by doubling
    as tokens arrive, never past ``limit``."""

    def __init__(self, *shape: int, limit: int, **kw: Any) -> None:
        super().__init__(*shape, **kw)
        self.limit = limit

    def update(
        self, k: torch.Tensor, v: torch.Tensor, start: int | torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        if isinstance(start, torch.Tensor):  # a decode step: static shapes
            self.k.index_copy_(2, start, k)
            self.v.index_copy_(2, start, v)
            return self.k, self.v
        end, size = start + k.shape[2], self.k.shape[2]
        if end > size:  # double the slots (at least to end, at most limit)
            more = (0, 0, 0, min(max(end, 2 * size), self.limit) - size)
            self.k, self.v = F.pad(self.k, more), F.pad(self.v, more)
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        return self.k[:, :, :end], self.v[:, :, :end]


class Gemma4Cache:
    """One cache per layer that computes its own keys/values; ``None`` for
    KV-shared layers.

    With ``max_length`` (prompt plus new tokens) every buffer is allocated
    once at its final size, and writing past it raises an error. Without it,
    global buffers grow as needed up to the model's context length.

    ``lookahead`` k gives sliding rings k more slots, so that a pass of up
    to k + 1 tokens can be undone by setting ``seq_len`` back (speculative
    decoding): with W + k slots the pass overwrites none of the keys the
    window still needs after the undo. Slots of undone positions then read
    as positions older than the window (masked) and global entries past
    ``seq_len`` as future ones (masked, then overwritten).
    """

    def __init__(
        self,
        config: Gemma4Config,
        batch_size: int = 1,
        *,
        max_length: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
        lookahead: int = 0,
    ) -> None:
        limit = config.max_position_embeddings
        if max_length is not None and not 1 <= max_length <= limit:
            raise ValueError(
                f"max_length {max_length} must be between 1 and the "
                f"context length {limit} (max_position_embeddings)"
            )
        self.config = config
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.max_length = max_length  # None: global buffers grow
        self.seq_len = 0
        # left padding of each row (set by the first call with a mask)
        self.pad: torch.Tensor | None = None
        self.capacity = max_length or limit  # tokens it can ever hold
        self.ring_size = min(config.sliding_window + lookahead, self.capacity)
        self.layers: list[RingKVCache | GlobalKVCache | None] = []
        kw = dict(dtype=dtype, device=device)
        first = max_length or min(256, limit)  # global slots to start with
        for i in range(config.num_hidden_layers):
            shape = batch_size, config.kv_heads_for(i), config.head_dim_for(i)
            if config.is_kv_shared(i):
                layer = None  # it reads its producer's keys and values
            elif config.is_sliding(i):
                layer = RingKVCache(*shape, self.ring_size, **kw)
            else:
                layer = GlobalKVCache(*shape, first, limit=self.capacity, **kw)
            self.layers.append(layer)

    def check_room(self, length: int) -> None:
        """Raise before ``length`` more tokens would overflow the cache."""
        if self.seq_len + length > self.capacity:
            raise ValueError(
                f"the cache holds {self.seq_len} tokens and was made for at "
                f"most {self.capacity}; {length} more would overflow it. Make "
                "the cache with a larger max_length (prompt plus new tokens)"
            )

    def key_positions(
        self, kind: str, start: int | torch.Tensor, length: int
    ) -> torch.Tensor:
        """Positions of the keys that a chunk of ``length`` tokens at
        ``start`` attends to, in the order the layer caches return them.
        A tensor ``start`` is a decode step over whole buffers, whose
        positions are computed in tensors, so that a compiled step never
        depends on a Python number that changes from step to step."""
        decode = isinstance(start, torch.Tensor)
        if kind == FULL:  # slot t holds position t
            # a decode step's cache was made with max_length: its global
            # buffers have all their ``capacity`` slots from the start
            end = self.capacity if decode else start + length
            return torch.arange(end, device=self.device)
        if decode:  # after the write, slot s holds the latest p = s mod size
            slot = torch.arange(self.ring_size, device=self.device)
            return start - torch.remainder(start - slot, self.ring_size)
        old = ring_positions(start, self.ring_size, self.device)
        new = torch.arange(start, start + length, device=self.device)
        return torch.cat([old, new])

    def nbytes(self) -> int:
        """Bytes of key/value storage held right now, over all layers."""
        return sum(self.layer_nbytes())

    def layer_nbytes(self) -> list[int]:
        return [0 if c is None else c.nbytes() for c in self.layers]
