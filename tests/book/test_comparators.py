"""Tests for gemma4_lite.book.comparators (chapter "Key takeaways").

Totals are pinned to the meta-device counts; active parameters and memory
per sequence are re-derived by hand for each family; the memory formulas are
checked against the bytes transformers' own caches hold after a forward pass
on tiny random models of each family (prompts longer than the windows and
compression rates, then a few decode steps).
"""

from __future__ import annotations

import torch

from gemma4_lite.book import accounting, lineage
from gemma4_lite.book import comparators as C
from gemma4_lite.config import Gemma4Config

BF16, F32 = 2, 4


# ------------------------------------------------------------ configs


def test_flash_schedule_is_the_released_one():
    kinds = C.deepseek_v4_flash_config().layer_types
    assert len(kinds) == 43
    assert kinds[:2] == ["sliding_attention"] * 2
    assert all(k == "compressed_sparse_attention" for k in kinds[2::2])
    assert all(k == "heavily_compressed_attention" for k in kinds[3::2])
    assert kinds.count("compressed_sparse_attention") == 21
    assert kinds.count("heavily_compressed_attention") == 20


def test_pro_schedule_differs_from_transformers_default():
    from transformers import DeepseekV4Config

    pro = C.deepseek_v4_pro_config().layer_types
    assert pro.count("compressed_sparse_attention") == 30
    assert pro.count("heavily_compressed_attention") == 31
    assert pro[2] == "compressed_sparse_attention"
    default = DeepseekV4Config(num_hidden_layers=61).layer_types
    assert default[2] == "heavily_compressed_attention"
    assert default.count("compressed_sparse_attention") == 29


def test_qwen3_next_release_values():
    c = C.qwen3_next_config()
    assert c.layer_types.count("full_attention") == 12
    assert c.layer_types[3::4] == ["full_attention"] * 12
    assert c.rope_parameters["rope_theta"] == 1e7
    assert c.rope_parameters["partial_rotary_factor"] == 0.25
    assert c.max_position_embeddings == 262_144


def test_gemma3_27b_matches_lineage():
    c = C.gemma3_27b_config()
    model = lineage.LINEAGE["Gemma 3 27B"]
    assert tuple(c.layer_types) == model.layer_types
    for n in C.CONTEXTS[:2]:
        assert C.gemma3_memory(c, n)["total"] == lineage.kv_cache_bytes(
            model, n
        )


# ------------------------------------------------------- parameters


def test_meta_totals_are_stable():
    assert C.counted("DeepSeek-V4-Flash")["total"] == 284_332_230_231
    assert C.counted("Qwen3-Next-80B-A3B")["total"] == 79_674_391_296
    # Gemma 3 27B by hand: q, k, v, o; q/k norms; GeGLU MLP; four norms
    h = 5376
    layer = 2 * h * 32 * 128 + 2 * h * 16 * 128 + 2 * 128
    layer += 3 * h * 21_504 + 4 * h
    gemma3 = 262_208 * h + 62 * layer + h
    assert C.counted("Gemma 3 27B")["total"] == gemma3 == 27_009_346_304
    assert (
        C.counted("Gemma 4 31B")["total"]
        == accounting.count_parameters(Gemma4Config.from_preset("31b"))[
            "total"
        ]
    )


def test_active_parameters_deepseek_by_hand():
    got = C.counted("DeepSeek-V4-Flash")
    routed = 43 * 256 * 3 * 2048 * 4096
    assert got["routed_experts"] == routed
    assert got["shared_experts"] == 43 * 3 * 2048 * 4096
    assert got["embedding"] == got["head"] == 129_280 * 4096
    assert got["active"] == got["total"] - routed // 256 * 250
    assert got["active_without_table_and_head"] == (
        got["active"] - 2 * 129_280 * 4096
    )


def test_active_parameters_qwen_by_hand():
    got = C.counted("Qwen3-Next-80B-A3B")
    routed = 48 * 512 * 3 * 512 * 2048
    assert got["routed_experts"] == routed
    # shared expert (3 x 512 x 2048) and its 1 x 2048 sigmoid gate
    assert got["shared_experts"] == 48 * (3 * 512 * 2048 + 2048)
    assert got["router"] == 48 * 512 * 2048
    assert got["active"] == got["total"] - routed // 512 * 502


def test_active_parameters_gemma4_by_hand():
    got = C.counted("Gemma 4 26B-A4B")
    c = accounting.count_parameters(Gemma4Config.from_preset("26b-a4b"))
    experts = 30 * 128 * 3 * 704 * 2816
    assert c["experts"] == experts
    assert got["active"] == c["total"] - experts // 128 * 120
    assert round(got["active"] / 1e9, 1) == 3.8


def test_active_parameters_function():
    groups = {"total": 1000, "routed_experts": 800, "embedding": 50,
              "head": 50}  # fmt: skip
    got = C.active_parameters(groups, num_experts=8, top_k=2)
    assert got == {
        "active": 400,
        "active_without_table": 350,
        "active_without_table_and_head": 300,
    }


