"""A layer-by-layer debugger: gemma4_lite beside transformers on the same
weights and input. Chapter: "The full model".

Both implementations name their modules after the checkpoint keys, so one
set of forward hooks reads the same places in each: the embedding, the
output of every sub-block (attention, dense MLP, MoE, per-layer input), each
measured where it joins the residual stream, the residual stream at each
layer's exit, the final norm and the logits. :func:`compare_layers` reports
the largest absolute difference at every one of them; the first place where
it leaves zero is where two implementations part.

One forward pass without a cache cannot see the decode path: a cache that
stores a key in the wrong slot changes nothing there.
:func:`compare_decoding` checks it separately, step by step, against the
same model without a cache. :func:`planted_bug` plants a known bug in one of
our models for a while, to see what the reports of a broken implementation
look like.

Blind spots that remain: both checks decode greedily, so sampling
(temperature, top-k, top-p) goes unchecked; they run one unpadded
sequence, so left padding and batches do not; they reach only the
positions of the prompt they are given (no long context, no chunked
prefill, no compiled step); and a comparison holds for the dtype and
attention path it ran in. Compare in one dtype: a bf16 run against a bf16
reference agrees to the bit, while against an fp32 reference a small bug
hides in bf16 rounding.

What the hooks read of our package: ``model.model`` (the text model, whose
output is the final-normed hidden state), its ``embed_tokens``, ``layers``
and ``norm``, the per-layer modules named in :func:`stage_modules`,
``model.new_cache`` and the caches' ``update(k, v, start)``.
"""

from __future__ import annotations

import types
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterator

import torch
from torch import nn

from ..config import FULL, Gemma4Config
from ..model import Gemma4ForCausalLM
from ..norms import RMSNorm
from ..rope import RotaryTable
from .export import to_hf_dict

STAGES = ("attention", "MLP", "MoE", "per-layer input", "output")
SHORT = {"per-layer input": "PLE"}  # column headers of the table


def stage_modules(config: Gemma4Config) -> dict[str, str]:
    """Each stage and the module (inside a layer) whose output is that
    sub-block's contribution to the residual stream; ``""`` is the layer
    itself (the residual stream after ``layer_scalar``)."""
    moe = config.enable_moe_block
    names = {
        "attention": "post_attention_layernorm",
        # on MoE layers the dense MLP has its own post-norm; the outer
        # post-norm then acts on the sum of MLP and MoE
        "MLP": "post_feedforward_layernorm_1"
        if moe
        else "post_feedforward_layernorm",
    }
    if moe:
        names["MoE"] = "post_feedforward_layernorm_2"
    if config.hidden_size_per_layer_input:
        names["per-layer input"] = "post_per_layer_input_norm"
    names["output"] = ""
    return names


def _logits(model: nn.Module, input_ids: torch.Tensor) -> torch.Tensor:
    if isinstance(model, Gemma4ForCausalLM):
        return model(input_ids)
    return model(input_ids=input_ids, use_cache=False).logits


def text_decoder(model: nn.Module) -> nn.Module:
    """The text decoder (embedding, layers, final norm) inside ``model``:
    ours, transformers' ``Gemma4ForCausalLM`` and ``Gemma4UnifiedForCausalLM``
    (``model.model``) or a multimodal ``...ForConditionalGeneration``
    (``model.model.language_model``)."""
    inner = model.model
    return getattr(inner, "language_model", inner)


@torch.no_grad()
def record(
    model: nn.Module, config: Gemma4Config, input_ids: torch.Tensor
) -> dict[str, torch.Tensor]:
    """Run ``model`` (ours or transformers') once on ``input_ids`` and keep,
    in fp32, the embedding (``"embedding"``), every stage of every layer
    (``"3/attention"``), the final norm (``"final norm"``) and the logits
    (``"logits"``)."""
    seen: dict[str, torch.Tensor] = {}
    hooks = []

    def keep(key: str) -> Callable:
        def hook(module, args, output):
            out = output[0] if isinstance(output, tuple) else output
            seen[key] = out.detach().float().clone()

        return hook

    decoder = text_decoder(model)
    hooks.append(decoder.embed_tokens.register_forward_hook(keep("embedding")))
    hooks.append(decoder.norm.register_forward_hook(keep("final norm")))
    for i in range(config.num_hidden_layers):
        layer = decoder.layers[i]
        for stage, name in stage_modules(config).items():
            module = layer.get_submodule(name) if name else layer
            hooks.append(module.register_forward_hook(keep(f"{i}/{stage}")))
    try:
        seen["logits"] = _logits(model, input_ids).detach().float()
    finally:
        for hook in hooks:
            hook.remove()
    return seen


