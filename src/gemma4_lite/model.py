"""The assembled Gemma 4 text decoder. Chapter: "The full model".

Module names are the Hugging Face checkpoint keys
(``model.layers.3.self_attn.o_proj.weight`` ...), except that projections
reading the same input are stacked (``qkv_proj``, ``gate_up_proj``); the one
mapping between the two lives in ``loading.py``.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import loading
from .attention import KV, set_attention
from .block import Gemma4DecoderLayer
from .config import SLIDING, Gemma4Config
from .kv_cache import Gemma4Cache
from .masks import visible
from .norms import RMSNorm
from .ple import ScaledEmbedding
from .rope import rotary_tables


class Gemma4TextModel(nn.Module):
    def __init__(self, config: Gemma4Config) -> None:
        super().__init__()
        self.config = config
        hidden, layers = config.hidden_size, config.num_hidden_layers
        self.embed_tokens = ScaledEmbedding(
            config.vocab_size, hidden, hidden**0.5
        )
        self.layers = nn.ModuleList(
            Gemma4DecoderLayer(config, i) for i in range(layers)
        )
        self.norm = RMSNorm(hidden, config.rms_norm_eps)
        if config.hidden_size_per_layer_input:
            dim = config.hidden_size_per_layer_input
            self.embed_tokens_per_layer = ScaledEmbedding(
                config.vocab_size_per_layer_input, layers * dim, dim**0.5
            )
            self.per_layer_model_projection = nn.Linear(
                hidden, layers * dim, bias=False
            )
            self.per_layer_projection_norm = RMSNorm(dim, config.rms_norm_eps)
        self.rope = rotary_tables(config)
        self.lends_kv = [config.stores_shared_kv(i) for i in range(layers)]

    def forward(
        self,
        input_ids: torch.Tensor,
        cache: Gemma4Cache | None = None,
        *,
        pad: torch.Tensor | None = None,
        last_only: bool = False,
        position: torch.Tensor | None = None,
        kv_out: dict[int, KV | None] | None = None,
    ) -> torch.Tensor:
        """Final-normed hidden states [B, S, H] for ``input_ids`` [B, S],
        continuing ``cache`` if given. ``pad`` [B] counts each row's left
        padding. ``last_only`` returns the last position only ([B, 1, H]);
        KV-shared layers then run on it alone, since they write no cache
        and nothing after them reads the other positions.

        ``position`` (a 1-element tensor) makes this one decode step at that
        position with shapes that never change (whole cache buffers, masks
        computed in tensors), which ``torch.compile`` turns into one graph;
        the caller then advances ``cache.seq_len``.

        ``kv_out`` maps layer indices to None; each is replaced by the keys
        and values that layer attended to (what a drafter reads), in the
        order of :meth:`Gemma4Cache.key_positions` when there is a cache
        (a global layer's are a view of its buffer).
        """
        if cache is not None:
            cache.pad = pad if pad is not None else cache.pad
            pad = cache.pad
        start = cache.seq_len if cache is not None else 0
        start = position if position is not None else start
        h = self.embed_tokens(input_ids)
        ple = None
        if self.config.hidden_size_per_layer_input:
            ple = self.per_layer_inputs(input_ids, h)
        rope, masks = self.rope_and_masks(h, start, cache, pad)
        shared: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}
        for i, layer in enumerate(self.layers):
            if last_only and i == self.config.first_kv_shared_layer:
                h, ple, rope, masks = _last_position(h, ple, rope, masks)
            kind = self.config.layer_types[i]
            h, kv = layer(
                h, rope[kind], masks[kind],
                cache.layers[i] if cache is not None else None, start,
                ple[:, :, i] if ple is not None else None, shared.get(kind),
            )  # fmt: skip
            if self.lends_kv[i]:
                shared[kind] = kv
            if kv_out is not None and i in kv_out:
                kv_out[i] = kv
        if cache is not None and position is None:
            cache.seq_len += input_ids.shape[1]
        return self.norm(h[:, -1:] if last_only else h)

    def per_layer_inputs(
        self, ids: torch.Tensor, embeds: torch.Tensor
    ) -> torch.Tensor:
        """[B, S, L, P]: ``(norm(proj(embeds) / sqrt(H)) + table[ids] *
        sqrt(P)) / sqrt(2)``, formed once per forward pass for every layer
        (E2B, E4B; chapter "Scaling decisions")."""
        shape = (*ids.shape, self.config.num_hidden_layers, -1)
        token_part = self.embed_tokens_per_layer(ids).reshape(shape)
        context = self.per_layer_model_projection(embeds)
        context = context * self.config.hidden_size**-0.5
        context = self.per_layer_projection_norm(context.reshape(shape))
        return (context + token_part) * 2.0**-0.5

    def rope_and_masks(
        self,
        h: torch.Tensor,
        start: int | torch.Tensor,
        cache: Gemma4Cache | None,
        pad: torch.Tensor | None,
    ) -> tuple[dict, dict]:
        """cos/sin and the attention mask of each layer type, computed once
        per forward pass for all layers. A tensor ``start`` (a decode step)
        keeps every shape and value on the device: see ``forward``."""
        length = h.shape[1]
        steps = torch.arange(length, device=h.device) + start
        if not isinstance(start, torch.Tensor):
            for table in self.rope.values():
                table.reserve(start + length, h.device)
        positions = steps[None]
        if pad is not None:  # a left-padded row starts counting at its text
            positions = (positions - pad[:, None]).clamp(min=0)
        rope = {k: table(positions, h.dtype) for k, table in self.rope.items()}
        masks = {}
        for kind in rope:
            keys = steps
            if cache is not None:
                keys = cache.key_positions(kind, start, length)
            window = self.config.sliding_window if kind == SLIDING else None
            # (ring slots not yet written hold negative positions)
            mask = visible(steps, keys, window) & (keys >= 0)
            if pad is not None:  # [B, S, T]: no row sees its left padding,
                # but a padding query sees itself (an empty softmax row
                # would give NaN, and 0 * NaN would leak into real rows)
                real = keys >= pad[:, None, None]
                mask = mask & (real | (keys == steps[:, None]))
            masks[kind] = mask
        return rope, masks


def _last_position(h, ple, rope, masks):
    rope = {k: (cos[:, -1:], sin[:, -1:]) for k, (cos, sin) in rope.items()}
    masks = {k: mask[..., -1:, :] for k, mask in masks.items()}
    return h[:, -1:], None if ple is None else ple[:, -1:], rope, masks


class Gemma4ForCausalLM(nn.Module):
    """Gemma 4 text decoder with its tied, soft-capped language-model head.

    ``model(input_ids)`` returns logits [B, S, V] (the training loss is
    ``gemma4_lite.book.train.causal_lm_loss`` of them). Pass a cache from
    :meth:`new_cache` to prefill or decode incrementally, and an
    ``attention_mask`` [B, cached + S] of 0s then 1s for left-padded
    batches (the cache remembers the padding).
    """

    def __init__(
        self,
        config: Gemma4Config,
        *,
        init: bool = True,
        attn_implementation: str = "eager",
    ) -> None:
        super().__init__()
        self.config = config
        self.model = Gemma4TextModel(config)
        # generation defaults read from generation_config.json, if any
        self.generation_config: dict = {}
        self.set_attn_implementation(attn_implementation)
        if init:
            init_weights(self)

    def set_attn_implementation(self, name: str) -> None:
        """``"eager"``: attention written out, bitwise equal to transformers'
        eager path (the default); ``"sdpa"``: PyTorch's fused kernel, faster
        on long prompts and equal up to the last bits."""
        set_attention(self.model.layers, name)

    def __getstate__(self) -> dict:
        """Copies and pickles leave out the compiled decode step: it is bound
        to this object's weights, and a copy must decode with its own."""
        state = dict(super().__getstate__())
        state.pop("_compiled_step", None)
        return state

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.embed_tokens.weight.device

    def new_cache(
        self,
        batch_size: int = 1,
        max_length: int | None = None,
        lookahead: int = 0,
    ) -> Gemma4Cache:
        """An empty cache; give ``max_length`` (prompt + new tokens) to
        allocate every buffer (and RoPE table) once at its final size, and
        ``lookahead`` to let it roll back that many tokens (see
        :class:`Gemma4Cache`)."""
        for table in self.model.rope.values():
            table.reserve(max_length or 0, self.device)
        return Gemma4Cache(
            self.config, batch_size, max_length=max_length,
            dtype=self.dtype, device=self.device, lookahead=lookahead,
        )  # fmt: skip

    def check_input(
        self,
        input_ids: torch.Tensor,
        cache: Gemma4Cache | None = None,
        attention_mask: torch.Tensor | None = None,
        new_tokens: int = 0,
    ) -> torch.Tensor | None:
        """Reject what would otherwise give a silent wrong answer or an
        obscure index error (``new_tokens``: how many ``generate`` will
        add); return each row's left padding, if any."""
        is_2d = isinstance(input_ids, torch.Tensor) and input_ids.dim() == 2
        if not is_2d or input_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                "input_ids must be a 2-D tensor [batch, sequence] of integer "
                "token ids"
            )
        batch, length = input_ids.shape
        if length == 0:
            raise ValueError("input_ids is empty: give at least one token")
        low, high = int(input_ids.min()), int(input_ids.max())
        vocab = self.config.vocab_size
        if low < 0 or high >= vocab:
            raise ValueError(
                f"token id {low if low < 0 else high} is out of range: the "
                f"vocabulary has ids 0..{vocab - 1}"
            )
        start = cache.seq_len if cache is not None else 0
        limit = self.config.max_position_embeddings
        if start + length + new_tokens > limit:
            raise ValueError(
                f"sequence would reach {start + length + new_tokens} tokens, "
                f"past the context length of {limit} (max_position_embeddings)"
            )
        if cache is not None and batch != cache.batch_size:
            raise ValueError(
                f"input batch {batch} does not match the cache's batch "
                f"{cache.batch_size}"
            )
        if attention_mask is None:
            return None
        return left_padding(attention_mask, batch, start + length)

    def forward(
        self,
        input_ids: torch.Tensor,
        cache: Gemma4Cache | None = None,
        *,
        attention_mask: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        pad = self.check_input(input_ids, cache, attention_mask)
        return self.logits(input_ids, cache, pad=pad, last_only=last_only)

    def logits(
        self,
        input_ids: torch.Tensor,
        cache: Gemma4Cache | None = None,
        *,
        pad: torch.Tensor | None = None,
        last_only: bool = False,
    ) -> torch.Tensor:
        """The forward pass without the input checks, which read tensor
        values on the host: ``generate`` checks once, then decodes with it."""
        if cache is not None:
            cache.check_room(input_ids.shape[1])
        h = self.model(input_ids, cache, pad=pad, last_only=last_only)
        return self.head(h)

    def decode_step(
        self,
        token: torch.Tensor,
        cache: Gemma4Cache,
        position: torch.Tensor,
    ) -> torch.Tensor:
        """Logits [B, 1, V] of one token [B, 1] at ``position`` (a 1-element
        long tensor), with shapes that never change from step to step: the
        step ``generate`` runs, eager or compiled. The cache must have been
        made with ``max_length``; the caller advances ``cache.seq_len``."""
        if cache.max_length is None:  # its global buffers could still grow
            raise ValueError("decode_step needs a cache made with max_length")
        h = self.model(token, cache, position=position)
        return self.head(h)

    def head(self, h: torch.Tensor) -> torch.Tensor:
        """The tied, soft-capped head: the embedding matrix, without the
        sqrt(H) scale of the input side."""
        logits = F.linear(h, self.model.embed_tokens.weight)
        cap = self.config.final_logit_softcapping
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str = "cpu",
        attn_implementation: str = "eager",
    ) -> "Gemma4ForCausalLM":
        """Load a Hugging Face-format folder (``config.json`` + safetensors,
        optionally ``generation_config.json``). See ``loading.py``. Without
        ``dtype`` (or with ``"auto"``), the dtype of ``config.json``, as in
        transformers (:func:`gemma4_lite.loading.load_dtype`)."""
        with torch.device("meta"):
            model = cls(Gemma4Config.from_hf(directory), init=False)
        skip = loading.unused_shared_kv(model.config)
        return loading.load_into(
            model, directory, dtype, device, attn_implementation, skip
        )


