"""Text generation with the KV cache: prefill (optionally in chunks), then one token per step.
Chapter: "The full model"."""

from __future__ import annotations

import torch

from .model import Gemma4ForCausalLM


def _filter_logits(
    logits: torch.Tensor, top_k: int | None, top_p: float | None
) -> torch.Tensor:
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1]), dim=-1).values[
            ..., -1:
        ]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        sorted_logits, order = torch.sort(logits, descending=True, dim=-1)
        cumulative = torch.softmax(sorted_logits, dim=-1).cumsum(dim=-1)
        # drop a token once the tokens before it already cover top_p; the best token always survives
        drop = cumulative - torch.softmax(sorted_logits, dim=-1) >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf")).scatter(
            -1, order, sorted_logits
        )
    return logits


@torch.inference_mode()
def generate(
    model: Gemma4ForCausalLM,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    temperature: float = 0.0,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    prefill_chunk_size: int | None = None,
    eos_token_id: int | list[int] | None = None,
) -> torch.Tensor:
    """Prompt followed by up to ``max_new_tokens`` new tokens, shape [B, S + n].

    Greedy at ``temperature == 0``; otherwise samples from softmax(logits / temperature), optionally cut to
    the ``top_k`` best tokens and the smallest set whose probability reaches ``top_p``. ``seed`` makes
    sampling repeatable. Rows that produced an EOS keep emitting it; generation stops when all rows have.
    """
    if input_ids.dim() == 1:
        input_ids = input_ids[None]
    if max_new_tokens < 0:
        raise ValueError("max_new_tokens must be >= 0")
    if temperature < 0:
        raise ValueError("temperature must be >= 0 (0 means greedy)")
    if top_k is not None and top_k < 1:
        raise ValueError("top_k must be >= 1")
    if top_p is not None and not 0.0 < top_p <= 1.0:
        raise ValueError("top_p must be in (0, 1]")
    if prefill_chunk_size is not None and prefill_chunk_size < 1:
        raise ValueError("prefill_chunk_size must be >= 1")
    total = input_ids.shape[1] + max_new_tokens
    if total > model.config.max_position_embeddings:
        raise ValueError(
            f"prompt ({input_ids.shape[1]}) + max_new_tokens ({max_new_tokens}) = {total} exceeds "
            f"the context length of {model.config.max_position_embeddings}"
        )
    model.check_input(input_ids)
    if max_new_tokens == 0:
        return input_ids.clone()
    generator = torch.Generator(device=input_ids.device)
    if seed is not None:
        generator.manual_seed(seed)
    eos = torch.tensor(
        [eos_token_id]
        if isinstance(eos_token_id, int)
        else (eos_token_id or []),
        dtype=torch.long,
        device=input_ids.device,
    )

    batch = input_ids.shape[0]
    cache = model.new_cache(batch, max_length=total)
    chunk = prefill_chunk_size or input_ids.shape[1]
    for begin in range(0, input_ids.shape[1], chunk):
        logits = model(
            input_ids[:, begin : begin + chunk], cache, last_logits_only=True
        )

    out = torch.empty(
        batch, max_new_tokens, dtype=torch.long, device=input_ids.device
    )
    finished = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    produced = 0
    for step in range(max_new_tokens):
        last = logits[:, -1].float()
        if temperature == 0.0:
            token = last.argmax(dim=-1)
        else:
            probs = torch.softmax(
                _filter_logits(last / temperature, top_k, top_p), dim=-1
            )
            token = torch.multinomial(probs, 1, generator=generator)[:, 0]
        if eos.numel():
            token = torch.where(finished, eos[0], token)
            finished |= torch.isin(token, eos)
        out[:, step] = token
        produced = step + 1
        if eos.numel() and bool(finished.all()):
            break
        if step + 1 < max_new_tokens:
            logits = model(token[:, None], cache)
    return torch.cat([input_ids, out[:, :produced]], dim=1)