@dataclass
class LayerReport:
    """Largest absolute differences between two runs, stage by stage."""

    config: Gemma4Config
    embedding: float
    layers: list[dict[str, float]]  # per layer: stage -> max |difference|
    logits: float
    # per layer: stage -> max |reference value|, to make differences relative
    scales: list[dict[str, float]] | None = None
    final_norm: float = 0.0

    @property
    def stages(self) -> list[str]:
        return list(stage_modules(self.config))

    def per_layer(
        self, stage: str = "output", relative: bool = False
    ) -> list[float]:
        """The largest difference at ``stage`` of every layer; with
        ``relative``, divided by the largest value the reference has
        there."""
        if not relative:
            return [row[stage] for row in self.layers]
        return [
            row[stage] / max(scale[stage], 1e-30)
            for row, scale in zip(self.layers, self.scales)
        ]

    def first_divergence(
        self, tolerance: float = 0.0
    ) -> tuple[int, str] | None:
        """``(layer, stage)`` of the first difference above ``tolerance``,
        in the order the forward pass computes them: ``(-1, "embedding")``
        if the embeddings already differ, then every stage of every layer,
        then ``(L, "final norm")`` and ``(L, "logits")`` with ``L`` the
        number of layers; ``None`` if nothing differs. Blind to the decode
        path (see :func:`compare_decoding`)."""
        if self.embedding > tolerance:
            return (-1, "embedding")
        for i, row in enumerate(self.layers):
            for stage in self.stages:
                if row[stage] > tolerance:
                    return (i, stage)
        after = len(self.layers)
        if self.final_norm > tolerance:
            return (after, "final norm")
        if self.logits > tolerance:
            return (after, "logits")
        return None

    def rows(self) -> tuple[list[str], list[list[str]]]:
        """Header and rows of :meth:`table`, for ``html_table``."""
        stages = self.stages
        header = ["layer", "kind"] + [SHORT.get(s, s) for s in stages]
        blank = [""] * (len(stages) - 1)
        rows = [["embed", "", _fmt(self.embedding)] + blank]
        for i, row in enumerate(self.layers):
            kind = layer_label(self.config, i)
            rows.append([str(i), kind] + [_fmt(row[s]) for s in stages])
        rows.append(["norm", "final", _fmt(self.final_norm)] + blank)
        rows.append(["head", "logits", _fmt(self.logits)] + blank)
        return header, rows

    def table(self) -> str:
        """A text table: one row per layer, one column per stage."""
        stages = self.stages
        heads = [SHORT.get(s, s) for s in stages]
        lines = [
            f"{'layer':>5} {'kind':>8} " + " ".join(f"{h:>9}" for h in heads)
        ]
        lines.append(f"{'embed':>5} {'':>8} {_fmt(self.embedding):>9}")
        for i, row in enumerate(self.layers):
            cells = " ".join(f"{_fmt(row[s]):>9}" for s in stages)
            lines.append(f"{i:>5} {layer_label(self.config, i):>8} {cells}")
        lines.append(f"{'norm':>5} {'final':>8} {_fmt(self.final_norm):>9}")
        lines.append(f"{'head':>5} {'logits':>8} {_fmt(self.logits):>9}")
        if self.config.num_kv_shared_layers:
            lines.append("* KV-shared: reads an earlier layer's keys/values")
        return "\n".join(lines)


def layer_label(config: Gemma4Config, layer: int) -> str:
    """``"sliding"`` or ``"global"``, with ``"*"`` for a KV-shared layer
    (it computes no keys or values of its own)."""
    kind = "sliding" if config.is_sliding(layer) else "global"
    return kind + ("*" if config.is_kv_shared(layer) else "")