def test_dense_models_are_fully_active():
    assert (
        C.counted("Gemma 3 27B")["active"] == C.counted("Gemma 3 27B")["total"]
    )
    assert C.moe_shape(C.by_name("Gemma 4 31B"))[0] == 0


# ------------------------------------------------- memory by hand


def test_qwen3_next_memory_by_hand():
    got = C.qwen3_next_memory(C.qwen3_next_config(), 131_072)
    assert got["kv"] == 12 * 131_072 * 2 * 2 * 256 * BF16
    conv = 36 * (2 * 16 * 128 + 32 * 128) * 4 * BF16
    recurrent = 36 * 32 * 128 * 128 * F32
    assert got["state"] == conv + recurrent
    assert got["total"] == 3 * 2**30 + conv + recurrent


def test_deepseek_v4_memory_by_hand():
    got = C.deepseek_v4_memory(C.deepseek_v4_flash_config(), 2**20)
    assert got["window"] == 43 * 128 * 512 * BF16
    assert got["compressed"] == (21 * 2**18 + 20 * 2**13) * 512 * BF16
    assert got["indexer"] == 21 * 2**18 * 128 * BF16
    # no window open at 1M; the CSA overlap carry of 4 x (512 + 128) kv+gate
    assert got["state"] == 21 * 2 * 4 * (512 + 128) * BF16
    assert round(got["total"] / C.GIB, 2) == 6.72


def test_deepseek_published_ratio_to_v32():
    pro = C.deepseek_v4_memory(C.deepseek_v4_pro_config(), 2**20)["total"]
    v32 = C.deepseek_v32_memory(2**20)
    assert v32 == 61 * 2**20 * 704 * BF16
    # DeepSeek's model card: "10% of KV cache" at 1M; bf16 accounting: 11.5%
    assert 0.11 < pro / v32 < 0.12


def test_gemma_memory_by_hand():
    c = C.gemma3_27b_config()
    got = C.gemma3_memory(c, 131_072)
    row = 2 * 16 * 128 * BF16
    assert got["total"] == 52 * 1024 * row + 10 * 131_072 * row
    g4 = Gemma4Config.from_preset("31b")
    assert C.gemma4_memory(g4, 262_144)["total"] == accounting.kv_cache_bytes(
        g4, 262_144
    )


def test_memory_rows_respect_context():
    rows = {r[0]: r[1:] for r in C.memory_rows()}
    assert rows["Gemma 4 E2B"][2] is None  # 256K beyond its 128K
    assert rows["Gemma 4 31B"][3] is None
    assert rows["DeepSeek-V4-Flash"][3] == 6.724


# ---------------------------------- memory against transformers' caches


def _run(model: torch.nn.Module, prompt: int, steps: int, vocab: int):
    torch.manual_seed(0)
    ids = torch.randint(0, vocab, (1, prompt))
    with torch.no_grad():
        out = model(ids, use_cache=True)
        cache = out.past_key_values
        sizes = [C.transformers_cache_bytes(cache)]
        for _ in range(steps):
            nxt = out.logits[:, -1:].argmax(-1)
            out = model(nxt, cache=cache, use_cache=True)
            sizes.append(C.transformers_cache_bytes(cache))
    return sizes


def _tiny(cls, config):
    torch.manual_seed(0)
    return cls(config).to(torch.bfloat16).eval()


def test_deepseek_v4_memory_matches_transformers_cache():
    from transformers import DeepseekV4ForCausalLM

    config = C.deepseek_v4_flash_config(
        vocab_size=64, hidden_size=32, moe_intermediate_size=16,
        num_hidden_layers=4, num_attention_heads=2, head_dim=16,
        q_lora_rank=16, n_routed_experts=4, num_experts_per_tok=2,
        compress_ratios=[0, 0, 4, 128], num_hash_layers=1, sliding_window=8,
        o_groups=2, o_lora_rank=8, index_n_heads=2, index_head_dim=8,
        index_topk=4, hc_mult=2,
        compress_rates={"compressed_sparse_attention": 4,
                        "heavily_compressed_attention": 16},
    )  # fmt: skip
    model = _tiny(DeepseekV4ForCausalLM, config)
    sizes = _run(model, prompt=37, steps=4, vocab=64)
    # The two window-only layers use transformers' plain sliding layer,
    # which stores the one K=V tensor twice (keys and values); the model's
    # own layout, and the formula, keep it once.
    duplicate = 2 * 7 * 16 * BF16
    for step, held in enumerate(sizes):
        want = C.deepseek_v4_memory(
            config, 37 + step, torch.bfloat16, window_tokens=7
        )
        assert held == want["total"] + duplicate, f"after {37 + step}"


