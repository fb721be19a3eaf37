"""The assembled Gemma 4 text decoder. Chapter: "The full model".

Module names equal the Hugging Face checkpoint keys (``model.layers.3.self_attn.q_proj.weight`` ...), so
loading real weights only strips a prefix (see ``loading.py``).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from .attention import ForwardState
from .block import Gemma4DecoderLayer
from .config import FULL, LAYER_TYPES, SLIDING, Gemma4Config
from .kv_cache import Gemma4Cache
from .masks import visible
from .norms import RMSNorm
from .ple import ScaledEmbedding, per_layer_inputs
from .rope import RotaryTable, inv_freq_for


class Gemma4TextModel(nn.Module):
    def __init__(self, config: Gemma4Config) -> None:
        super().__init__()
        self.config = config
        self.embed_tokens = ScaledEmbedding(
            config.vocab_size, config.hidden_size, config.hidden_size**0.5
        )
        self.layers = nn.ModuleList(
            Gemma4DecoderLayer(config, i)
            for i in range(config.num_hidden_layers)
        )
        self.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        if config.hidden_size_per_layer_input:
            dim = config.hidden_size_per_layer_input
            self.embed_tokens_per_layer = ScaledEmbedding(
                config.vocab_size_per_layer_input,
                config.num_hidden_layers * dim,
                dim**0.5,
            )
            self.per_layer_model_projection = nn.Linear(
                config.hidden_size, config.num_hidden_layers * dim, bias=False
            )
            self.per_layer_projection_norm = RMSNorm(dim, config.rms_norm_eps)
        self.rotary = nn.ModuleDict(
            {
                kind: RotaryTable(inv_freq_for(config, kind))
                for kind in LAYER_TYPES
                if kind in config.layer_types
            }
        )

    def forward(
        self,
        input_ids: torch.Tensor,
        cache: Gemma4Cache | None = None,
        *,
        last_only: bool = False,
    ) -> torch.Tensor:
        """Final-normed hidden states [B, S, H] for ``input_ids`` [B, S], continuing ``cache`` if given.

        ``last_only`` returns only the last position ([B, 1, H]); KV-shared layers then run on that position
        alone, since they write no cache and nothing later reads their other positions.
        """
        start = cache.seq_len if cache is not None else 0
        length = input_ids.shape[1]
        h = self.embed_tokens(input_ids)
        ple = (
            per_layer_inputs(self, input_ids, h)
            if self.config.hidden_size_per_layer_input
            else None
        )
        state = ForwardState(start=start, cache=cache)
        if cache is None:
            pos = torch.arange(length, device=input_ids.device)
            state.masks = {
                FULL: visible(pos, pos, None),
                SLIDING: visible(pos, pos, self.config.sliding_window),
            }
        tables = {
            kind: table(start, length, h.dtype)
            for kind, table in self.rotary.items()
        }
        for i, layer in enumerate(self.layers):
            if (
                last_only
                and i == self.config.first_kv_shared_layer
                and h.shape[1] > 1
            ):
                h = h[:, -1:]
                ple = ple[:, -1:] if ple is not None else None
                tables = {
                    kind: (cos[-1:], sin[-1:])
                    for kind, (cos, sin) in tables.items()
                }
                state.last_row_only = True
            cos, sin = tables[self.config.layer_types[i]]
            h = layer(
                h, cos, sin, state, ple[:, :, i] if ple is not None else None
            )
        if cache is not None:
            cache.seq_len += length
        return self.norm(h[:, -1:] if last_only else h)


class Gemma4ForCausalLM(nn.Module):
    """Gemma 4 text decoder with its tied, soft-capped language-model head.

    ``model(input_ids)`` returns logits [B, S, V]. Pass a cache from :meth:`new_cache` to prefill or decode
    incrementally.
    """

    def __init__(self, config: Gemma4Config, *, init: bool = True) -> None:
        super().__init__()
        self.config = config
        self.model = Gemma4TextModel(config)
        if init:
            init_weights(self)

    @property
    def dtype(self) -> torch.dtype:
        return self.model.embed_tokens.weight.dtype

    @property
    def device(self) -> torch.device:
        return self.model.embed_tokens.weight.device

    def new_cache(
        self, batch_size: int = 1, max_length: int | None = None
    ) -> Gemma4Cache:
        """An empty cache; give ``max_length`` (prompt + new tokens) to allocate every buffer once."""
        return Gemma4Cache(
            self.config,
            batch_size,
            max_length=max_length,
            dtype=self.dtype,
            device=self.device,
        )

    def check_input(
        self, input_ids: torch.Tensor, cache: Gemma4Cache | None = None
    ) -> None:
        """Reject what would otherwise give a silent wrong answer or an obscure index error."""
        if not isinstance(input_ids, torch.Tensor) or input_ids.dim() != 2:
            raise ValueError(
                "input_ids must be a 2-D tensor [batch, sequence] of token ids"
            )
        if input_ids.dtype not in (torch.int64, torch.int32):
            raise ValueError(
                f"input_ids must hold integer token ids, got dtype {input_ids.dtype}"
            )
        if input_ids.shape[1] == 0:
            raise ValueError("input_ids is empty: give at least one token")
        low, high = int(input_ids.min()), int(input_ids.max())
        if low < 0 or high >= self.config.vocab_size:
            bad = low if low < 0 else high
            raise ValueError(
                f"token id {bad} is out of range: the vocabulary has ids 0..{self.config.vocab_size - 1}"
            )
        start = cache.seq_len if cache is not None else 0
        end = start + input_ids.shape[1]
        if end > self.config.max_position_embeddings:
            raise ValueError(
                f"sequence would reach {end} tokens, past the context length of "
                f"{self.config.max_position_embeddings} (max_position_embeddings)"
            )
        if (
            cache is not None
            and cache.layers
            and input_ids.shape[0] != _cache_batch(cache)
        ):
            raise ValueError(
                f"input batch {input_ids.shape[0]} does not match the cache's batch {_cache_batch(cache)}"
            )

    def forward(
        self,
        input_ids: torch.Tensor,
        cache: Gemma4Cache | None = None,
        *,
        last_logits_only: bool = False,
    ) -> torch.Tensor:
        self.check_input(input_ids, cache)
        h = self.model(input_ids.long(), cache, last_only=last_logits_only)
        logits = nn.functional.linear(
            h, self.model.embed_tokens.weight
        )  # tied head, no sqrt(H) here
        cap = self.config.final_logit_softcapping
        if cap is not None:
            logits = torch.tanh(logits / cap) * cap
        return logits

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        dtype: torch.dtype | None = None,
        device: torch.device | str = "cpu",
    ) -> "Gemma4ForCausalLM":
        """Load a Hugging Face-format folder (``config.json`` + safetensors). See ``loading.py``."""
        from .loading import load_pretrained

        return load_pretrained(cls, directory, dtype=dtype, device=device)

    def save_pretrained(self, directory: str | Path) -> None:
        """Write ``config.json`` and ``model.safetensors`` that transformers' Gemma4ForCausalLM reads."""
        from .loading import save_pretrained

        save_pretrained(self, directory)


def _cache_batch(cache: Gemma4Cache) -> int:
    for layer in cache.layers:
        if layer is not None:
            return layer.k.shape[0]
    return 0


@torch.no_grad()
def init_weights(model: Gemma4ForCausalLM, std: float = 0.02) -> None:
    """Fresh weights as transformers initialises them: N(0, std) matrices and tables with the pad row
    zeroed, norms and scales at 1. (Tests randomise the 1s, which would otherwise hide bugs.)"""
    pad = model.config.pad_token_id
    for module in model.modules():
        if isinstance(module, nn.Linear):
            module.weight.normal_(0.0, std)
        elif isinstance(module, ScaledEmbedding):
            module.weight.normal_(0.0, std)
            if 0 <= pad < module.weight.shape[0]:
                module.weight[pad].zero_()
        elif isinstance(module, RMSNorm) and module.with_scale:
            module.weight.fill_(1.0)
    for name, param in model.named_parameters():
        if name.endswith(("experts.gate_up_proj", "experts.down_proj")):
            param.normal_(0.0, std)
        elif name.endswith(("router.scale", "router.per_expert_scale")):
            param.fill_(1.0)
    for layer in model.model.layers:
        layer.layer_scalar.fill_(1.0)