def _fmt(value: float) -> str:
    return "0" if value == 0 else f"{value:.1e}"


def compare_layers(
    ours: nn.Module,
    reference: nn.Module,
    input_ids: torch.Tensor,
    config: Gemma4Config | None = None,
) -> LayerReport:
    """Run both models on ``input_ids`` and report, per layer and stage,
    the largest absolute difference. ``reference`` is usually what
    :func:`load_reference` loads from the same folder; any model with the
    checkpoint's module names works (another gemma4_lite model too). Compare
    in one dtype: two correct bf16 runs agree to the bit, while a bf16 run
    against an fp32 reference differs everywhere by bf16 rounding."""
    config = config or ours.config
    a = record(ours, config, input_ids)
    b = record(reference, config, input_ids)

    def diff(key: str) -> float:
        return float((a[key] - b[key]).abs().max())

    def scale(key: str) -> float:
        return float(b[key].abs().max())

    stages = stage_modules(config)
    n = config.num_hidden_layers
    layers = [{s: diff(f"{i}/{s}") for s in stages} for i in range(n)]
    scales = [{s: scale(f"{i}/{s}") for s in stages} for i in range(n)]
    return LayerReport(
        config,
        diff("embedding"),
        layers,
        diff("logits"),
        scales,
        diff("final norm"),
    )


class ReferenceLoadError(ValueError):
    """transformers could not fill every weight of the reference from the
    folder: a comparison against it would compare against random numbers."""


def load_reference(
    directory: str | Path,
    dtype: torch.dtype = torch.float32,
    attn_implementation: str = "eager",
) -> nn.Module:
    """The model transformers builds for a checkpoint folder, on its
    written-out (eager) attention and expert paths, in eval mode.

    The class is the one ``AutoModelForCausalLM`` picks from the folder's
    ``config.json``: ``Gemma4ForCausalLM`` (text-only files),
    ``Gemma4ForConditionalGeneration`` (the released multimodal
    checkpoints), ``Gemma4UnifiedForCausalLM`` or
    ``Gemma4UnifiedForConditionalGeneration`` (the 12B). Its text decoder is
    what :func:`compare_layers` hooks (:func:`text_decoder`). Raises
    :class:`ReferenceLoadError` if any weight was missing from the folder
    or of the wrong shape, instead of comparing against the random values
    transformers would put there."""
    from transformers import AutoModelForCausalLM

    model, info = AutoModelForCausalLM.from_pretrained(
        directory,
        dtype=dtype,
        attn_implementation=attn_implementation,
        output_loading_info=True,
    )
    problems = [f"missing: {k}" for k in sorted(info["missing_keys"])]
    problems += [f"wrong shape: {m}" for m in info["mismatched_keys"]]
    if problems:
        raise ReferenceLoadError(
            f"{type(model).__name__} from {directory} left weights at "
            "random values:\n  " + "\n  ".join(problems)
        )
    if getattr(text_decoder(model).config, "enable_moe_block", False):
        model.set_experts_implementation("eager")
    return model.eval()


def side_by_side(
    directory: str | Path,
    input_ids: torch.Tensor,
    dtype: torch.dtype = torch.float32,
) -> LayerReport:
    """Load a folder into gemma4_lite and into transformers, both in
    ``dtype``, and compare them layer by layer on ``input_ids``."""
    ours = Gemma4ForCausalLM.from_pretrained(directory, dtype=dtype)
    return compare_layers(ours, load_reference(directory, dtype), input_ids)


# ------------------------------------------------- a random reference model
def reference_from_preset(name: str, seed: int = 0) -> nn.Module:
    """A transformers ``Gemma4ForCausalLM`` of a preset's shape (usually a
    tiny twin) with every weight random, the gains and scalars that start at
    1 included (left at 1, they would hide bugs such as the ``(1 + w)``
    norm). fp32, eager attention and experts."""
    from transformers import Gemma4ForCausalLM as Reference
    from transformers import Gemma4TextConfig

    values = to_hf_dict(Gemma4Config.from_preset(name))
    for key in ("model_type", "architectures"):
        values.pop(key, None)
    torch.manual_seed(seed)
    model = Reference._from_config(
        Gemma4TextConfig(**values),
        attn_implementation="eager",
        dtype=torch.float32,
    )
    if model.config.enable_moe_block:
        model.set_experts_implementation("eager")
    _randomise(model, seed)
    return model.eval()


