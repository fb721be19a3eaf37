"""The layer-by-layer debugger of the chapter "The full model"."""

import copy

import pytest
import torch

from gemma4_lite import Gemma4Config, Gemma4ForCausalLM, generate
from gemma4_lite.book.accounting import kv_cache_bytes
from gemma4_lite.book.answers.ch11 import (
    ANSWERS,
    chat_prompt,
    validate_chat,
    validate_mystery,
)
from gemma4_lite.book.debugger import (
    agreeing_prefix,
    compare_decoding,
    compare_layers,
    first_split,
    planted_bug,
    sampling_distribution,
    stage_modules,
    trace_prompt,
    trace_table,
)
from gemma4_lite.generation import filter_logits


def _model(name, seed=0):
    torch.manual_seed(seed)
    return Gemma4ForCausalLM(Gemma4Config.from_preset(name)).eval()


def _ids(config, length=20, seed=1):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(3, config.vocab_size, (1, length), generator=gen)


def test_stages_follow_the_family():
    assert list(stage_modules(Gemma4Config.from_preset("e2b-tiny"))) == [
        "attention", "MLP", "per-layer input", "output",
    ]  # fmt: skip
    assert list(stage_modules(Gemma4Config.from_preset("26b-a4b-tiny"))) == [
        "attention", "MLP", "MoE", "output",
    ]  # fmt: skip


@pytest.mark.parametrize(
    "name, bug, expected",
    [
        ("e2b-tiny", "gemma3_norm", (0, "attention")),
        ("e2b-tiny", "contiguous_rope", (4, "attention")),
        ("e4b-tiny", "contiguous_rope", (5, "attention")),
        ("e2b-tiny", "mystery", (6, "attention")),
        ("e4b-tiny", "mystery", (8, "attention")),
        ("e2b-tiny", "rope_one_percent", (4, "attention")),
        ("31b-tiny", "rope_one_percent", (5, "attention")),
        # after the last layer: the final norm, then the head
        ("e2b-tiny", "final_norm", (10, "final norm")),
        ("26b-a4b-tiny", "final_norm", (6, "final norm")),
        ("e2b-tiny", "no_softcap", (10, "logits")),
        ("12b-tiny", "no_softcap", (12, "logits")),
    ],
)
def test_planted_bugs_show_where_they_are_and_are_undone(name, bug, expected):
    model = _model(name)
    clean = copy.deepcopy(model)
    ids = _ids(model.config)
    assert compare_layers(model, clean, ids).first_divergence() is None
    with planted_bug(model, bug):
        report = compare_layers(model, clean, ids)
    assert report.first_divergence() == expected
    assert report.logits > 0
    layer = min(expected[0], model.config.num_hidden_layers)
    relative = report.per_layer(relative=True)
    assert relative[:layer] == [0.0] * layer
    if expected[0] < model.config.num_hidden_layers:
        assert relative[layer] > 0
    assert compare_layers(model, clean, ids).first_divergence() is None
    with pytest.raises(RuntimeError):  # undone even when the block raises
        with planted_bug(model, bug):
            raise RuntimeError
    assert torch.equal(model(ids), clean(ids))


def test_bugs_that_need_a_feature_refuse_models_without_it():
    with pytest.raises(ValueError):
        with planted_bug(_model("31b-tiny"), "mystery"):
            pass
    with pytest.raises(KeyError):
        with planted_bug(_model("31b-tiny"), "no such bug"):
            pass


def test_the_table_lists_every_layer():
    model = _model("26b-a4b-tiny")
    text = compare_layers(model, copy.deepcopy(model), _ids(model.config))
    lines = text.table().splitlines()
    # header, embedding, layers, final norm, head
    assert len(lines) == model.config.num_hidden_layers + 4
    assert all(len(line) <= 79 for line in lines)
    header, rows = text.rows()
    assert len(rows) == len(lines) - 1
    assert all(len(row) == len(header) for row in rows)
    assert rows[-2][:2] == ["norm", "final"] and rows[-1][0] == "head"


def test_transformers_matches_bit_for_bit_and_sdpa_nearly(tmp_path):
    pytest.importorskip("transformers")
    from gemma4_lite.book.debugger import (
        load_reference,
        reference_from_preset,
    )

    for name in ("e2b-tiny", "26b-a4b-tiny"):
        reference_from_preset(name, seed=3).save_pretrained(tmp_path / name)
        ours = Gemma4ForCausalLM.from_pretrained(tmp_path / name)
        reference = load_reference(tmp_path / name)
        ids = _ids(ours.config)
        report = compare_layers(ours, reference, ids)
        # transformers' expert path is not reproducible to the bit between
        # two of its own instances with equal weights (about 1e-6)
        tolerance = 1e-4 if ours.config.enable_moe_block else 0.0
        assert report.first_divergence(tolerance) is None
        ours.set_attn_implementation("sdpa")
        report = compare_layers(ours, reference, ids)
        assert 0 < report.logits < 1e-3


