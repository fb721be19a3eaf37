"""The chapter "Multi-token prediction": derived drafter configs, the
round-by-round trace of the speculative loop (against plain greedy decoding
and against transformers' assisted generation), acceptance statistics, the
verify-pass roofline and the exercise answers."""

import matplotlib
import pytest
import torch

from gemma4_lite import Gemma4Config, Gemma4ForCausalLM, generate
from gemma4_lite.book import cost_model as cm
from gemma4_lite.book import speculative as sp
from gemma4_lite.book.answers import ch12
from gemma4_lite.book.exercises import check

matplotlib.use("Agg")


def tiny_pair(name="dense-tiny", seed=0, **options):
    torch.manual_seed(seed)
    target = Gemma4ForCausalLM(Gemma4Config.from_preset(name)).eval()
    drafter = sp.untrained_drafter(
        target.config, seed, hidden_size=32, intermediate_size=64, **options
    )
    return target, drafter


def test_drafter_config_keeps_what_meets_the_target():
    target = Gemma4Config.from_preset("31b-tiny")
    text = sp.drafter_text_config(target, hidden_size=32)
    assert text.layer_types == sp.DRAFTER_LAYERS
    for i, j in ((0, 0), (5, 3)):  # a sliding and a global layer each
        assert text.head_dim_for(j) == target.head_dim_for(i)
        assert text.kv_heads_for(j) == target.kv_heads_for(i)
    assert text.hidden_size == 32 and not text.enable_moe_block
    drafter = sp.untrained_drafter(target, hidden_size=32)
    assert drafter.config.backbone_hidden_size == target.hidden_size


@pytest.mark.parametrize("k", [1, 3])
def test_trace_is_plain_greedy_split_into_rounds(k):
    target, drafter = tiny_pair(ordered=True)
    ids = torch.randint(
        3, 500, (1, 9), generator=torch.Generator().manual_seed(0)
    )
    trace = sp.trace_rounds(target, drafter, ids, 30, k, ignore_eos=True)
    plain = generate(target, ids, 30, ignore_eos=True)[0, 9:].tolist()
    assert trace.tokens == plain
    assert all(r.complete for r in trace.rounds[:20])
    for r in trace.rounds:
        # the length budget caps the last rounds' drafts
        assert r.complete == (
            len(r.drafted) == k and r is not trace.rounds[-1]
        )
        if not r.complete:  # may hold the budget's last, undrafted round
            continue
        assert r.emitted[: r.accepted] == r.drafted[: r.accepted]
        if not r.bonus:  # the target's token replaced a rejected draft
            assert r.emitted[-1] != r.drafted[r.accepted]
    assert not trace.rounds[-1].complete


@pytest.mark.parametrize(
    "name, options",
    [
        ("e2b-tiny", dict(ordered=True)),
        ("31b-tiny", {}),
    ],
)
def test_trace_matches_transformers_round_by_round(name, options, tmp_path):
    from gemma4_lite import Gemma4AssistantForCausalLM
    from gemma4_lite.book.debugger import reference_from_preset

    config = Gemma4Config.from_preset(name)
    reference = reference_from_preset(name, seed=0)
    drafter = sp.reference_drafter(
        config, seed=1, hidden_size=32, intermediate_size=64, **options
    )
    reference.save_pretrained(tmp_path / "target")
    drafter.save_pretrained(tmp_path / "drafter")
    ours = Gemma4ForCausalLM.from_pretrained(tmp_path / "target")
    mine = Gemma4AssistantForCausalLM.from_pretrained(tmp_path / "drafter")
    ids = torch.randint(
        3, 500, (1, 7), generator=torch.Generator().manual_seed(2)
    )
    theirs = sp.reference_trace(reference, drafter, ids, 24, 3)
    got = sp.trace_rounds(ours, mine, ids, 24, 3, ignore_eos=True)
    assert got.tokens == theirs.tokens
    assert [(r.drafted, r.emitted) for r in got.rounds[:-1]] == [
        (r.drafted, r.emitted) for r in theirs.rounds[:-1]
    ]
    assert len(got.rounds) >= 8


def test_acceptance_counts_positions_and_tokens():
    rounds = [
        sp.Round([5, 6, 7], [5, 6, 7, 8]),  # all kept, a bonus
        sp.Round([5, 6, 7], [5, 9]),  # first kept
        sp.Round([5, 6, 7], [4]),  # none kept
        sp.Round([5, 6], [5, 6, 1], complete=False),  # cut by the budget
    ]
    stats = sp.acceptance([sp.Trace(0, rounds)], 3)
    assert stats["rounds"] == 3
    assert stats["per_position"] == pytest.approx([2 / 3, 1 / 3, 1 / 3])
    assert stats["tokens_per_pass"] == pytest.approx(7 / 3)
    assert rounds[0].bonus and not rounds[1].bonus


