"""Key/value caches: a ring buffer for sliding layers, a growing buffer for global layers, and nothing
at all for KV-shared layers (they read their producer's keys and values). Chapter: "Sliding-window layers".

Every cache is allocated once and written at explicit positions; nothing is concatenated per decode step.
"""

from __future__ import annotations

import torch

from .config import Gemma4Config
from .masks import visible

Attended = tuple[torch.Tensor, torch.Tensor, "torch.Tensor | None"]


class RingKVCache:
    """The rolling buffer of a sliding layer: W slots, position p lives in slot ``p % W``.

    A decode step writes its key first and then attends to every filled slot: the ring then holds exactly
    positions p-W+1 .. p, the window. A prefill *chunk* cannot do that: writing a chunk longer than the
    free space first would overwrite keys that the chunk's own early queries still need (the classic
    chunked-prefill bug). So a chunk attends to (old ring contents + the whole chunk) under a mask built
    from absolute positions, and only afterwards keeps its last W keys.
    """

    def __init__(
        self,
        batch_size: int,
        kv_heads: int,
        head_dim: int,
        window: int,
        *,
        dtype: torch.dtype,
        device: torch.device | str,
        capacity: int | None = None,
    ) -> None:
        size = window if capacity is None else max(1, min(window, capacity))
        self.window = window
        self.k = torch.zeros(
            batch_size, kv_heads, size, head_dim, dtype=dtype, device=device
        )
        self.v = torch.zeros_like(self.k)
        self.slot_pos = torch.full(
            (size,), -1, dtype=torch.long, device=device
        )  # -1: never written
        self.seen = 0

    @property
    def size(self) -> int:
        return self.k.shape[2]

    def update(self, k: torch.Tensor, v: torch.Tensor, start: int) -> Attended:
        """Store new keys/values for positions ``start..`` and return what the new queries attend to."""
        if start != self.seen:
            raise ValueError(
                f"ring cache holds {self.seen} tokens but the step starts at position {start}"
            )
        length, size = k.shape[2], self.size
        if length == 1:
            slot = start % size
            self.k[:, :, slot] = k[:, :, 0]
            self.v[:, :, slot] = v[:, :, 0]
            self.slot_pos[slot] = start
            self.seen += 1
            filled = min(
                self.seen, size
            )  # slots fill in order 0, 1, ... before the first wrap
            return self.k[:, :, :filled], self.v[:, :, :filled], None
        filled = min(self.seen, size)
        positions = torch.arange(start, start + length, device=k.device)
        if filled:
            keys = torch.cat([self.k[:, :, :filled], k], dim=2)
            values = torch.cat([self.v[:, :, :filled], v], dim=2)
            key_pos = torch.cat([self.slot_pos[:filled], positions])
        else:  # first chunk: nothing cached yet
            keys, values, key_pos = k, v, positions
        mask = visible(positions, key_pos, self.window)
        keep = min(length, size)
        kept_pos = positions[length - keep :]
        slots = kept_pos % size
        self.k.index_copy_(2, slots, k[:, :, length - keep :])
        self.v.index_copy_(2, slots, v[:, :, length - keep :])
        self.slot_pos[slots] = kept_pos
        self.seen += length
        return keys, values, mask

    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes


class GlobalKVCache:
    """The cache of a global layer: every position, preallocated when the final length is known and
    otherwise grown by doubling (never past ``max_length``)."""

    def __init__(
        self,
        batch_size: int,
        kv_heads: int,
        head_dim: int,
        *,
        dtype: torch.dtype,
        device: torch.device | str,
        capacity: int | None,
        max_length: int,
    ) -> None:
        self.max_length = max_length
        initial = capacity if capacity is not None else min(256, max_length)
        self.k = torch.zeros(
            batch_size, kv_heads, initial, head_dim, dtype=dtype, device=device
        )
        self.v = torch.zeros_like(self.k)
        self.seen = 0

    def _reserve(self, length: int) -> None:
        if length <= self.k.shape[2]:
            return
        new_size = min(max(length, 2 * self.k.shape[2]), self.max_length)
        grown_k = self.k.new_zeros(
            *self.k.shape[:2], new_size, self.k.shape[3]
        )
        grown_v = torch.zeros_like(grown_k)
        grown_k[:, :, : self.seen] = self.k[:, :, : self.seen]
        grown_v[:, :, : self.seen] = self.v[:, :, : self.seen]
        self.k, self.v = grown_k, grown_v

    def update(self, k: torch.Tensor, v: torch.Tensor, start: int) -> Attended:
        if start != self.seen:
            raise ValueError(
                f"global cache holds {self.seen} tokens but the step starts at position {start}"
            )
        end = start + k.shape[2]
        self._reserve(end)
        self.k[:, :, start:end] = k
        self.v[:, :, start:end] = v
        self.seen = end
        if k.shape[2] == 1:
            return self.k[:, :, :end], self.v[:, :, :end], None
        mask = visible(
            torch.arange(start, end, device=k.device),
            torch.arange(end, device=k.device),
            None,
        )
        return self.k[:, :, :end], self.v[:, :, :end], mask

    def nbytes(self) -> int:
        return self.k.nbytes + self.v.nbytes


class Gemma4Cache:
    """One cache entry per layer that computes its own keys/values; ``None`` for KV-shared layers.

    ``max_length`` (prompt plus new tokens) lets every buffer be allocated once at its final size.
    """

    def __init__(
        self,
        config: Gemma4Config,
        batch_size: int = 1,
        *,
        max_length: int | None = None,
        dtype: torch.dtype = torch.float32,
        device: torch.device | str = "cpu",
    ) -> None:
        if (
            max_length is not None
            and max_length > config.max_position_embeddings
        ):
            raise ValueError(
                f"max_length {max_length} exceeds the context length "
                f"{config.max_position_embeddings} (max_position_embeddings)"
            )
        self.config = config
        self.seq_len = 0
        self.layers: list[RingKVCache | GlobalKVCache | None] = []
        for i in range(config.num_hidden_layers):
            if config.is_kv_shared(i):
                self.layers.append(None)
            elif config.is_sliding(i):
                self.layers.append(
                    RingKVCache(
                        batch_size,
                        config.kv_heads_for(i),
                        config.head_dim_for(i),
                        config.sliding_window,
                        dtype=dtype,
                        device=device,
                        capacity=max_length,
                    )
                )
            else:
                self.layers.append(
                    GlobalKVCache(
                        batch_size,
                        config.kv_heads_for(i),
                        config.head_dim_for(i),
                        dtype=dtype,
                        device=device,
                        capacity=max_length,
                        max_length=config.max_position_embeddings,
                    )
                )

    def nbytes(self) -> int:
        """Bytes of key/value storage held right now, over all layers."""
        return sum(
            layer.nbytes() for layer in self.layers if layer is not None
        )

    def layer_nbytes(self) -> list[int]:
        return [
            0 if layer is None else layer.nbytes() for layer in self.layers
        ]
