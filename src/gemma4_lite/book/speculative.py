"""What the chapter "Multi-token prediction" needs beside the package's
drafter and loop: drafter configs derived from a target, a transformers
drafter with random weights to check ours against, a trace of the
speculative loop round by round (drafted, accepted, the target's own
token), acceptance statistics, and the roofline cost of a verify pass.

The trace uses only the public API: it runs :func:`gemma4_lite.generate_stream`
with the drafter and counts the drafter's forward calls between the tokens
the stream yields. The loop drafts a whole round before the target verifies
it and yields that round's tokens one by one, so every yield that follows
new drafter calls opens a round.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import torch

from .. import (
    AssistantConfig,
    Gemma4AssistantForCausalLM,
    Gemma4Config,
    Gemma4ForCausalLM,
    generate_stream,
)
from ..config import FULL, SLIDING
from . import cost_model as cm
from .accounting import kv_cache_bytes
from .export import to_hf_dict

# The released drafters: 4 layers, three sliding then one global
DRAFTER_LAYERS = [SLIDING, SLIDING, SLIDING, FULL]


def drafter_text_config(
    target: Gemma4Config,
    hidden_size: int = 128,
    intermediate_size: int = 256,
    num_attention_heads: int | None = None,
) -> Gemma4Config:
    """The decoder of a drafter for ``target``: 4 layers (sliding, sliding,
    sliding, global) of its own width, with the target's vocabulary, head
    sizes, KV-head counts, K=V setting, RoPE and window, since its queries
    meet the target's keys. No per-layer inputs, experts or wide MLPs."""
    return replace(
        target,
        hidden_size=hidden_size,
        intermediate_size=intermediate_size,
        num_hidden_layers=len(DRAFTER_LAYERS),
        layer_types=list(DRAFTER_LAYERS),
        num_attention_heads=num_attention_heads or target.num_attention_heads,
        hidden_size_per_layer_input=0,
        vocab_size_per_layer_input=0,
        num_kv_shared_layers=0,
        use_double_wide_mlp=False,
        enable_moe_block=False,
        num_experts=None,
        top_k_experts=None,
        moe_intermediate_size=None,
    )


def drafter_hf_dict(
    target: Gemma4Config,
    *,
    ordered: bool = False,
    num_centroids: int = 16,
    centroid_intermediate_top_k: int = 4,
    **sizes: Any,
) -> dict[str, Any]:
    """The ``config.json`` of a ``gemma4_assistant`` drafter for ``target``
    (``sizes`` go to :func:`drafter_text_config`); ``ordered`` selects the
    centroid-masked head of the E2B and E4B drafters."""
    text = to_hf_dict(drafter_text_config(target, **sizes))
    for key in ("model_type", "architectures"):
        text.pop(key, None)
    return {
        "model_type": "gemma4_assistant",
        "text_config": text,
        "backbone_hidden_size": target.hidden_size,
        "use_ordered_embeddings": ordered,
        "num_centroids": num_centroids,
        "centroid_intermediate_top_k": centroid_intermediate_top_k,
        "tie_word_embeddings": True,
    }