@pytest.mark.parametrize("name", ["e2b-tiny", "26b-a4b-tiny", "31b-tiny"])
def test_the_decode_check_sees_what_one_forward_pass_cannot(name):
    """A ring buffer written one slot too far leaves every uncached stage
    equal, and greedy decoding wrong; the cached-vs-uncached check finds it
    at the first decode step, and passes the correct cache."""
    model = _model(name)
    clean = copy.deepcopy(model)
    ids = _ids(model.config, length=12)
    report = compare_decoding(model, ids, 12)
    assert report.first_divergence() is None
    assert all(report.same_token) and 0 < max(report.relative) < 1e-4
    with planted_bug(model, "ring_off_by_one"):
        assert compare_layers(model, clean, ids).first_divergence() is None
        broken = compare_decoding(model, ids, 12)
        tokens = generate(model, ids, 12, ignore_eos=True)
    assert broken.first_divergence() == 1  # the first step through the ring
    assert broken.relative[0] < 1e-4  # prefill is untouched
    assert not torch.equal(tokens, generate(clean, ids, 12, ignore_eos=True))
    assert compare_decoding(model, ids, 12).first_divergence() is None


def test_trace_bytes_add_up_to_the_accounting():
    for name in ("e2b-tiny", "12b-tiny", "26b-a4b-tiny"):
        model = _model(name)
        ids = _ids(model.config, length=13)
        rows = trace_prompt(model, ids)
        layers = [r for r in rows if r["layer"] != "head"]
        assert len(layers) == model.config.num_hidden_layers
        total = sum(r["bytes"] for r in layers)
        assert total == kv_cache_bytes(model.config, 13, torch.float32)
        assert rows[-1]["hidden"] == (1, 13, model.config.vocab_size)
        assert all(len(x) <= 79 for x in trace_table(rows).splitlines())


def test_sampling_distribution():
    logits = torch.tensor([2.0, 1.0, 0.5, -1.0])
    assert torch.equal(
        sampling_distribution(logits, 0.0), torch.tensor([1.0, 0, 0, 0])
    )
    probs = sampling_distribution(logits, 1.0, top_k=2)
    assert probs[2:].sum() == 0 and abs(float(probs.sum()) - 1) < 1e-6
    probs = sampling_distribution(logits, 0.7, top_p=0.9)
    kept = ~torch.isinf(filter_logits(logits[None] / 0.7, None, 0.9)[0])
    assert torch.equal(probs > 0, kept)


def test_first_split_and_prefix():
    assert agreeing_prefix(torch.tensor([1, 2, 3]), torch.tensor([1, 2, 4]))
    assert agreeing_prefix(torch.tensor([5]), torch.tensor([6])) == 0
    model = _model("31b-tiny")
    ids = _ids(model.config, length=5)
    assert first_split(model, copy.deepcopy(model), ids, 6) == (6, None)
    other = _model("31b-tiny", seed=1)
    agree, margin = first_split(model, other, ids, 6)
    assert agree < 6 and margin is not None and margin >= 0


def test_chapter_answers():
    location, _ = ANSWERS["11.1"]
    assert location() == (6, "attention")
    assert validate_mystery((6, "attention", "b")) is True
    assert "explanation" in validate_mystery((6, "attention", "a"))
    assert "(layer, sub-block) is not" in validate_mystery((6, "MLP", "b"))
    assert validate_mystery((6, "attention", "B")) is True
    which, _ = ANSWERS["11.2"]
    assert which() == {"mystery_a": "neither", "mystery_b": "decoding"}
    assert validate_chat(chat_prompt) is True
    kept = validate_chat(
        lambda turns: (
            "<bos>"
            + "".join(f"<|turn>{r}\n{t}<turn|>\n" for r, t in turns)
            + "<|turn>model\n"
        )
    )
    assert "conversation 3" in kept  # the thought was not removed
    assert "conversation 1" in validate_chat(lambda turns: "")


def test_figures_draw():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from gemma4_lite.book.plots.debugger import (
        plot_cache_bytes,
        plot_divergence,
        plot_sampling_grid,
        plot_stage_map,
        plot_trace_strips,
    )

    model = _model("e2b-tiny")
    clean = copy.deepcopy(model)
    ids = _ids(model.config)
    with planted_bug(model, "contiguous_rope"):
        bug = compare_layers(model, clean, ids)
    same = compare_layers(model, clean, ids)
    figs = [
        plot_divergence({"bug": bug, "same": same}),
        plot_stage_map({"bug": bug}),
        plot_cache_bytes([1, 2, 3], {"a": [1, 2, 3], "b": [3, 3, 3]}),
        plot_sampling_grid([("t", ["a", "b"], [0.7, 0.0])] * 3),
        plot_trace_strips(
            {"e2b-tiny": model.config},
            {"e2b-tiny": trace_prompt(model, ids)},
        ),
    ]
    for fig in figs:
        assert fig.get_size_inches()[0] <= 6.75
        for text in fig.findobj(matplotlib.text.Text):
            if text.get_text():
                assert text.get_fontsize() >= 8, text.get_text()
        plt.close(fig)
