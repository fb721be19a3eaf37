"""The multi-token-prediction drafter ("assistant") released beside every
Gemma 4. Chapter: "Multi-token prediction".

A small Gemma 4 decoder with no key/value projections and no cache: its
queries read the keys and values the target already computed (those of the
target's last non-shared sliding layer and last non-shared global layer).
One draft step takes the target's scaled embedding of the newest token, the
target's final-normed hidden state before it, those K/V tensors and the
token's position; it returns logits and a hidden state of the target's
width, which feeds the next step in place of the target's.

Everything follows transformers 5.24 (``Gemma4AssistantForCausalLM``; the
12B's ``Gemma4UnifiedAssistantForCausalLM`` is the same module): every step
of a round uses the same position and the same K/V, global layers see every
K/V entry they are given, sliding layers the last ``sliding_window + 1``
entries of theirs (counted from the end of the tensor, not by position),
and no logit soft-capping is applied.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from . import loading
from .attention import KV, set_attention
from .block import Gemma4DecoderLayer
from .config import SLIDING, Gemma4Config
from .hf_config import config_values, read_config
from .norms import RMSNorm
from .rope import rotary_tables

# model_type of an assistant file -> its text config's model_type, and the
# backbone width transformers assumes when the file leaves it out
ASSISTANT_TYPES = {
    "gemma4_assistant": ("gemma4_text", 1536),
    "gemma4_unified_assistant": ("gemma4_unified_text", 3840),
}
# Decoder features no released drafter has. transformers refuses them in a
# gemma4_assistant file (and a PLE vocabulary, which we ignore); a unified
# one has no PLE or experts, and a wide MLP would double every layer.
# fmt: off
DRAFTER_FREE = ("hidden_size_per_layer_input", "enable_moe_block",
                "use_double_wide_mlp")
OUTER_FIELDS = ("backbone_hidden_size", "use_ordered_embeddings",
                "num_centroids", "centroid_intermediate_top_k")
# fmt: on


@dataclass
class AssistantConfig:
    """The drafter's decoder (``text_config``) and what surrounds it.
    ``backbone_hidden_size`` is the target's width; head sizes, KV-head
    counts, RoPE and window of ``text_config`` must equal the target's, as
    its queries meet the target's keys."""

    text_config: Gemma4Config
    backbone_hidden_size: int = 1536
    use_ordered_embeddings: bool = False
    num_centroids: int = 2048
    centroid_intermediate_top_k: int = 32

    @classmethod
    def from_hf(cls, source: str | Path) -> AssistantConfig:
        """Read a ``config.json`` (or its folder) of ``gemma4_assistant`` or
        ``gemma4_unified_assistant``, refusing what transformers refuses or
        what no drafter has (per-layer inputs, experts, wide MLPs, layers
        with keys of their own, an untied head)."""
        raw = read_config(source)
        kind = raw.get("model_type")
        if kind not in ASSISTANT_TYPES:
            raise ValueError(
                f"config model_type is {kind!r}, not a Gemma 4 drafter "
                f"({' or '.join(ASSISTANT_TYPES)})"
            )
        text_type, width = ASSISTANT_TYPES[kind]
        text = {"model_type": text_type, **(raw.get("text_config") or {})}
        values = config_values(text)
        layers = values["num_hidden_layers"]
        bad = [name for name in DRAFTER_FREE if values.get(name)]
        if text.get("num_kv_shared_layers") not in (None, 0, layers):
            bad.append("num_kv_shared_layers")
        if not raw.get("tie_word_embeddings", True):
            bad.append("tie_word_embeddings")
        if bad:
            raise ValueError(
                f"{kind} config: {', '.join(bad)} not supported: a drafter "
                "has no per-layer inputs, experts or double-wide MLPs, all "
                f"{layers} layers read the target's keys and values, and "
                "its head is tied to its embedding"
            )
        text_config = Gemma4Config(**{**values, "num_kv_shared_layers": 0})
        # every layer borrows the target's K/V, which Gemma4Config.validate
        # refuses for a model on its own: set after validation
        text_config.num_kv_shared_layers = layers
        outer = {k: raw[k] for k in OUTER_FIELDS if raw.get(k) is not None}
        return cls(text_config, **{"backbone_hidden_size": width, **outer})


class DraftOutput(NamedTuple):
    logits: torch.Tensor  # [B, S, V], over the whole vocabulary
    hidden: torch.Tensor  # [B, S, backbone width]: the next step's input