def untrained_drafter(
    target: Gemma4Config, seed: int = 0, **options: Any
) -> Gemma4AssistantForCausalLM:
    """A freshly initialised drafter for ``target`` (options as for
    :func:`drafter_hf_dict`), built from its ``config.json`` as a
    checkpoint's would be; the centroid head gets a random token order."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.json"
        path.write_text(json.dumps(drafter_hf_dict(target, **options)))
        config = AssistantConfig.from_hf(path)
    torch.manual_seed(seed)
    drafter = Gemma4AssistantForCausalLM(config)
    if drafter.masked_embedding is not None:
        order = torch.randperm(target.vocab_size)
        drafter.masked_embedding.token_ordering.copy_(order)
    return drafter.eval()


def drafter_parameters(target: Gemma4Config, **options: Any) -> int:
    """Parameters of a drafter for ``target`` (options as for
    :func:`drafter_hf_dict`), counted on the meta device: nothing is
    allocated, so the released sizes can be counted too. The tied head is
    the embedding, counted once."""
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "config.json"
        path.write_text(json.dumps(drafter_hf_dict(target, **options)))
        config = AssistantConfig.from_hf(path)
    with torch.device("meta"):
        drafter = Gemma4AssistantForCausalLM(config)
    return sum(p.numel() for p in drafter.parameters())


# The released drafters' shapes beside their targets: E2B from its
# config.json on the Hub, the 31B from Modular MAX's defaults for it
RELEASED_DRAFTERS = {
    "e2b": dict(hidden_size=256, intermediate_size=2048,
                num_attention_heads=4, ordered=True, num_centroids=2048,
                centroid_intermediate_top_k=32),
    "31b": dict(hidden_size=1024, intermediate_size=8192,
                num_attention_heads=32),
}  # fmt: skip


def reference_drafter(
    target: Gemma4Config, seed: int = 0, **options: Any
) -> torch.nn.Module:
    """transformers' ``Gemma4AssistantForCausalLM`` for ``target`` (options
    as for :func:`drafter_hf_dict`), every weight random, the norm gains
    and ``layer_scalar`` (which start at 1) included; a random token order
    for the centroid head (transformers starts it at zeros). fp32, eager."""
    from transformers import (
        Gemma4AssistantConfig,
        Gemma4TextConfig,
    )
    from transformers import (
        Gemma4AssistantForCausalLM as Reference,
    )

    values = drafter_hf_dict(target, **options)
    text = Gemma4TextConfig(**values.pop("text_config"))
    values.pop("model_type")
    config = Gemma4AssistantConfig(text_config=text, **values)
    torch.manual_seed(seed)
    model = Reference._from_config(
        config, attn_implementation="eager", dtype=torch.float32
    )
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, tensor in model.named_parameters():
            if "norm" in name:
                fresh = torch.empty(tensor.shape).uniform_(
                    0.5, 1.5, generator=gen
                )
            else:
                fresh = torch.randn(tensor.shape, generator=gen) * 0.08
            tensor.copy_(fresh)
        for name, tensor in model.named_buffers():
            if name.endswith("layer_scalar"):
                tensor.uniform_(0.5, 1.5, generator=gen)
            elif name.endswith("token_ordering"):
                tensor.copy_(torch.randperm(tensor.numel(), generator=gen))
    return model.eval()


# ------------------------------------------------------- the loop, traced
@dataclass
class Round:
    """One round of speculative decoding: the drafter's tokens, and the
    tokens the round emitted (the accepted drafts, then the target's own
    token: a bonus if every draft was accepted, else the correction of the
    first rejected one). ``complete`` is False for the last round when the
    length budget cut it."""

    drafted: list[int]
    emitted: list[int] = field(default_factory=list)
    complete: bool = True

    @property
    def accepted(self) -> int:
        return len(self.emitted) - 1

    @property
    def bonus(self) -> bool:
        """Whether every draft was accepted (the target's token is extra)."""
        return self.accepted == len(self.drafted)


@dataclass
class Trace:
    """A speculative generation: the token the prefill chose, then the
    rounds (each one verify pass of the target)."""

    first: int
    rounds: list[Round]

    @property
    def tokens(self) -> list[int]:
        return [self.first] + [t for r in self.rounds for t in r.emitted]

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def trace_rounds(
    target: Gemma4ForCausalLM,
    drafter: Gemma4AssistantForCausalLM,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    k: int,
    **settings: Any,
) -> Trace:
    """Run ``generate_stream(target, input_ids, max_new_tokens,
    assistant=drafter, num_assistant_tokens=k, **settings)`` and split the
    tokens into rounds. The drafter's forward calls between two yields are
    the next round's drafts; their argmax is the drafted token (greedy
    drafting; sampled drafts keep their count, not their tokens). Rounds
    that drafted fewer than ``k`` (the length budget) and the last round
    are marked incomplete."""
    calls: list[int] = []

    def record(module, args, output) -> None:
        calls.append(int(output[0][0, -1].argmax()))

    handle = drafter.register_forward_hook(record)
    first, rounds = None, []
    try:
        stream = generate_stream(
            target,
            input_ids,
            max_new_tokens,
            assistant=drafter,
            num_assistant_tokens=k,
            **settings,
        )
        for token in stream:
            value = int(token[0])
            if first is None:
                if calls:
                    raise RuntimeError("the drafter ran before the prefill")
                first = value
            elif calls:
                rounds.append(Round(list(calls), [value]))
                calls.clear()
            else:
                rounds[-1].emitted.append(value)
    finally:
        handle.remove()
    for r in rounds:
        r.complete = len(r.drafted) == k
    if rounds:
        rounds[-1].complete = False
    return Trace(first, rounds)


def reference_trace(
    target: torch.nn.Module,
    drafter: torch.nn.Module,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    k: int,
) -> Trace:
    """The same rounds from transformers' own assisted generation (greedy,
    no EOS), read from the drafter's calls: every call of a round carries
    the position of the round's newest token, and the next round starts
    after the tokens this one emitted."""
    calls: list[tuple[int, int]] = []

    def record(module, args, kwargs, output) -> None:
        position = int(kwargs["position_ids"][0, -1])
        calls.append((position, int(output.logits[0, -1].argmax())))

    drafter.generation_config.num_assistant_tokens = k
    handle = drafter.register_forward_hook(record, with_kwargs=True)
    try:
        with torch.no_grad():
            out = target.generate(
                input_ids,
                assistant_model=drafter,
                do_sample=False,
                max_new_tokens=max_new_tokens,
                eos_token_id=None,
                attention_mask=torch.ones_like(input_ids),
            )[0].tolist()
    finally:
        handle.remove()
    drafts: dict[int, list[int]] = {}
    for position, token in calls:
        drafts.setdefault(position, []).append(token)
    starts = sorted(drafts)
    rounds = []
    for i, position in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(out) - 1
        rounds.append(Round(drafts[position], out[position + 1 : end + 1]))
    for r in rounds:
        r.complete = len(r.drafted) == k
    if rounds:
        rounds[-1].complete = False
    return Trace(out[input_ids.shape[1]], rounds)


def acceptance(traces: list[Trace], k: int) -> dict[str, Any]:
    """Statistics of the complete rounds of ``traces`` (all drafted ``k``):
    ``per_position[i]``, the share of rounds whose draft i+1 was accepted;
    ``tokens_per_pass``, the tokens a verify pass emitted on average (the
    accepted drafts plus the target's own); ``rounds``, how many."""
    rounds = [r for t in traces for r in t.rounds if r.complete]
    if not rounds:
        raise ValueError("no complete round to count")
    per_position = [
        sum(r.accepted > i for r in rounds) / len(rounds) for i in range(k)
    ]
    emitted = sum(len(r.emitted) for r in rounds)
    return {
        "k": k,
        "per_position": per_position,
        "tokens_per_pass": emitted / len(rounds),
        "rounds": len(rounds),
    }


# --------------------------------------------------- the cost of verifying
def verify_seconds(
    config: Gemma4Config,
    hardware: cm.Hardware,
    k: int,
    context: int = 4096,
    precision: str = "bf16",
) -> float:
    """The roofline time of one verify pass of a single sequence: the target
    reads the weights that its ``k + 1`` tokens use (for a mixture of
    experts, the experts any of them is routed to, as a batch of ``k + 1``
    would; see ``cost_model.weight_bytes_read``) and the sequence's KV cache
    once, and does ``k + 1`` tokens' FLOPs. ``k = 0`` is a plain decode
    step."""
    tokens = k + 1
    moved = cm.weight_bytes_read(config, tokens, precision)
    moved += kv_cache_bytes(config, context, torch.bfloat16)
    flops = tokens * cm.flops_per_token(config, context)["total"]
    peak = hardware.peak_flops_for(precision)
    return max(moved / hardware.bandwidth, flops / peak)