# small towers, enough for transformers to build and save the classes
TINY_VISION = dict(
    hidden_size=16,
    intermediate_size=32,
    num_hidden_layers=1,
    num_attention_heads=2,
    num_key_value_heads=2,
    head_dim=8,
    position_embedding_size=16,
    patch_size=4,
    pooling_kernel_size=2,
)
TINY_AUDIO = dict(
    hidden_size=16,
    num_hidden_layers=1,
    num_attention_heads=2,
    subsampling_conv_channels=[4, 4],
    output_proj_dims=16,
    conv_kernel_size=3,
)


def multimodal_from_preset(name: str, seed: int = 0) -> nn.Module:
    """transformers' ``Gemma4ForConditionalGeneration`` (the class of the
    released checkpoints) with a preset's text decoder, tiny vision and
    audio towers beside it, and random text weights as in
    :func:`reference_from_preset`. Saved, its folder has the released
    layout: the decoder under ``model.language_model.``."""
    from transformers import Gemma4Config as Config
    from transformers import Gemma4ForConditionalGeneration

    values = to_hf_dict(Gemma4Config.from_preset(name))
    for key in ("model_type", "architectures"):
        values.pop(key, None)
    config = Config(
        text_config=values,
        vision_config=TINY_VISION,
        audio_config=TINY_AUDIO,
    )
    torch.manual_seed(seed)
    model = Gemma4ForConditionalGeneration._from_config(
        config, attn_implementation="eager", dtype=torch.float32
    )
    _randomise(text_decoder(model), seed)
    if values.get("enable_moe_block"):
        model.set_experts_implementation("eager")
    return model.eval()


@torch.no_grad()
def _randomise(model: nn.Module, seed: int, std: float = 0.08) -> None:
    gen = torch.Generator().manual_seed(seed)
    tensors = list(model.named_parameters()) + list(model.named_buffers())
    for name, tensor in tensors:
        if "inv_freq" in name or "embed_scale" in name:
            continue
        ones = ("layer_scalar", "router.scale", "per_expert_scale")
        if "norm" in name or name.endswith(ones):
            fresh = torch.empty(tensor.shape).uniform_(0.5, 1.5, generator=gen)
        else:
            fresh = torch.randn(tensor.shape, generator=gen) * std
        tensor.copy_(fresh)