class Gemma4AssistantForCausalLM(nn.Module):
    """The drafter. Module names are the checkpoint keys (stacked
    ``qkv_proj`` holds only ``q_proj`` here, as in every KV-shared layer)."""

    def __init__(self, config: AssistantConfig) -> None:
        super().__init__()
        self.config, text = config, config.text_config
        hidden, width = text.hidden_size, config.backbone_hidden_size
        self.model = nn.Module()
        # the output table only: inputs come from the target's embedding
        self.model.embed_tokens = nn.Embedding(text.vocab_size, hidden)
        self.model.layers = nn.ModuleList(
            Gemma4DecoderLayer(text, i) for i in range(text.num_hidden_layers)
        )
        self.model.norm = RMSNorm(hidden, text.rms_norm_eps)
        self.pre_projection = nn.Linear(2 * width, hidden, bias=False)
        self.post_projection = nn.Linear(hidden, width, bias=False)
        self.masked_embedding = m = None
        if config.use_ordered_embeddings:  # E2B, E4B: the centroid head
            self.masked_embedding = m = nn.Module()
            m.centroids = nn.Linear(hidden, config.num_centroids, bias=False)
            m.register_buffer("token_ordering", torch.arange(text.vocab_size))
        self.rope = rotary_tables(text)
        self.generation_config: dict = {}

    def set_attn_implementation(self, name: str) -> None:
        """``"eager"`` (bitwise equal to transformers' eager path) or
        ``"sdpa"``, as for the target."""
        set_attention(self.model.layers, name)

    def forward(
        self,
        embeds: torch.Tensor,
        hidden: torch.Tensor,
        kv: dict[str, KV],
        position: int | torch.Tensor,
        masks: dict[str, torch.Tensor | None] | None = None,
    ) -> DraftOutput:
        """One draft step for ``embeds`` [B, S, Hb], the target's scaled
        embedding of the tokens, and ``hidden`` [B, S, Hb], the hidden state
        that precedes each (the target's final-normed one, then the previous
        step's ``hidden``). ``kv`` maps each layer type to the target's
        (K, V) [B, kv_heads, T, head_dim] after its norms and RoPE;
        ``position`` is an int or [B, S]. ``masks`` ([S, T] booleans per
        layer type, True = visible) replace transformers' rule, which
        :meth:`default_mask` gives for one query per row (the drafting
        case; training on many positions at once needs its own masks)."""
        x = self.pre_projection(torch.cat([embeds, hidden], dim=-1))
        pos = torch.as_tensor(position, device=x.device).expand(x.shape[:2])
        end = int(pos.max()) + 1
        for table in self.rope.values():
            table.reserve(end, x.device)
        rope = {k: t(pos, x.dtype) for k, t in self.rope.items()}
        if masks is None:
            masks = {k: self.default_mask(k, kv[k][0], x.shape[1])
                     for k in rope}  # fmt: skip
        if self.model.layers[0].self_attn.attn_implementation == "eager":
            # one K/V head per query head, as transformers' eager path has
            # them: with a single query per head, folding a group's queries
            # into one matmul (grouped_attention) takes another BLAS kernel
            # whose sums differ in the last bits
            heads = self.config.text_config.num_attention_heads
            kv = {kind: tuple(t.repeat_interleave(heads // t.shape[1], 1)
                              for t in pair)
                  for kind, pair in kv.items()}  # fmt: skip
        kinds = self.config.text_config.layer_types
        for layer, kind in zip(self.model.layers, kinds):
            x, _ = layer(x, rope[kind], masks[kind], shared_kv=kv[kind])
        x = self.model.norm(x)
        return DraftOutput(self.head(x), self.post_projection(x))

    @torch.no_grad()
    def draft(
        self,
        embed: Callable[[torch.Tensor], torch.Tensor],
        token: torch.Tensor,
        hidden: torch.Tensor,
        kv: dict[str, KV],
        position: int,
        k: int,
        pick: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """``k`` drafts [B, k] after ``token`` [B, 1] at ``position`` and
        their logits [B, k, V], as transformers drafts a round: every step
        at the same position with the same K/V, feeding back its own token
        (through ``embed``, the target's scaled embedding) and hidden state.
        Drafts are greedy unless ``pick`` (logits [B, 1, V] to tokens
        [B, 1]) chooses them, e.g. by sampling."""
        tokens, logits = [], []
        for _ in range(k):
            guess, hidden = self(embed(token), hidden, kv, position)
            token = guess.argmax(-1) if pick is None else pick(guess)
            tokens.append(token)
            logits.append(guess)
        return torch.cat(tokens, dim=1), torch.cat(logits, dim=1)

    def default_mask(
        self, kind: str, keys: torch.Tensor, queries: int
    ) -> torch.Tensor | None:
        """transformers' rule: all of a global layer's ``keys``; the last
        ``sliding_window + 1`` of a sliding layer's."""
        length = keys.shape[2]
        hidden = length - self.config.text_config.sliding_window - 1
        if kind != SLIDING or hidden <= 0:
            return None
        seen = torch.arange(length, device=keys.device) >= hidden
        return seen.expand(queries, length)

    def head(self, x: torch.Tensor) -> torch.Tensor:
        """Logits from the final-normed state (not soft-capped). The dense
        head is the drafter's own tied table; the centroid head (E2B, E4B)
        scores only the tokens of the ``centroid_intermediate_top_k`` best
        clusters and gives every other token one value below them all."""
        table = self.model.embed_tokens.weight
        if self.masked_embedding is None:
            return F.linear(x, table)
        c, m = self.config, self.masked_embedding
        top = m.centroids(x).topk(c.centroid_intermediate_top_k, dim=-1)
        clusters = m.token_ordering.view(c.num_centroids, -1)
        ids = clusters[top.indices].flatten(-2)  # [B, S, top_k * per]
        picked = (x.unsqueeze(-2) @ table[ids].transpose(-1, -2)).squeeze(-2)
        # one fill value for the whole batch, as transformers does
        fill = picked.min().item() - 1.0
        logits = x.new_full((*x.shape[:-1], table.shape[0]), fill)
        return logits.scatter_(-1, ids, picked)

    @classmethod
    def from_pretrained(
        cls,
        directory: str | Path,
        dtype: torch.dtype | str | None = None,
        device: torch.device | str = "cpu",
        attn_implementation: str = "eager",
    ) -> Gemma4AssistantForCausalLM:
        """Load a transformers drafter folder (safetensors only), with the
        target loader's errors and dtype rule (``gemma4_lite.loading``)."""
        with torch.device("meta"):
            model = cls(AssistantConfig.from_hf(directory))
        return loading.load_into(
            model, directory, dtype, device, attn_implementation
        )
