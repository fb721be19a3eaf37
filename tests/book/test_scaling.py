"""Memory budgets, the memory-mapped PLE table and KV-sharing helpers of
the chapter "Scaling decisions and the edge models"."""

import torch

from gemma4_lite import Gemma4Config, count_parameters, kv_cache_bytes
from gemma4_lite.book import scaling
from gemma4_lite.book.answers.ch10 import validate_per_layer_inputs
from gemma4_lite.book.tiny import tiny_model
from gemma4_lite.ple import per_layer_inputs


def test_weight_bytes_by_precision():
    c = Gemma4Config.from_preset("e2b")
    counts = count_parameters(c)
    assert scaling.weight_bytes(c, 16) == 2 * counts["total"]
    without = counts["total"] - counts["per_layer_embedding_table"]
    assert scaling.weight_bytes(c, 4, per_layer_table=False) == without // 2


def test_kv_bytes_match_the_core_accounting():
    c = Gemma4Config.from_preset("e4b")
    assert scaling.kv_bytes(c, 4096) == kv_cache_bytes(c, 4096)
    assert scaling.kv_bytes(c, 4096, bits=8) * 2 == kv_cache_bytes(c, 4096)


def test_ple_row_per_token():
    c = Gemma4Config.from_preset("e2b")
    assert scaling.ple_bytes_per_token(c) == 35 * 256 * 2


def test_kv_readers_and_unshared_copy():
    c = Gemma4Config.from_preset("e2b")
    readers = scaling.kv_readers(c)
    assert sorted(readers) == [13, 14]
    assert sum(map(len, readers.values())) == 20
    plain = scaling.kv_without_sharing(c)
    assert plain.num_kv_shared_layers == 0
    assert scaling.kv_bytes(plain, 1000) > scaling.kv_bytes(c, 1000)


def test_mapped_table_gives_the_same_logits(tmp_path):
    model = tiny_model("e2b-tiny", seed=1)
    model.save_pretrained(tmp_path)
    ids = torch.tensor([[5, 9, 5, 200, 9, 7]])
    with torch.no_grad():
        want = model(ids)
        mapped = scaling.map_per_layer_table(
            model, tmp_path / "model.safetensors"
        )
        got = model(ids)
    assert torch.equal(want, got)
    row = model.config.num_hidden_layers * 16 * 4
    assert mapped.bytes_read == 4 * row  # four distinct tokens


def test_exercise_validator():
    assert validate_per_layer_inputs(per_layer_inputs)
    assert not validate_per_layer_inputs(lambda text, ids, e: e)
