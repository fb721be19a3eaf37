"""Memory budgets, the memory-mapped PLE table and KV-sharing helpers of
the chapter "Scaling decisions and the edge models"."""

import torch

from gemma4_lite import Gemma4Config
from gemma4_lite.book import scaling
from gemma4_lite.book.accounting import count_parameters, kv_cache_bytes
from gemma4_lite.book.export import save_pretrained
from gemma4_lite.book.tiny import tiny_model


def test_weight_bytes_by_precision():
    c = Gemma4Config.from_preset("e2b")
    counts = count_parameters(c)
    assert scaling.weight_bytes(c, 16) == 2 * counts["total"]
    without = counts["total"] - counts["per_layer_embedding_table"]
    assert scaling.weight_bytes(c, 4, per_layer_table=False) == without // 2


def test_kv_bytes_match_the_book_accounting():
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
    save_pretrained(model, tmp_path)
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


def test_sharing_saving_against_double_wide_mlps():
    e2b = Gemma4Config.from_preset("e2b")
    narrow = e2b.replace(use_double_wide_mlp=False)
    extra = count_parameters(e2b)["total"] - count_parameters(narrow)["total"]
    assert scaling.double_wide_bytes(e2b) == 2 * extra
    assert scaling.double_wide_bytes(e2b, 4) == extra // 2
    assert scaling.double_wide_bytes(Gemma4Config.from_preset("e4b")) == 0
    plain = scaling.kv_without_sharing(e2b)
    saved = scaling.kv_bytes(plain, 32_768) - scaling.kv_bytes(e2b, 32_768)
    assert scaling.kv_saved_bytes(e2b, 32_768) == saved
    # bf16 weights against a bf16 cache: the saving catches up only past
    # E2B's own 128K context; int4 weights against an int8 cache, sooner
    n = scaling.sharing_break_even(e2b)
    cost = scaling.double_wide_bytes(e2b)
    assert scaling.kv_saved_bytes(e2b, n) >= cost
    assert scaling.kv_saved_bytes(e2b, n - 1) < cost
    assert n > e2b.max_position_embeddings
    assert scaling.sharing_break_even(e2b, 4, 8) < e2b.max_position_embeddings
    assert scaling.sharing_break_even(Gemma4Config.from_preset("e4b")) is None
