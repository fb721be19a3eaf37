"""Reading Hugging Face-format checkpoints (safetensors only). Chapter:
"The full model". Writing them is the book's (``gemma4_lite.book.export``).

Our module tree uses the checkpoint's own names, so the mapping is nearly the
identity: multimodal checkpoints put the decoder under
``model.language_model.`` and text-only ones under ``model.``; the stacked
projections (``qkv_proj``, ``gate_up_proj``) are the checkpoint's separate
matrices one above the other. Vision and audio towers are skipped, and so
are the key/value weights that the official E2B/E4B files still store for
KV-shared layers (those layers never use them). Anything else that is
missing, unexpected or mis-shaped is refused with one error that lists every
offending key. Pickle files are never opened: they can run arbitrary code.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open
from torch import nn

from .attention import Gemma4Attention
from .config import Gemma4Config
from .hf_config import read_config

MULTIMODAL_PREFIX = "model.language_model."
# Parts of multimodal checkpoints that are not the text decoder.
NON_TEXT_PREFIXES = (
    "model.vision_tower.",
    "model.audio_tower.",
    "model.embed_vision.",
    "model.embed_audio.",
    "model.multi_modal_projector.",
    "model.vision_embedder.",  # the 12B Unified's vision embedder
)
UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


class CheckpointError(ValueError):
    """A checkpoint that does not fit its config; the message lists
    every problem."""


def safetensors_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        files = sorted({directory / name for name in weight_map.values()})
        absent = [f.name for f in files if not f.is_file()]
        if absent:
            raise CheckpointError(
                f"{index.name} names shards that are not in {directory}: "
                + ", ".join(absent)
            )
        return files
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    pickled = sorted(
        p.name for p in directory.iterdir() if p.suffix in UNSAFE_SUFFIXES
    )
    raise CheckpointError(
        "no model.safetensors or model.safetensors.index.json in "
        f"{directory} (pickle-based weights: {', '.join(pickled) or 'none'});"
        " gemma4_lite never unpickles files, which can run arbitrary code: "
        "convert such weights to safetensors with a trusted tool"
    )


# Our stacked matrices and the checkpoint matrices they hold, top to bottom.
STACKED = {
    "self_attn.qkv_proj.weight": (
        "self_attn.q_proj.weight",
        "self_attn.k_proj.weight",
        "self_attn.v_proj.weight",
    ),
    "mlp.gate_up_proj.weight": ("mlp.gate_proj.weight", "mlp.up_proj.weight"),
}


Layout = dict[str, list[tuple[str, tuple[int, ...]]]]


def checkpoint_layout(model: nn.Module) -> Layout:
    """For each of our tensors, the checkpoint tensors it holds, top to
    bottom, and their shapes (itself, for everything that is not
    stacked)."""
    layout = {}
    for name, tensor in model.state_dict().items():
        suffix = next((s for s in STACKED if name.endswith(s)), None)
        if suffix is None:
            layout[name] = [(name, tuple(tensor.shape))]
            continue
        prefix = name[: -len(suffix)]
        owner = model.get_submodule(prefix + suffix.split(".")[0])
        if isinstance(owner, Gemma4Attention):
            rows = [n * owner.head_dim for n in owner.heads_per_part]
        else:  # gate and up: two equal halves
            rows = [tensor.shape[0] // 2] * 2
        parts = zip(STACKED[suffix][: len(rows)], rows)
        layout[name] = [(prefix + p, (r, *tensor.shape[1:])) for p, r in parts]
    return layout


def checkpoint_name(key: str) -> str | None:
    """Our name for a checkpoint key (``model.layers...``), or ``None`` for
    keys that are not the text decoder."""
    if key.startswith(MULTIMODAL_PREFIX):
        return "model." + key.removeprefix(MULTIMODAL_PREFIX)
    # the head is tied to embed_tokens
    if key.startswith(NON_TEXT_PREFIXES) or key == "lm_head.weight":
        return None
    return key


def unused_shared_kv(config: Gemma4Config) -> set[str]:
    """The key/value weights that E2B/E4B files store for KV-shared layers,
    which never use them."""
    return {
        f"model.layers.{i}.self_attn.{part}.weight"
        for i in range(config.first_kv_shared_layer, config.num_hidden_layers)
        for part in ("k_proj", "v_proj", "k_norm", "v_norm")
    }


def load_into(
    model: nn.Module,
    directory: str | Path,
    dtype: torch.dtype | str | None = None,
    device: torch.device | str = "cpu",
    attn_implementation: str = "eager",
    skip: set[str] = frozenset(),
) -> nn.Module:
    """Fill ``model`` (built on the meta device) from the safetensors files
    of ``directory``, or raise one :class:`CheckpointError` listing every
    missing, unexpected and mis-shaped tensor; ``skip`` names checkpoint
    tensors left unread. The target's loader and the MTP drafter's both end
    here."""
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    layout = checkpoint_layout(model)
    # the shape of every tensor the config expects and that is not read yet
    expected = dict(part for parts in layout.values() for part in parts)

    tensors: dict[str, torch.Tensor] = {}
    problems = []
    for file in safetensors_files(directory):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                name = checkpoint_name(key)
                if name is None or name in skip:
                    continue
                shape = tuple(handle.get_slice(key).get_shape())
                wanted = expected.pop(name, None)
                if wanted is None:
                    problems.append(f"unexpected tensor: {key}")
                elif shape != wanted:
                    problems.append(
                        f"wrong shape: {key}: checkpoint {list(shape)}, "
                        f"config expects {list(wanted)}"
                    )
                else:
                    tensors[name] = handle.get_tensor(key)
    problems += [f"missing tensor: {name}" for name in sorted(expected)]
    if problems:
        head = f"checkpoint in {directory} does not match its config.json:"
        raise CheckpointError("\n  ".join([head, *problems]))

    dtype = load_dtype(directory, dtype, tensors)
    state = {}
    for ours, parts in layout.items():
        t = torch.cat([tensors[name] for name, _ in parts])
        state[ours] = t.to(device, dtype if t.is_floating_point() else t.dtype)
    model.load_state_dict(state, strict=True, assign=True)
    generation = directory / "generation_config.json"
    if generation.is_file():
        model.generation_config = json.loads(generation.read_text())
    model.set_attn_implementation(attn_implementation)
    return model.eval()


def load_dtype(
    directory: Path,
    dtype: torch.dtype | str | None,
    tensors: dict[str, torch.Tensor],
) -> torch.dtype:
    """transformers' rule: the dtype given (or its name, "bfloat16"), else
    (``None`` or ``"auto"``) the ``dtype`` of ``config.json`` (or its older
    name ``torch_dtype``; top level first, then ``text_config``), else the
    dtype of the first floating-point tensor of the checkpoint."""
    if dtype is None or dtype == "auto":
        config = read_config(directory)
        levels = (config, config.get("text_config") or {})
        keys = ("dtype", "torch_dtype")
        found = [c[k] for c in levels for k in keys if c.get(k) is not None]
        found += [t.dtype for t in tensors.values() if t.is_floating_point()]
        dtype = found[0] if found else torch.get_default_dtype()
    named = getattr(torch, dtype, None) if isinstance(dtype, str) else dtype
    if not isinstance(named, torch.dtype) or not named.is_floating_point:
        raise ValueError(
            f"dtype must be a floating-point torch.dtype, its name or "
            f'"auto", not {dtype!r}'
        )
    return named