# ------------------------------------------------------------ planted bugs
def _gemma3_norm(
    model: nn.Module, norms: list[nn.Module] | None = None
) -> Callable[[], None]:
    """Every RMSNorm with a gain (or only ``norms``) multiplies by ``1 + w``
    (Gemma 2 and 3) instead of Gemma 4's ``w``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        weight = 1.0 + self.weight.float()
        y = nn.functional.rms_norm(x.float(), (x.shape[-1],), weight, self.eps)
        return y.to(x.dtype)

    if norms is None:
        norms = [
            m
            for m in model.modules()
            if isinstance(m, RMSNorm) and m.with_scale
        ]
    for norm in norms:
        norm.forward = types.MethodType(forward, norm)

    def undo() -> None:
        for norm in norms:
            del norm.forward

    return undo


def contiguous_inv_freq(
    head_dim: int, theta: float, partial_rotary_factor: float
) -> torch.Tensor:
    """The usual partial RoPE's frequencies: the rotated pairs spread over
    the exponents of a *smaller* head (``p * d``), the rest frequency 0;
    Gemma 4's proportional RoPE keeps the full ``d`` in the exponent."""
    rotated = int(partial_rotary_factor * head_dim // 2)
    exponents = torch.arange(0, 2 * rotated, 2).float() / (2 * rotated)
    freqs = 1.0 / theta**exponents
    return torch.cat([freqs, torch.zeros(head_dim // 2 - rotated)])


def _contiguous_rope(model: nn.Module) -> Callable[[], None]:
    """Global layers rotate with the usual partial-RoPE frequencies."""
    config, tables = model.config, model.model.rope
    if FULL not in tables or config.global_rope_type != "proportional":
        raise ValueError("this model has no proportional-RoPE global layers")
    right = tables[FULL]
    tables[FULL] = RotaryTable(
        contiguous_inv_freq(
            int(config.global_head_dim),
            config.global_rope_theta,
            config.global_partial_rotary_factor,
        )
    )

    def undo() -> None:
        tables[FULL] = right

    return undo


def _final_norm(model: nn.Module) -> Callable[[], None]:
    """Only the final norm, after the last layer, multiplies by ``1 + w``."""
    return _gemma3_norm(model, [model.model.norm])


def _no_softcap(model: nn.Module) -> Callable[[], None]:
    """The head forgets the final soft cap ``30 tanh(z / 30)``."""

    def head(h: torch.Tensor) -> torch.Tensor:
        return nn.functional.linear(h, model.model.embed_tokens.weight)

    model.head = head

    def undo() -> None:
        del model.head

    return undo


def _rope_one_percent(model: nn.Module) -> Callable[[], None]:
    """The global layers' rotary frequencies 1% too high (a wrong theta,
    say): a small bug, of the size bf16 rounding produces."""
    tables = model.model.rope
    if FULL not in tables:
        raise ValueError("this model has no global layers")
    right = tables[FULL]
    tables[FULL] = RotaryTable(right.inv_freq * 1.01)

    def undo() -> None:
        tables[FULL] = right

    return undo


def _ring_off_by_one(model: nn.Module) -> Callable[[], None]:
    """The one-token decode step writes each sliding layer's new key and
    value one slot too far in the ring buffer. Prefill is untouched, so a
    forward pass without a cache cannot see it."""
    from ..kv_cache import RingKVCache

    return _shift_decode_writes(model, RingKVCache)


def _mystery_b(model: nn.Module) -> Callable[[], None]:
    """A bug to classify (chapter exercise)."""
    from ..kv_cache import GlobalKVCache

    return _shift_decode_writes(model, GlobalKVCache)


def _mystery_a(model: nn.Module) -> Callable[[], None]:
    """A bug to classify (chapter exercise)."""
    from .. import generation

    right = generation.filter_logits

    def wrong(logits, top_k, top_p):
        return right(logits, None if top_k is None else top_k + 1, top_p)

    generation.filter_logits = wrong

    def undo() -> None:
        generation.filter_logits = right

    return undo


def _shift_decode_writes(model: nn.Module, kind: type) -> Callable[[], None]:
    make = model.new_cache

    def shifted(update: Callable) -> Callable:
        def wrong(k, v, start):
            if isinstance(start, torch.Tensor):  # a decode step
                start = start + 1
            return update(k, v, start)

        return wrong

    def new_cache(*args, **kwargs):
        cache = make(*args, **kwargs)
        for store in cache.layers:
            if isinstance(store, kind):
                store.update = shifted(store.update)
        return cache

    model.new_cache = new_cache

    def undo() -> None:
        del model.new_cache

    return undo


def _mystery(model: nn.Module) -> Callable[[], None]:
    """A bug to find with the debugger (chapter exercise)."""
    config, decoder = model.config, model.model
    if not config.num_kv_shared_layers:
        raise ValueError("this bug needs a model with KV-shared layers")
    right = decoder.lends_kv
    unshared = config.layer_types[: config.first_kv_shared_layer]
    firsts = {unshared.index(kind) for kind in set(unshared)}
    decoder.lends_kv = [i in firsts for i in range(len(right))]

    def undo() -> None:
        decoder.lends_kv = right

    return undo


BUGS: dict[str, Callable[[nn.Module], Callable[[], None]]] = {
    "gemma3_norm": _gemma3_norm,
    "contiguous_rope": _contiguous_rope,
    "rope_one_percent": _rope_one_percent,
    "final_norm": _final_norm,
    "no_softcap": _no_softcap,
    "ring_off_by_one": _ring_off_by_one,
    "mystery": _mystery,
    "mystery_a": _mystery_a,
    "mystery_b": _mystery_b,
}


@contextmanager
def planted_bug(model: nn.Module, name: str) -> Iterator[nn.Module]:
    """Plant bug ``name`` (a key of :data:`BUGS`) in one gemma4_lite model
    for the duration of a ``with`` block; the model is restored after it,
    even if the block raises."""
    if name not in BUGS:
        raise KeyError(f"unknown bug {name!r}; known: {sorted(BUGS)}")
    undo = BUGS[name](model)
    try:
        yield model
    finally:
        undo()


# ------------------------------------------------- greedy runs that part
def agreeing_prefix(a: torch.Tensor, b: torch.Tensor) -> int:
    """How many leading tokens two 1-D token sequences share."""
    n = min(len(a), len(b))
    same = (a[:n] == b[:n]).long()
    return int(same.cumprod(0).sum())


def top2_margin(logits: torch.Tensor) -> float:
    """The gap between the best and second-best logit (fp32): greedy
    decoding flips when a numerical difference exceeds it."""
    best = torch.topk(logits.float(), 2, dim=-1).values
    return float(best[..., 0] - best[..., 1])


@torch.no_grad()
def first_split(
    a: nn.Module,
    b: nn.Module,
    input_ids: torch.Tensor,
    max_new_tokens: int,
) -> tuple[int, float | None]:
    """Greedy-decode ``input_ids`` [1, S] with two gemma4_lite models (the
    same weights in two precisions or attention paths, say). Returns the
    number of new tokens they agree on, and the gap between ``a``'s two
    best logits at the first token where they part (``None`` if they never
    do): a small gap is what lets last-bit differences flip the argmax."""
    from ..generation import generate

    length = input_ids.shape[1]
    run = dict(ignore_eos=True)
    ta = generate(a, input_ids, max_new_tokens, **run)[0, length:]
    tb = generate(b, input_ids, max_new_tokens, **run)[0, length:]
    agree = agreeing_prefix(ta, tb)
    if agree == max_new_tokens:
        return agree, None
    context = torch.cat([input_ids[0], ta[:agree]])[None]
    logits = a(context, last_only=True)[0, -1]
    return agree, top2_margin(logits)


# ------------------------------------------------ the cached decode path
@dataclass
class DecodeReport:
    """Greedy decoding with the cache against the same model without one:
    per new token, the largest difference of the final-normed hidden state
    (relative to the largest uncached value) and whether the cached run
    chose the token the uncached logits rank first."""

    relative: list[float]
    same_token: list[bool]

    def first_divergence(self, tolerance: float = 1e-4) -> int | None:
        """The first step (0 = the token after the prompt) whose relative
        difference exceeds ``tolerance`` or whose token differs; ``None`` if
        none does. Cached and uncached runs multiply matrices of different
        shapes, so even a correct cache differs by float rounding (up to
        about 1e-5 relative on the float32 twins): hence the tolerance. In
        bfloat16, raise it towards the format's spacing (about 1e-2)."""
        for step, (diff, same) in enumerate(
            zip(self.relative, self.same_token)
        ):
            if diff > tolerance or not same:
                return step
        return None


@torch.no_grad()
def compare_decoding(
    model: Gemma4ForCausalLM, input_ids: torch.Tensor, max_new_tokens: int
) -> DecodeReport:
    """Greedy-decode ``input_ids`` [1, S] with ``generate_stream`` (prefill,
    then one-token steps through the cache), then run the whole sequence
    once without a cache, and compare the two at every new token."""
    from ..generation import generate_stream

    seen: list[torch.Tensor] = []
    hook = model.model.register_forward_hook(
        lambda module, args, output: seen.append(output[0, -1].float())
    )
    try:
        tokens = [
            int(t[0])
            for t in generate_stream(
                model, input_ids, max_new_tokens, ignore_eos=True
            )
        ]
    finally:
        hook.remove()
    sequence = torch.cat([input_ids[0], torch.tensor(tokens)])[None]
    full: list[torch.Tensor] = []
    hook = model.model.register_forward_hook(
        lambda module, args, output: full.append(output[0].float())
    )
    try:
        logits = model(sequence)[0]
    finally:
        hook.remove()
    start = input_ids.shape[1] - 1
    relative, same = [], []
    for step, token in enumerate(tokens):
        want = full[0][start + step]
        diff = (seen[step] - want).abs().max() / want.abs().max()
        relative.append(float(diff))
        same.append(int(logits[start + step].argmax()) == token)
    return DecodeReport(relative, same)


# --------------------------------------------- a prompt through the model
@torch.no_grad()
def trace_prompt(
    model: Gemma4ForCausalLM, input_ids: torch.Tensor
) -> list[dict]:
    """Prefill ``input_ids`` [B, S] into a fresh cache and record, for every
    layer: its kind, whether it runs an MoE, whose keys/values it reads,
    the shape of the hidden state it returns, how many keys its queries
    saw, and the slots and bytes its cache holds afterwards."""
    config = model.config
    cache = model.new_cache(input_ids.shape[0], max_length=input_ids.shape[1])
    rows: list[dict] = []
    hooks = []

    def keep(i: int) -> Callable:
        def hook(module, args, output):
            h, (k, _) = output
            rows.append(dict(hidden=tuple(h.shape), keys=k.shape[2]))

        return hook

    for i, layer in enumerate(model.model.layers):
        hooks.append(layer.register_forward_hook(keep(i)))
    try:
        logits = model(input_ids, cache)
    finally:
        for hook in hooks:
            hook.remove()
    for i, row in enumerate(rows):
        store = cache.layers[i]
        row.update(
            layer=i,
            kind=layer_label(config, i),
            moe=config.enable_moe_block,
            reads=config.kv_producer(i),
            slots=0 if store is None else store.k.shape[2],
            bytes=cache.layer_nbytes()[i],
        )
    rows.append(dict(layer="head", hidden=tuple(logits.shape)))
    return rows


def trace_rows(rows: list[dict]) -> tuple[list[str], list[list[str]]]:
    """Header and rows of :func:`trace_table`, for ``html_table``."""
    header = ["layer", "kind", "MoE", "KV of", "output", "keys", "slots"]
    out = []
    for r in rows:
        shape = "x".join(map(str, r["hidden"]))
        if r["layer"] == "head":
            out.append(["head", "logits", "", "", shape, "", "", ""])
            continue
        out.append(
            [
                str(r["layer"]),
                r["kind"],
                "yes" if r["moe"] else "",
                str(r["reads"]),
                shape,
                str(r["keys"]),
                str(r["slots"]),
                str(r["bytes"]),
            ]
        )
    return header + ["bytes"], out


def trace_table(rows: list[dict]) -> str:
    """:func:`trace_prompt`'s rows as a text table."""
    head = f"{'layer':>5} {'kind':>8} {'MoE':>3} {'KV of':>5} {'output':>12}"
    lines = [head + f" {'keys':>4} {'slots':>5} {'bytes':>6}"]
    for r in rows:
        shape = "x".join(map(str, r["hidden"]))
        if r["layer"] == "head":
            lines.append(
                f"{'head':>5} {'logits':>8} {'':>3} {'':>5} {shape:>12}"
            )
            continue
        lines.append(
            f"{r['layer']:>5} {r['kind']:>8} {'yes' if r['moe'] else '':>3} "
            f"{r['reads']:>5} {shape:>12} {r['keys']:>4} {r['slots']:>5} "
            f"{r['bytes']:>6}"
        )
    return "\n".join(lines)


# ------------------------------------------------------------- sampling
def sampling_distribution(
    logits: torch.Tensor,
    temperature: float,
    top_k: int | None = None,
    top_p: float | None = None,
) -> torch.Tensor:
    """The distribution ``generate`` samples the next token from, for
    logits [V]: all mass on the best token at temperature 0, otherwise
    softmax(logits / T) cut by top-k, then top-p (renormalised)."""
    from ..generation import filter_logits

    logits = logits.float()
    if temperature == 0:
        return nn.functional.one_hot(logits.argmax(), logits.shape[-1]).float()
    kept = filter_logits(logits[None] / temperature, top_k, top_p)[0]
    return torch.softmax(kept, dim=-1)