def test_qwen3_next_memory_matches_transformers_cache():
    from transformers import Qwen3NextForCausalLM

    config = C.qwen3_next_config(
        vocab_size=64, hidden_size=32, num_hidden_layers=4,
        num_attention_heads=2, num_key_value_heads=1, head_dim=8,
        linear_key_head_dim=8, linear_value_head_dim=8,
        linear_num_key_heads=2, linear_num_value_heads=4, num_experts=4,
        num_experts_per_tok=2, moe_intermediate_size=8,
        shared_expert_intermediate_size=8,
    )  # fmt: skip
    model = _tiny(Qwen3NextForCausalLM, config)
    sizes = _run(model, prompt=21, steps=2, vocab=64)
    for step, held in enumerate(sizes):
        want = C.qwen3_next_memory(config, 21 + step, torch.bfloat16)
        assert held == want["total"], f"after {21 + step} tokens"


def test_gemma3_memory_matches_transformers_cache():
    from transformers import Gemma3ForCausalLM

    config = C.gemma3_27b_config(
        vocab_size=64, hidden_size=32, intermediate_size=64,
        num_hidden_layers=7, num_attention_heads=4, num_key_value_heads=2,
        head_dim=8, query_pre_attn_scalar=8, sliding_window=8,
    )  # fmt: skip
    model = _tiny(Gemma3ForCausalLM, config)
    sizes = _run(model, prompt=19, steps=2, vocab=64)
    for step, held in enumerate(sizes):
        want = C.gemma3_memory(config, 19 + step, window_tokens=7)
        assert held == want["total"], f"after {19 + step} tokens"


def test_design_rows_read_the_configs():
    rows = {r[0]: r for r in C.design_rows()}
    assert "25% of pairs, base 1e+06" in rows["Gemma 4 31B"][2]
    assert "linear x8" in rows["Gemma 3 27B"][2]
    assert "25% of dims, base 1e+07" in rows["Qwen3-Next-80B-A3B"][2]
    flash = rows["DeepSeek-V4-Flash"]
    assert "64 of 512" in flash[2] and "yarn x16" in flash[2]
    assert "21 CSA" in flash[1] and "20 HCA" in flash[1]
    assert flash[5] == 1_048_576
    assert "=1" in flash[4]


def test_moe_rows():
    rows = {r[0]: r[1:] for r in C.moe_rows()}
    assert set(rows) == {
        "Gemma 4 26B-A4B", "Qwen3-Next-80B-A3B", "DeepSeek-V4-Flash"
    }  # fmt: skip
    assert rows["Gemma 4 26B-A4B"] == [128, 8, 0, 704, 2816, 0.25, 2112,
                                       8 * 704 + 2112]  # fmt: skip
    assert rows["Qwen3-Next-80B-A3B"] == [512, 10, 1, 512, 2048, 0.25, 512,
                                          11 * 512]  # fmt: skip
    assert rows["DeepSeek-V4-Flash"] == [256, 6, 1, 2048, 4096, 0.5, 2048,
                                         7 * 2048]  # fmt: skip


# ------------------------------------------- per layer (chapter's widget)


def test_layer_memory_sums_to_memory_for_every_model():
    for row in C.comparators():
        for n in (100, 1000, 4096 + 3, 131_072):
            layers = C.layer_memory(row, n)
            assert len(layers) == len(C.layer_kinds(row))
            assert sum(layers) == C.memory(row, n)["total"], (row.name, n)


def test_layer_memory_by_hand():
    flash = C.by_name("DeepSeek-V4-Flash")
    kinds = C.layer_kinds(flash)
    assert kinds[:2] == ["window_only"] * 2
    layers = C.layer_memory(flash, 2**20)
    assert layers[0] == 128 * 512 * BF16
    # CSA: window, 2^18 entries of 512 and of 128 (indexer), the carry
    csa = (128 * 512 + 2**18 * (512 + 128) + 2 * 4 * (512 + 128)) * BF16
    assert layers[2] == csa
    assert layers[3] == (128 * 512 + 2**13 * 512) * BF16
    qwen = C.by_name("Qwen3-Next-80B-A3B")
    q = C.layer_memory(qwen, 1000)
    assert q[3] == 1000 * 2 * 2 * 256 * BF16  # a full-attention layer
    assert q[0] == q[1] == q[2]  # DeltaNet layers: the same fixed state
    assert q[0] == C.layer_memory(qwen, 7)[0]
    e2b = C.by_name("Gemma 4 E2B")
    assert C.layer_kinds(e2b).count("shared") == 20
    assert C.layer_kinds(C.by_name("Gemma 3 27B")).count("global") == 10


def test_kib_per_token():
    row = C.by_name("Gemma 3 27B")
    want = C.gemma3_memory(row.config, 131_072)["total"] / 131_072 / 1024
    assert C.kib_per_token(row, 131_072) == want
    assert round(C.kib_per_token(row, 131_072), 2) == 83.25
