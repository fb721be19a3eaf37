"""Tests for gemma4_lite.book.experiments (chapter "Key takeaways"): the
runner end to end on a two-step run over a small synthetic corpus, and the
pieces that decide its numbers (the variants, the QK-norm removal, spike
counting, the summary)."""

from __future__ import annotations

import json

import pytest
import torch

from gemma4_lite.book import data
from gemma4_lite.book import experiments as E
from gemma4_lite.book.accounting import count_parameters, kv_cache_bytes
from gemma4_lite.config import FULL, SLIDING


@pytest.fixture(scope="module")
def corpus() -> data.Corpus:
    gen = torch.Generator().manual_seed(0)
    train = torch.randint(0, 4096, (20_000,), generator=gen)
    valid = torch.randint(0, 4096, (4096,), generator=gen)
    return data.Corpus(train, valid, torch.ones(4096, dtype=torch.long),
                       20_000, 4096)  # fmt: skip


def tiny_settings(**changes) -> E.Settings:
    values = dict(steps=2, seeds=1, batch_size=2, seq_len=64,
                  valid_tokens=1024, threads=1)  # fmt: skip
    values.update(changes)
    return E.Settings(**values)


def test_variants_vary_one_thing():
    base = E.VARIANTS["base"].config()
    assert base.layer_types == [SLIDING] * 5 + [FULL]
    assert E.VARIANTS["global"].config().layer_types == [FULL] * 6
    assert E.VARIANTS["w32"].config().sliding_window == 32
    same = count_parameters(base)["total"]
    for name in ("global", "w32", "qk_off", "qk_on_high", "qk_off_high"):
        assert count_parameters(E.VARIANTS[name].config())["total"] == same
    # K=V drops the global layer's v_proj: 128 x 1 KV head x 64
    kv = count_parameters(E.VARIANTS["kv"].config())["total"]
    assert same - kv == 128 * 64
    # the MoE's active MLP equals the dense one: 128 + 2 x 64 = 256
    moe = count_parameters(E.VARIANTS["moe"].config())
    assert moe["total"] > same
    dense_mlp = 6 * 3 * 128 * 256
    moe_active_mlp = 6 * 3 * 128 * (128 + 2 * 64)
    assert dense_mlp == moe_active_mlp
    assert moe["active_per_token"] - same == moe["router"] + 6 * 3 * 128


def test_kv_bytes_of_the_hybrid_variants():
    base = E.VARIANTS["base"].config()
    row = 2 * 64 * 2  # K and V, one head of 64, bf16
    assert kv_cache_bytes(base, 256) == (5 * 64 + 256) * row
    assert kv_cache_bytes(E.VARIANTS["global"].config(), 256) == 6 * 256 * row


def test_remove_qk_norm_scales_the_query():
    model = E.train.build_model(
        E.train.TrainArgs(seed=0), E.VARIANTS["base"].config()
    )
    E.remove_qk_norm(model)
    attn = model.model.layers[0].self_attn
    assert isinstance(attn.q_norm, E.ScaledQuery)
    assert isinstance(attn.k_norm, torch.nn.Identity)
    x = torch.ones(3, 64)
    assert torch.allclose(attn.q_norm(x), x / 8)


def test_count_spikes():
    flat = [3.0] * 30
    assert E.count_spikes(flat, skip=0) == 0
    jumped = flat[:25] + [3.6] + flat[26:]
    assert E.count_spikes(jumped, skip=0) == 1
    assert E.count_spikes(jumped, skip=26) == 0
    assert E.count_spikes(flat[:25] + [3.4] + flat[26:], skip=0) == 0


def test_two_step_run_writes_json(corpus, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(E, "load_corpus", lambda data_dir: corpus)
    out = tmp_path / "experiments.json"
    result = E.main(["--steps", "2", "--seeds", "2", "--only", "kv",
                     "--threads", "1", "--valid-tokens", "1024",
                     "--batch-size", "2", "--seq-len", "64",
                     "--out", str(out)])  # fmt: skip
    assert json.loads(out.read_text()) == result
    runs = result["runs"]
    assert set(runs) == {"base", "kv"}
    assert set(runs["base"]) == {"0", "1"}
    first = runs["base"]["0"]
    assert first["steps_done"] == 2 and not first["diverged"]
    assert 7.0 < first["valid_loss"] < 9.5  # about ln 4096 = 8.3 at start
    summary = result["summary"]["kv"]["variants"]
    assert summary["base"]["valid_loss_minus_reference"]["mean"] == 0.0
    assert summary["kv"]["valid_loss"]["n"] == 2
    # random tokens cannot be predicted better than uniformly (ln 4096)
    worse = [r["valid_loss"] > r["uniform_loss"] for r in runs["kv"].values()]
    assert summary["kv"]["failed"] == sum(worse)
    assert summary["kv"]["spikes"] == 0
    assert summary["kv"]["parameters"] < summary["base"]["parameters"]
    err = capsys.readouterr().err
    assert "run 4/4: kv" in err and "wrote" in err


def test_same_seed_same_run(corpus):
    settings = tiny_settings(seq_len=32)
    a = E.run(E.VARIANTS["base"], 0, settings, corpus)
    b = E.run(E.VARIANTS["base"], 0, settings, corpus)
    c = E.run(E.VARIANTS["base"], 1, settings, corpus)
    assert a["train_loss"] == b["train_loss"]
    assert a["train_loss"] != c["train_loss"]


def test_divergence_is_recorded(corpus, monkeypatch):
    settings = tiny_settings(seq_len=32)
    monkeypatch.setattr(E.train, "lr_at", lambda step, args: float("nan"))
    result = E.run(E.VARIANTS["base"], 0, settings, corpus)
    assert result["diverged"] and result["valid_loss"] is None
    assert result["steps_done"] == 1
    runs = {"base": {"0": result}, "qk_off": {"0": result}}
    assert E.summarise(runs)["qknorm"]["variants"]["qk_off"]["failed"] == 1


def _fake_result(base, other):
    runs = {
        "base": {str(s): {"valid_loss": v} for s, v in enumerate(base)},
        "kv": {str(s): {"valid_loss": v} for s, v in enumerate(other)},
    }
    return {"runs": runs}


def test_paired_differences_skip_unfinished_runs():
    result = _fake_result([4.0, 4.1, 4.2], [4.5, None, 4.1])
    diffs = E.paired_differences(result, "kv", "base")
    assert diffs == pytest.approx([0.5, -0.1])


def test_measurable_needs_sign_and_size():
    # every seed lower by about 0.1, spread of each variant 0.05
    lower = _fake_result([4.0, 4.05, 4.1], [3.9, 3.95, 4.0])
    assert E.measurable(lower, "kv", "base")
    assert E.describe_difference(lower, "kv", "base").startswith(
        "lower by 0.100 ± 0.000"
    )
    # same mean shift but smaller than the spread over seeds (0.5)
    noisy = _fake_result([4.0, 4.5, 5.0], [3.9, 4.4, 4.9])
    assert not E.measurable(noisy, "kv", "base")
    # large mean, signs disagree
    mixed = _fake_result([4.0, 4.0, 4.0], [4.9, 3.9, 4.9])
    assert not E.measurable(mixed, "kv", "base")
    assert (
        E.describe_difference(mixed, "kv", "base")
        == "no measurable difference"
    )


def test_mean_std():
    assert E.mean_std([1.0, 2.0, 3.0]) == "2.000 ± 1.000"
    assert E.mean_std([None, None]) == "-"
    assert E.mean_std([1.0, None], digits=1) == "1.0 ± 0.0"