def test_verify_pass_on_the_roofline():
    hw = cm.HARDWARE["H100"]
    for name in ("26b-a4b", "31b"):
        config = Gemma4Config.from_preset(name)
        plain = cm.decode_roofline(config, hw, 1, 4096).seconds
        assert sp.verify_seconds(config, hw, 0) == pytest.approx(plain)
    dense = Gemma4Config.from_preset("31b")
    # memory-bound: a few more tokens read the same bytes
    assert sp.verify_seconds(dense, hw, 4) == pytest.approx(
        sp.verify_seconds(dense, hw, 0)
    )
    moe = Gemma4Config.from_preset("26b-a4b")
    ratio = sp.verify_seconds(moe, hw, 4) / sp.verify_seconds(moe, hw, 0)
    assert 2.0 < ratio < 2.5  # about 35 of 128 experts instead of 8


def test_answers():
    assert check("12.1", 2.53).endswith("correct.")
    assert "not quite" in check("12.1", 3.0)  # 1 + 3 * 0.7: not a chain
    assert check("12.2", 3.18).endswith("correct.")
    assert check("12.3", 2).endswith("correct.")
    # the package's W + k slots lose nothing, even after a full rejection
    assert ch12.ring_keys_lost(slots=132, accepted=0) == 0
    assert ch12.ring_keys_lost(slots=128, accepted=0) == 3


def test_figures_fit_the_column():
    from gemma4_lite.book.plots import speculative as plots

    target, drafter = tiny_pair()
    figures = [
        plots.plot_drafter(target.config, drafter.config.text_config),
        plots.plot_rounds(
            [sp.Round([5, 6, 7], [5, 9]), sp.Round([1, 2, 3], [1, 2, 3, 4])],
            str,
            3,
        ),
        plots.plot_acceptance(
            {
                2: {"per_position": [0.6, 0.3], "tokens_per_pass": 1.9},
                3: {"per_position": [0.6, 0.3, 0.1], "tokens_per_pass": 2.0},
            }
        ),
        plots.acceptance_panel(
            {
                "k": 2,
                "per_position": [0.6, 0.3],
                "tokens_per_pass": 1.9,
                "rounds": 10,
            },
            0.7,
        ),
        plots.plot_speedup({"measured": [(1, 1.1), (3, 1.3)]}),
    ]
    for fig in figures:
        assert fig.get_figwidth() <= 6.75
        matplotlib.pyplot.close(fig)


@pytest.mark.parametrize("name", sorted(sp.RELEASED_DRAFTERS))
def test_released_drafter_sizes_match_transformers(name):
    """Counted on the meta device, ours and transformers' from the same
    config.json (the tied head once); the E2B's and 31B's are the sizes
    of the released checkpoints (77,731,328 and 469,518,592)."""
    from transformers import (
        Gemma4AssistantConfig,
        Gemma4AssistantForCausalLM,
        Gemma4TextConfig,
    )

    target = Gemma4Config.from_preset(name)
    options = sp.RELEASED_DRAFTERS[name]
    values = sp.drafter_hf_dict(target, **options)
    text = Gemma4TextConfig(**values.pop("text_config"))
    values.pop("model_type")
    with torch.device("meta"):
        reference = Gemma4AssistantForCausalLM(
            Gemma4AssistantConfig(text_config=text, **values)
        )
    theirs = sum(p.numel() for p in reference.parameters())
    ours = sp.drafter_parameters(target, **options)
    assert ours == theirs
    assert ours == {"e2b": 77_731_328, "31b": 469_518_592}[name]


def test_trace_of_the_trained_drafter_keeps_drafts():
    """The shipped pair accepts drafts, so the trace's bookkeeping of kept
    drafts, corrections and bonus tokens is exercised, and the tokens are
    still plain greedy's."""
    from pathlib import Path

    from gemma4_lite import Gemma4AssistantForCausalLM, Tokenizer

    root = Path(__file__).resolve().parents[2] / "checkpoints"
    if not (root / "shakespeare-dense-assistant").is_dir():
        pytest.skip("the trained drafter is not in this checkout")
    target = Gemma4ForCausalLM.from_pretrained(
        root / "shakespeare-dense", dtype=torch.float32
    )
    drafter = Gemma4AssistantForCausalLM.from_pretrained(
        root / "shakespeare-dense-assistant", dtype=torch.float32
    )
    tok = Tokenizer.from_pretrained(root / "shakespeare-dense")
    traces = []
    for text in (
        "VIOLA.\nWhat country, friends, is this?\n",
        "MIRANDA.\nIf by your art, my dearest father, you have\n",
    ):
        ids = torch.tensor([tok.encode(text)])
        trace = sp.trace_rounds(target, drafter, ids, 48, 3, ignore_eos=True)
        plain = generate(target, ids, 48, ignore_eos=True)[0, ids.shape[1] :]
        assert trace.tokens == plain.tolist()
        traces.append(trace)
    complete = [r for t in traces for r in t.rounds if r.complete]
    assert any(r.bonus for r in complete)
    assert any(0 < r.accepted < 3 for r in complete)
    assert any(r.accepted == 0 for r in complete)
    for r in complete:
        assert r.emitted[: r.accepted] == r.drafted[: r.accepted]
        if not r.bonus:
            assert r.emitted[-1] != r.drafted[r.accepted]
    stats = sp.acceptance(traces, 3)
    rates = stats["per_position"]
    assert rates == sorted(rates, reverse=True)  # a kept draft needs the last
    assert stats["tokens_per_pass"] == pytest.approx(1 + sum(rates))
