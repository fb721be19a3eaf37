"""Text generation with the KV cache: prefill (optionally in chunks), then
one token per step. Chapter: "The full model".

Inputs are checked once, before the loop; each decode step then runs
:meth:`Gemma4ForCausalLM.logits`, which reads no tensor value on the host.
The only host read per step is the stop check when EOS ids are in play.
"""

from __future__ import annotations

import math
import warnings
from numbers import Integral, Real
from typing import Iterator, Sequence

import torch

from .assistant import Gemma4AssistantForCausalLM
from .config import SLIDING
from .kv_cache import Gemma4Cache
from .model import Gemma4ForCausalLM


def filter_logits(
    logits: torch.Tensor, top_k: int | None, top_p: float | None
) -> torch.Tensor:
    """Keep the ``top_k`` best tokens, then the smallest set of the best
    tokens whose probability reaches ``top_p`` (nucleus); -inf elsewhere."""
    if top_k is not None:
        kth = torch.topk(logits, min(top_k, logits.shape[-1])).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None:
        ordered, order = torch.sort(logits, descending=True, dim=-1)
        probs = torch.softmax(ordered, dim=-1)
        # drop a token once the better ones already reach top_p; the best
        # token always survives
        drop = probs.cumsum(dim=-1) - probs >= top_p
        ordered = ordered.masked_fill(drop, float("-inf"))
        logits = torch.full_like(logits, float("-inf"))
        logits = logits.scatter(-1, order, ordered)
    return logits


def sampling_probs(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None,
    top_p: float | None,
) -> torch.Tensor:
    """The fp32 distribution sampling draws from: softmax of the tempered
    logits, cut by :func:`filter_logits`."""
    cut = filter_logits(logits.float() / temperature, top_k, top_p)
    return torch.softmax(cut, dim=-1)


def eos_ids(
    model: Gemma4ForCausalLM, eos_token_id: int | Sequence[int] | None
) -> list[int]:
    """The ids that end a sequence: the argument, else the checkpoint's
    ``generation_config.json``, else ``config.eos_token_id``."""
    if eos_token_id is None:
        eos_token_id = model.generation_config.get(
            "eos_token_id", model.config.eos_token_id
        )
    if isinstance(eos_token_id, int):
        return [eos_token_id]
    return list(eos_token_id or [])


