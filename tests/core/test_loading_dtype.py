"""from_pretrained without a dtype loads in the dtype config.json names, as
transformers does, not in the dtype the tensors happen to be stored in."""

import json

import pytest
import torch
from conftest import random_model

from gemma4_lite import Gemma4ForCausalLM
from gemma4_lite.book.export import save_pretrained


@pytest.fixture(scope="module")
def fp32_model():
    return random_model("dense-tiny", seed=3)  # stored in fp32


def _saved(model, folder, **keys):
    save_pretrained(model, folder)
    path = folder / "config.json"
    config = json.loads(path.read_text())
    for key, value in keys.items():
        config.pop(key, None)
        if value is not None:
            config[key] = value
    path.write_text(json.dumps(config))
    return folder


@pytest.mark.parametrize(
    "keys, expected",
    [
        ({"dtype": "bfloat16"}, torch.bfloat16),
        ({"dtype": None, "torch_dtype": "float16"}, torch.float16),
        ({"dtype": "bfloat16", "torch_dtype": "float16"}, torch.bfloat16),
        ({"dtype": None}, torch.float32),  # no key: the tensors' dtype
    ],
)
def test_dtype_comes_from_config_json(fp32_model, tmp_path, keys, expected):
    folder = _saved(fp32_model, tmp_path, **keys)
    assert Gemma4ForCausalLM.from_pretrained(folder).dtype == expected
    auto = Gemma4ForCausalLM.from_pretrained(folder, dtype="auto")
    assert auto.dtype == expected
    transformers = pytest.importorskip("transformers")
    theirs = transformers.Gemma4ForCausalLM.from_pretrained(folder)
    assert theirs.dtype == expected


def test_an_explicit_dtype_wins(fp32_model, tmp_path):
    folder = _saved(fp32_model, tmp_path, dtype="bfloat16")
    for dtype in (torch.float32, "float32"):
        model = Gemma4ForCausalLM.from_pretrained(folder, dtype=dtype)
        assert model.dtype == torch.float32
    for bad in ("int8", "nonsense", "nn", torch.int64, 16):
        with pytest.raises(ValueError, match="dtype"):
            Gemma4ForCausalLM.from_pretrained(folder, dtype=bad)