def left_padding(
    attention_mask: torch.Tensor, batch: int, length: int
) -> torch.Tensor:
    """Each row's count of leading 0s, after checking that the mask is
    [batch, length] of 0s followed by 1s (only left padding is supported)."""
    if tuple(attention_mask.shape) != (batch, length):
        raise ValueError(
            f"attention_mask must be [{batch}, {length}] (cached tokens plus "
            f"new ones), got {list(attention_mask.shape)}"
        )
    mask = attention_mask.long()
    if not bool(((mask == 0) | (mask == 1)).all()):
        raise ValueError("attention_mask must hold only 0s and 1s")
    if not bool((mask[:, 1:] >= mask[:, :-1]).all()):
        raise ValueError(
            "attention_mask must be left padding (0s, then 1s); right padding "
            "would put pad tokens inside the sequence"
        )
    if not bool(mask[:, -1].all()):
        raise ValueError("every row of attention_mask needs a real token")
    return length - mask.sum(dim=1)


@torch.no_grad()
def init_weights(model: Gemma4ForCausalLM, std: float = 0.02) -> None:
    """Fresh weights as transformers initialises them: N(0, std) matrices and
    tables with the pad row zeroed; norms and scales keep the 1s they are
    made with. (Tests randomise the 1s, which would otherwise hide bugs.)"""
    pad = model.config.pad_token_id
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, std)
        elif isinstance(module, ScaledEmbedding):
            module.weight.normal_(0.0, std)
            if 0 <= pad < module.weight.shape[0]:
                module.weight[pad].zero_()
    # experts last: the order of the draws fixes the weights of a seed
    for name, param in model.named_parameters():
        if name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            param.normal_(0.0, std)