@torch.inference_mode()
def generate_stream(
    model: Gemma4ForCausalLM,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    *,
    attention_mask: torch.Tensor | None = None,
    do_sample: bool | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
    seed: int | None = None,
    prefill_chunk_size: int | None = None,
    eos_token_id: int | Sequence[int] | None = None,
    ignore_eos: bool = False,
    compile: bool = False,
    assistant: Gemma4AssistantForCausalLM | None = None,
    num_assistant_tokens: int | None = None,
) -> Iterator[torch.Tensor]:
    """Yield the next token of every row, a [B] tensor per step, as soon as
    it is chosen. Arguments as for :func:`generate`."""
    input_ids = input_ids[None] if input_ids.dim() == 1 else input_ids
    _check_settings(
        max_new_tokens=max_new_tokens,
        prefill_chunk_size=prefill_chunk_size,
        seed=seed,
        do_sample=do_sample,
    )
    temperature, top_k, top_p = sampling_settings(
        model, do_sample, temperature, top_k, top_p
    )
    attention_mask = infer_attention_mask(
        model, input_ids, attention_mask, eos_token_id
    )
    batch, length = input_ids.shape
    pad = model.check_input(
        input_ids, attention_mask=attention_mask, new_tokens=max_new_tokens
    )
    if assistant is not None:
        k = _check_assisted(
            assistant, num_assistant_tokens, batch, pad, compile
        )
    if max_new_tokens == 0:
        return
    # without a seed, sampling draws from torch's global generator, so
    # torch.manual_seed governs it and successive calls differ
    generator = None
    if seed is not None:
        generator = torch.Generator(input_ids.device).manual_seed(seed)

    def pick(logits: torch.Tensor) -> torch.Tensor:
        """Tokens [...] for logits [..., V]: greedy, or one draw each."""
        if temperature == 0.0:
            return logits.argmax(dim=-1)
        probs = sampling_probs(logits, temperature, top_k, top_p)
        drawn = torch.multinomial(probs.flatten(0, -2), 1, generator=generator)
        return drawn.view(probs.shape[:-1])

    stop = torch.tensor([] if ignore_eos else eos_ids(model, eos_token_id))
    stop = stop.to(device=input_ids.device, dtype=torch.long)
    chunk = prefill_chunk_size or length
    if assistant is not None:
        sample = temperature and (temperature, top_k, top_p, generator)
        yield from _assisted(
            model, assistant, input_ids, max_new_tokens, stop, k, chunk,
            pick, sample,
        )  # fmt: skip
        return

    room = length + max_new_tokens
    if compile:  # one graph per 256 cache slots, not one per length
        room = min(-(-room // 256) * 256, model.config.max_position_embeddings)
    cache = model.new_cache(batch, max_length=room)
    for piece in input_ids.split(chunk, dim=1):
        logits = model.logits(piece, cache, pad=pad, last_only=True)
    step = compiled_step(model) if compile else model.decode_step
    position = torch.tensor([length], device=input_ids.device)
    done = torch.zeros(batch, dtype=torch.bool, device=input_ids.device)
    for i in range(max_new_tokens):
        token = pick(logits[:, -1])
        if len(stop):  # finished rows emit padding, as in transformers
            token = torch.where(done, model.config.pad_token_id, token)
            done |= torch.isin(token, stop)
        yield token
        if i + 1 == max_new_tokens or (len(stop) and bool(done.all())):
            return
        logits = step(token[:, None], cache, position)
        cache.seq_len += 1
        position += 1


def _check_assisted(assistant, k, batch, pad, compile) -> int:
    """The number of drafts per round (the argument, else the drafter's
    ``generation_config.json``, else 4), after refusing what assisted
    generation does not do."""
    if batch != 1 or pad is not None or compile:
        raise ValueError(
            "assisted generation decodes one unpadded sequence, uncompiled; "
            f"got batch={batch}, padding={pad is not None}, compile={compile}"
        )
    if k is None:
        k = assistant.generation_config.get("num_assistant_tokens", 4)
    _check_settings(num_assistant_tokens=k)
    return k


def _assisted(
    model, assistant, ids, max_new_tokens, stop, k, chunk, pick, sample
):
    """Speculative decoding as transformers' assisted generation runs it
    (``generation/utils.py``, ``candidate_generator.py``). Each round the
    drafter proposes up to ``k`` tokens after the newest token x at
    position P; the target verifies x and the drafts in one pass; the
    drafts it accepts are kept, plus one token of its own; the cache is
    rolled back to what was kept. Greedy: the drafts that equal the
    target's choices, as in transformers. ``sample`` (temperature, top_k,
    top_p, generator; ``pick`` draws with them): the drafts are sampled
    and accepted by :func:`accept_drafts`, which keeps the target's
    distribution; transformers instead takes the drafter's argmax and
    accepts it with probability min(1, p/q), which does not."""
    config, total = model.config, ids.shape[1] + max_new_tokens
    # the layers whose K/V the drafter reads: the last non-shared one of
    # each type (transformers' "store" layers)
    lenders = {config.layer_types[i]: i
               for i in range(config.first_kv_shared_layer)}  # fmt: skip
    kv = dict.fromkeys(lenders.values())  # filled by every target pass
    cache = model.new_cache(1, max_length=total, lookahead=k)
    for start in range(0, ids.shape[1], chunk):
        block = ids[:, start : start + chunk]
        h = model.model(block, cache, last_only=True, kv_out=kv)
    x = pick(model.head(h)[:, -1].float())
    position = ids.shape[1]
    hidden, emitted = h[:, -1:], 1
    yield x
    while emitted < max_new_tokens and not bool(torch.isin(x, stop)):
        view = drafter_view(cache, kv, lenders, start, block.shape[1])
        # drafts plus the target's token never pass the length budget
        room = min(k, total - position - 2)
        drafts, guesses = x.new_zeros(1, 0), None
        if room > 0:
            embed = model.model.embed_tokens
            drafts, guesses = assistant.draft(
                embed, x[:, None], hidden, view, position, room, pick
            )
        start, block = position, torch.cat([x[:, None], drafts], dim=1)
        h = model.model(block, cache, kv_out=kv)
        logits = model.head(h)[0].float()
        if sample:
            *settings, generator = sample
            p = sampling_probs(logits, *settings)
            q = sampling_probs(guesses[0], *settings) if room > 0 else p[:0]
            n, bonus = accept_drafts(p, q, drafts[0], generator)
            chosen = torch.cat([drafts[0, :n], bonus])
        else:
            chosen = logits.argmax(-1)
            n = int((drafts[0] == chosen[:-1]).cumprod(0).sum())
        for token in chosen[: n + 1]:
            x, emitted = token.view(1), emitted + 1
            yield x
            if bool(torch.isin(x, stop)):
                return
        cache.seq_len = position = position + n + 1
        hidden = h[:, n : n + 1]


def accept_drafts(
    p: torch.Tensor,
    q: torch.Tensor,
    drafts: torch.Tensor,
    generator: torch.Generator | None = None,
) -> tuple[int, torch.Tensor]:
    """Speculative sampling (Leviathan et al. 2023; Chen et al. 2023):
    ``drafts`` [k] were sampled from the drafter's ``q`` [k, V]; ``p``
    [k+1, V] are the target's probabilities at the same rows plus one.
    Draft i is kept with probability min(1, p_i(d_i) / q_i(d_i)) until the
    first rejection, which is replaced by a sample of max(0, p_i - q_i)
    (normalised); if all are kept, one more token comes from p_k. Returns
    the number kept and that last token [1]: every emitted token then
    follows the target's distribution exactly, whatever q is."""
    k = drafts.shape[0]
    rows = torch.arange(k, device=drafts.device)
    ratio = p[rows, drafts] / q[rows, drafts]
    u = torch.rand(k, generator=generator, device=drafts.device)
    n = int((u < ratio).cumprod(0).sum())
    rest = (p[n] - q[n]).clamp(min=0) if n < k else p[k]
    return n, torch.multinomial(rest, 1, generator=generator)


def drafter_view(
    cache: Gemma4Cache, kv: dict, lenders: dict, start: int, length: int
) -> dict:
    """The K/V a drafter reads after a target pass of ``length`` tokens at
    ``start`` (``kv``: what each of ``lenders`` attended to), cut as
    transformers cuts them, so that drafts match its drafts: the global
    layer's keys up to and including position P (the newest token's,
    which after a rejection still holds the first rejected draft's key),
    and the sliding layer's keys of positions ``start - W + 1`` on, in
    position order, at most P + 1 of them."""
    view, newest = {}, cache.seq_len
    for kind, i in lenders.items():
        keys, values = kv[i]
        if kind == SLIDING:
            pos = cache.key_positions(kind, start, length)
            low = max(0, start - cache.config.sliding_window + 1)
            keep = ((pos >= low) & (pos <= low + newest)).nonzero()[:, 0]
            keep = keep[pos[keep].argsort()]
        else:
            keep = slice(0, newest + 1)
        view[kind] = keys[:, :, keep], values[:, :, keep]
    return view


def compiled_step(model: Gemma4ForCausalLM):
    """``model.decode_step`` compiled once per model with ``torch.compile``
    (one graph, no recompiles: positions and masks are tensors). The first
    call compiles, which takes seconds; ``generate`` then makes its cache
    a multiple of 256 slots long, so that prompts and lengths that fit the
    same multiple reuse the graph (unused slots are masked).

    In fp32 the compiled step picks the eager step's tokens (tested on a
    model with every family's features). In bf16 the compiled graph keeps
    some intermediates in fp32 that the eager step rounds to bf16: both
    land about as far from the fp32 logits (measured on a fresh dense-tiny
    model over 24 steps: 0.067 eager, 0.097 compiled, at most;
    ``tests/core/test_fast_paths.py`` holds the compiled step within 0.15
    and within twice the eager error), so a near-tie can pick another
    token. The compiled step belongs to this model object: a
    ``copy.deepcopy`` or an unpickled model compiles its own (see
    :meth:`Gemma4ForCausalLM.__getstate__`).
    """
    step = model.__dict__.get("_compiled_step")
    if step is None:
        step = torch.compile(model.decode_step, fullgraph=True, dynamic=False)
        model.__dict__["_compiled_step"] = step
    return step


def generate(
    model: Gemma4ForCausalLM,
    input_ids: torch.Tensor,
    max_new_tokens: int,
    **settings,
) -> torch.Tensor:
    """The prompt followed by up to ``max_new_tokens`` new tokens, [B, S + n].

    Sampling draws from softmax(logits / temperature), cut to the ``top_k``
    best tokens and to the nucleus of probability ``top_p``; otherwise
    decoding is greedy. Each setting (``do_sample``, ``temperature``,
    ``top_k``, ``top_p``) is the argument if given, else the checkpoint's
    ``generation_config.json``, else greedy with no cut; a temperature
    given without ``do_sample`` samples if it is above 0 (see
    :func:`sampling_settings`). ``seed`` makes sampling repeatable with a
    generator of its own; without it, sampling draws from torch's global
    generator, as transformers does (``torch.manual_seed`` governs it).
    Invalid settings raise ``TypeError`` or ``ValueError`` before any work.
    A row ends at an EOS id (``eos_token_id``, else the checkpoint's
    generation config, else the model config) and is then filled with the
    pad id; generation stops when every row has ended, unless
    ``ignore_eos``. Prompts of different lengths go in one batch padded on
    the left, with an ``attention_mask`` of 0s then 1s; each row then gets
    the tokens it would get alone. Without a mask, positions holding the pad
    id are taken as padding, with a warning, as transformers does (see
    :func:`infer_attention_mask`). ``prefill_chunk_size`` prefills the
    prompt in chunks. ``compile=True`` runs the one-token step through
    ``torch.compile`` (see :func:`compiled_step`); the default runs it
    eagerly. :func:`generate_stream` yields tokens as they come.

    ``assistant`` (a :class:`Gemma4AssistantForCausalLM` made for this
    target) turns on speculative decoding: each round it drafts up to
    ``num_assistant_tokens`` tokens (the argument, else the drafter's
    ``generation_config.json``, as transformers reads it, else 4) and the
    target checks them in one pass (see :func:`_assisted`). Greedy tokens
    are exactly those of plain greedy decoding; sampled ones follow the
    same distribution (speculative sampling, :func:`accept_drafts`).
    Batches of more than one row, padding and ``compile`` are refused.
    """
    input_ids = input_ids[None] if input_ids.dim() == 1 else input_ids
    steps = list(generate_stream(model, input_ids, max_new_tokens, **settings))
    return torch.cat([input_ids, *(t[:, None] for t in steps)], dim=1)


def sampling_settings(
    model: Gemma4ForCausalLM,
    do_sample: bool | None = None,
    temperature: float | None = None,
    top_k: int | None = None,
    top_p: float | None = None,
) -> tuple[float, int | None, float | None]:
    """``(temperature, top_k, top_p)`` to decode with, 0 meaning greedy.

    Precedence, as in transformers: an argument the caller gives, else the
    checkpoint's ``generation_config.json``, else greedy decoding with no
    top-k or top-p cut (transformers would cut to the 50 best tokens when
    nothing sets ``top_k``; this package does not). ``do_sample`` is the
    argument, else ``temperature > 0`` when a temperature is given, else
    the file's, else False; without sampling the other settings are unused.
    """
    defaults = model.generation_config
    if do_sample is None and temperature is not None:
        do_sample = temperature != 0
    if do_sample is None:
        do_sample = defaults.get("do_sample", False)
    given = {"temperature": temperature, "top_k": top_k, "top_p": top_p}
    chosen = {
        name: defaults.get(name) if value is None else value
        for name, value in given.items()
    }
    if chosen["temperature"] is None:
        chosen["temperature"] = 1.0
    _check_settings(**chosen)
    if do_sample and chosen["temperature"] == 0:
        raise ValueError("do_sample=True needs a temperature > 0")
    return tuple(chosen.values()) if do_sample else (0.0, None, None)


def infer_attention_mask(
    model: Gemma4ForCausalLM,
    input_ids: torch.Tensor,
    attention_mask: torch.Tensor | None,
    eos_token_id: int | Sequence[int] | None = None,
) -> torch.Tensor | None:
    """The mask transformers' ``generate`` infers when none is given: if
    the pad id occurs in the prompt and is not an EOS id, the positions
    holding it are padding (with a warning); otherwise no mask."""
    if attention_mask is not None:
        return attention_mask
    pad = model.generation_config.get(
        "pad_token_id", model.config.pad_token_id
    )
    stops = eos_ids(model, eos_token_id)
    if pad is None or pad in stops or pad not in input_ids:
        return None
    warnings.warn(
        f"no attention_mask: positions holding the pad id {pad} are taken "
        "as padding, as transformers does; pass attention_mask to be sure",
        stacklevel=3,
    )
    return (input_ids != pad).long()


# what each setting must be: a type (named), a range (in words)
INT, NUMBER = (Integral, "an int"), (Real, "a number")
RULES = {
    "max_new_tokens": (INT, lambda v: v >= 0, ">= 0"),
    "prefill_chunk_size": (INT, lambda v: v >= 1, ">= 1"),
    "seed": (INT, lambda v: True, ""),
    "do_sample": ((bool, "True or False"), lambda v: True, ""),
    "temperature": (NUMBER, lambda v: 0 <= v < math.inf, "finite and >= 0"),
    "top_k": (INT, lambda v: v >= 1, ">= 1"),
    "top_p": (NUMBER, lambda v: 0 < v <= 1, "in (0, 1]"),
    "num_assistant_tokens": (INT, lambda v: v >= 1, ">= 1"),
}


def _check_settings(**settings) -> None:
    """TypeError for a setting of the wrong type (True is no number here),
    ValueError for one out of range; None means not set."""
    for name, value in settings.items():
        if value is None and name != "max_new_tokens":
            continue
        (kind, type_words), valid, words = RULES[name]
        if not isinstance(value, kind) or (
            kind is not bool and isinstance(value, bool)
        ):
            raise TypeError(f"{name} must be {type_words}, not {value!r}")
        if not valid(value):
            raise ValueError(f"{name} must be {words}, not {value}")
