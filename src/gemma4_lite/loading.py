"""Reading and writing Hugging Face-format checkpoints (safetensors only). Chapter: "The full model".

Our module tree uses the checkpoint's own names, so the mapping is nearly the identity: multimodal
checkpoints put the decoder under ``model.language_model.`` and text-only ones under ``model.``; vision and
audio towers are skipped, and so are the key/value weights that the official E2B/E4B files still store for
KV-shared layers (those layers never use them). Anything else that is missing, unexpected or mis-shaped is
refused with one error that lists every offending key.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from torch import nn

from .config import LAYER_TYPES, Gemma4Config
from .rope import RotaryTable, inv_freq_for

if TYPE_CHECKING:
    from .model import Gemma4ForCausalLM

MULTIMODAL_PREFIX = "model.language_model."
TEXT_PREFIX = "model."
# Parts of multimodal checkpoints that are not the text decoder.
NON_TEXT_PREFIXES = (
    "model.vision_tower.",
    "model.audio_tower.",
    "model.embed_vision.",
    "model.embed_audio.",
    "model.multi_modal_projector.",
)
UNSAFE_SUFFIXES = (".bin", ".pt", ".pth", ".pkl", ".ckpt")


class CheckpointError(ValueError):
    """A checkpoint that does not fit the config; the message lists every problem."""


def safetensors_files(directory: Path) -> list[Path]:
    index = directory / "model.safetensors.index.json"
    if index.is_file():
        weight_map = json.loads(index.read_text()).get("weight_map", {})
        files = sorted({directory / name for name in weight_map.values()})
        absent = [f.name for f in files if not f.is_file()]
        if absent:
            raise CheckpointError(
                f"{index.name} names shards that are not in {directory}: {', '.join(absent)}"
            )
        return files
    single = directory / "model.safetensors"
    if single.is_file():
        return [single]
    unsafe = sorted(
        p.name for p in directory.iterdir() if p.suffix in UNSAFE_SUFFIXES
    )
    if unsafe:
        raise CheckpointError(
            f"{directory} holds only pickle-based weights ({', '.join(unsafe)}). gemma4_lite "
            "loads safetensors only and never unpickles files, which can run arbitrary code; "
            "convert them with a trusted tool first"
        )
    raise CheckpointError(
        f"no model.safetensors or model.safetensors.index.json in {directory}"
    )


def checkpoint_name(key: str) -> str | None:
    """Our parameter name for a checkpoint key, or ``None`` for keys that are not the text decoder."""
    if key.startswith(MULTIMODAL_PREFIX):
        return TEXT_PREFIX + key[len(MULTIMODAL_PREFIX) :]
    if (
        key.startswith(NON_TEXT_PREFIXES) or key == "lm_head.weight"
    ):  # the head is tied to embed_tokens
        return None
    return key


def _unused_shared_kv(config: Gemma4Config) -> set[str]:
    names = set()
    for i in range(config.first_kv_shared_layer, config.num_hidden_layers):
        for part in (
            "k_proj.weight",
            "v_proj.weight",
            "k_norm.weight",
            "v_norm.weight",
        ):
            names.add(f"model.layers.{i}.self_attn.{part}")
    return names


def load_pretrained(
    cls: type["Gemma4ForCausalLM"],
    directory: str | Path,
    *,
    dtype: torch.dtype | None = None,
    device: torch.device | str = "cpu",
) -> "Gemma4ForCausalLM":
    directory = Path(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"{directory} is not a directory")
    config = Gemma4Config.from_hf(directory)
    with torch.device("meta"):
        model = cls(config, init=False)
    expected = {name: tuple(t.shape) for name, t in model.state_dict().items()}
    skip = _unused_shared_kv(config)

    tensors: dict[str, torch.Tensor] = {}
    unexpected, misshaped, misshaped_names = [], [], set()
    for file in safetensors_files(directory):
        with safe_open(str(file), framework="pt") as handle:
            for key in handle.keys():
                name = checkpoint_name(key)
                if name is None or name in skip:
                    continue
                if name not in expected:
                    unexpected.append(key)
                    continue
                shape = tuple(handle.get_slice(key).get_shape())
                if shape != expected[name]:
                    misshaped.append(
                        f"{key}: checkpoint {list(shape)}, config expects {list(expected[name])}"
                    )
                    misshaped_names.add(name)
                    continue
                tensors[name] = handle.get_tensor(key)
    missing = sorted(set(expected) - set(tensors) - misshaped_names)
    if missing or unexpected or misshaped:
        lines = [f"checkpoint in {directory} does not match its config.json:"]
        lines += [f"  missing tensor: {name}" for name in missing]
        lines += [f"  unexpected tensor: {key}" for key in sorted(unexpected)]
        lines += [f"  wrong shape: {entry}" for entry in misshaped]
        raise CheckpointError("\n".join(lines))

    if dtype is None:
        dtype = tensors["model.embed_tokens.weight"].dtype
    state = {
        name: t.to(
            device=device, dtype=dtype if t.is_floating_point() else t.dtype
        )
        for name, t in tensors.items()
    }
    model.load_state_dict(state, strict=True, assign=True)
    # Non-persistent buffers (RoPE frequencies) were created on the meta device; build them for real.
    model.model.rotary = nn.ModuleDict(
        {
            kind: RotaryTable(inv_freq_for(config, kind)).to(device)
            for kind in LAYER_TYPES
            if kind in config.layer_types
        }
    )
    return model.eval()


def save_pretrained(model: "Gemma4ForCausalLM", directory: str | Path) -> None:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    state = {
        name: t.detach().contiguous().cpu()
        for name, t in model.state_dict().items()
    }
    save_file(
        state, str(directory / "model.safetensors"), metadata={"format": "pt"}
    )
    config = model.config.to_hf_dict()
    config["dtype"] = str(model.dtype).replace("torch.", "")
    (directory / "config.json").write_text(json.dumps(config, indent=2) + "\n")
