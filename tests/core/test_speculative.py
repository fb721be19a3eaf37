"""Speculative decoding (``generate(..., assistant=drafter)``): greedy
tokens equal plain greedy tokens for every family, whatever the drafter
proposes; the accepted prefix, the rollback (sliding rings included), EOS
inside a round and the length budget, driven by an oracle drafter whose
acceptance is chosen; drafts and tokens equal transformers' assisted
generation round by round; what the loop refuses."""

import pytest
import torch
from conftest import random_model
from hf_reference import build_hf_model, randomise

from gemma4_lite import (
    Gemma4AssistantForCausalLM,
    Gemma4Config,
    Gemma4ForCausalLM,
    generate,
)
from gemma4_lite.assistant import AssistantConfig
from gemma4_lite.generation import accept_drafts

S, F = "sliding_attention", "full_attention"
PROMPT, NEW = 11, 30  # the tiny presets' window is 8: both cross it


def drafter_for(target, seed=0, repeat=False):
    """A random drafter shaped for ``target`` (its head sizes, KV heads,
    RoPE and window; three sliding layers and a global one)."""
    text = target.config.replace(
        num_hidden_layers=4, layer_types=[S, S, S, F], hidden_size=32,
        intermediate_size=64, num_kv_shared_layers=0,
        hidden_size_per_layer_input=0, enable_moe_block=False,
        use_double_wide_mlp=False,
    )  # fmt: skip
    text.num_kv_shared_layers = 4  # every layer reads the target's K/V
    width = target.config.hidden_size
    torch.manual_seed(seed)
    drafter = Gemma4AssistantForCausalLM(AssistantConfig(text, width))
    randomise(drafter, seed)
    if repeat:
        make_repeater(drafter, target)
    return drafter.eval()


@torch.no_grad()
def make_repeater(drafter, target, seed=5):
    """Weights, not training, that make the drafter propose the newest
    token again and again: it reads only the target's embedding of the
    token (through a random map to its width), its head scores the same map
    of every target embedding, normalised, and its layers barely touch the
    residual. A random tiny target often repeats a token, so rounds accept
    0, some or all drafts. Works on ours and on transformers' drafter."""
    table = target.model.embed_tokens.weight
    width, hidden = table.shape[1], drafter.model.norm.weight.shape[0]
    gen = torch.Generator().manual_seed(seed)
    mix = torch.randn(width, hidden, generator=gen)
    pre = torch.zeros_like(drafter.pre_projection.weight)
    pre[:, :width] = 50 * mix.T / width**0.5
    drafter.pre_projection.weight.copy_(pre)
    rows = table @ mix
    norms = rows.norm(dim=1, keepdim=True).clamp(min=1e-6)
    drafter.model.embed_tokens.weight.copy_(rows / norms)
    for name, p in drafter.named_parameters():
        if name.endswith(("post_attention_layernorm.weight",
                          "post_feedforward_layernorm.weight")):  # fmt: skip
            p.mul_(0.05)
    drafter.model.norm.weight.fill_(1.0)


def prompt(config, seed, length=PROMPT):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(3, config.vocab_size, (1, length), generator=gen)


def recorded(drafter):
    """Wrap ``drafter.draft`` to log (position, drafts) of every round."""
    rounds, draft = [], drafter.draft

    def logged(embed, token, hidden, kv, position, k, *pick):
        tokens, logits = draft(embed, token, hidden, kv, position, k, *pick)
        rounds.append((position, tokens[0].tolist()))
        return tokens, logits

    drafter.draft = logged
    return rounds


def accepted(rounds, length):
    """Drafts accepted per round, from where the next round starts (the
    last round's count from the final length)."""
    starts = [p for p, _ in rounds] + [length - 1]
    return [b - a - 1 for a, b in zip(starts, starts[1:])]


FAMILIES = ["e2b-tiny", "dense-tiny", "26b-a4b-tiny", "12b-tiny"]


@pytest.mark.parametrize("name", FAMILIES)
@pytest.mark.parametrize("seed", [0, 1])
def test_assisted_greedy_equals_plain_greedy(name, seed):
    """Every k, a random drafter (almost nothing accepted) and a repeating
    one (drafts accepted when the target repeats a token), a one-chunk and
    a chunked prefill: the tokens are plain greedy's, bit for bit."""
    target = random_model(name, seed=seed)
    ids = prompt(target.config, seed)
    plain = generate(target, ids, NEW, ignore_eos=True)
    counts = []
    for repeat in (False, True):
        drafter = drafter_for(target, seed, repeat=repeat)
        for k in (1, 2, 4, 6):
            rounds = recorded(drafter)
            chunk = 5 if k == 2 else None
            got = generate(target, ids, NEW, ignore_eos=True,
                           assistant=drafter, num_assistant_tokens=k,
                           prefill_chunk_size=chunk)  # fmt: skip
            assert torch.equal(got, plain), (repeat, k)
            counts += accepted(rounds, got.shape[1])
            del drafter.draft
    # both kinds of round happened: some drafts rejected, some accepted
    assert min(counts) == 0 and max(counts) >= 1


class Oracle:
    """A stand-in drafter that knows plain greedy's tokens ``truth`` and
    proposes them with one wrong token at a planned index (``cuts``, one
    per round, repeated; a cut of k or more means all right). Logs each
    round's position and planned count."""

    def __init__(self, truth, cuts):
        self.truth, self.cuts, self.rounds = truth, list(cuts), []

    def draft(self, embed, token, hidden, kv, position, k, pick=None):
        assert token.item() == self.truth[0, position]
        cut = self.cuts[len(self.rounds) % len(self.cuts)]
        tokens = self.truth[:, position + 1 : position + 1 + k].clone()
        assert tokens.shape[1] == k, "drafted past the length budget"
        if cut < k:  # a token plain greedy never picks there
            tokens[0, cut] = (tokens[0, cut] + 1) % 500
        self.rounds.append((position, min(cut, k)))
        return tokens, None


def test_planned_acceptance_rolls_back_exactly():
    """With an oracle drafter every round accepts exactly the planned
    count (0 to all), rolling the caches back by the rest, across the
    window of an E-style target with KV sharing: tokens stay plain greedy's
    and each round starts where the accepted count says."""
    target = random_model("e2b-tiny", seed=3)
    ids = prompt(target.config, 3)
    plain = generate(target, ids, 40, ignore_eos=True)
    for k, cuts in [(1, [0, 1, 1]), (4, [2, 0, 4, 1, 3]), (6, [6, 5, 0])]:
        oracle = Oracle(plain, cuts)
        got = generate(target, ids, 40, ignore_eos=True, assistant=oracle,
                       num_assistant_tokens=k)  # fmt: skip
        assert torch.equal(got, plain), k
        starts = [p for p, _ in oracle.rounds]
        planned = [n for _, n in oracle.rounds]
        # the last round may be followed by one that drafts nothing
        assert accepted(oracle.rounds, got.shape[1])[:-1] == planned[:-1]
        assert starts[-1] > 3 * target.config.sliding_window


def test_eos_inside_a_round_and_the_length_budget():
    """An EOS among the accepted drafts ends generation right after it, as
    plain decoding does; every budget ends exactly, also in mid-round (the
    last rounds draft fewer tokens, as transformers' do)."""
    target = random_model("dense-tiny", seed=2)
    ids = prompt(target.config, 2)
    plain = generate(target, ids, 24, ignore_eos=True)
    eos = int(plain[0, PROMPT + 9])  # in the third round of five tokens
    first = (plain[0, PROMPT:] == eos).nonzero()[0, 0].item()
    stopped = generate(target, ids, 24, eos_token_id=eos)
    assert stopped.shape[1] == PROMPT + first + 1
    oracle = Oracle(plain, [4])
    got = generate(target, ids, 24, eos_token_id=eos, assistant=oracle,
                   num_assistant_tokens=4)  # fmt: skip
    assert torch.equal(got, stopped)
    for budget in range(1, 14):
        oracle = Oracle(plain, [4])
        got = generate(target, ids, budget, ignore_eos=True,
                       assistant=oracle, num_assistant_tokens=4)  # fmt: skip
        assert torch.equal(got, plain[:, : PROMPT + budget]), budget


def transformers_pair(name, seed, repeat, folder):
    """transformers' target and drafter, random (the drafter optionally
    made a repeater), and ours loaded from what transformers saved."""
    from test_assistant import build_reference

    config = Gemma4Config.from_preset(name)
    target = build_hf_model(config, seed=seed)
    kv = config.num_key_value_heads
    drafter = build_reference(vocab=config.vocab_size, seed=seed, kv=kv,
                              k_eq_v=config.attention_k_eq_v)  # fmt: skip
    if repeat:
        make_repeater(drafter, target)
    target.save_pretrained(folder / "target")
    drafter.save_pretrained(folder / "drafter")
    ours = Gemma4ForCausalLM.from_pretrained(folder / "target")
    ours_drafter = Gemma4AssistantForCausalLM.from_pretrained(
        folder / "drafter"
    )
    return target, drafter, ours, ours_drafter


@pytest.mark.parametrize(
    "name, repeat", [("dense-tiny", True), ("e2b-tiny", True),
                     ("31b-tiny", False)]
)  # fmt: skip
def test_rounds_match_transformers_assisted_generation(name, repeat, tmp_path):
    """The same drafts at the same positions every round (so the same
    accepted counts) and the same tokens as transformers'
    ``generate(assistant_model=...)``: the drafter reads the K/V exactly as
    transformers hands it over, stale rejected entries included."""
    pytest.importorskip("transformers")
    from transformers import GenerationConfig
    from transformers.generation import candidate_generator

    target, drafter, ours, ours_drafter = transformers_pair(
        name, 0, repeat, tmp_path
    )
    generator = candidate_generator.SinglePositionMultiTokenCandidateGenerator
    ids = prompt(ours.config, 0)
    settings = GenerationConfig(
        do_sample=False, max_new_tokens=NEW, min_new_tokens=0,
        eos_token_id=None, pad_token_id=0, bos_token_id=2,
    )  # fmt: skip
    for k in (1, 3, 6):
        theirs, original = [], generator.get_candidates

        def logged(self, input_ids, *args, **kwargs):
            out = original(self, input_ids, *args, **kwargs)
            length = input_ids.shape[1]
            if out[0].shape[1] > length:  # the first round drafts nothing
                theirs.append((length - 1, out[0][0, length:].tolist()))
            return out

        drafter.generation_config.num_assistant_tokens = k
        generator.get_candidates = logged
        try:
            with torch.no_grad():
                expected = target.generate(
                    ids, generation_config=settings, assistant_model=drafter,
                    attention_mask=torch.ones_like(ids),
                )  # fmt: skip
        finally:
            generator.get_candidates = original
        ours_rounds = recorded(ours_drafter)
        got = generate(ours, ids, NEW, ignore_eos=True,
                       assistant=ours_drafter,
                       num_assistant_tokens=k)  # fmt: skip
        del ours_drafter.draft
        assert torch.equal(got, expected), k
        assert ours_rounds == theirs, k
        if repeat:
            counts = accepted(ours_rounds, got.shape[1])
            assert max(counts) >= 1, k  # acceptance is exercised


def test_what_assisted_generation_refuses():
    target = random_model("dense-tiny", seed=0)
    drafter = drafter_for(target)
    ids = prompt(target.config, 0)
    cases = [
        (dict(input_ids=ids.repeat(2, 1)), "batch=2"),
        (dict(compile=True), "compile=True"),
        (dict(num_assistant_tokens=0), "num_assistant_tokens"),
        (dict(attention_mask=torch.ones_like(ids).index_fill(1,
              torch.tensor([0]), 0)), "padding=True"),
    ]  # fmt: skip
    drafter.generation_config = {"num_assistant_tokens": 3}  # the default
    rounds = recorded(drafter)
    generate(target, ids, 12, assistant=drafter, ignore_eos=True)
    assert len(rounds) > 2
    assert all(len(drafts) == 3 for _, drafts in rounds[:-2])
    del drafter.draft
    for settings, words in cases:
        settings = {"input_ids": ids, **settings}
        with pytest.raises(ValueError, match=words):
            generate(target, max_new_tokens=5, assistant=drafter, **settings)


def total_variation(counts, probs):
    return 0.5 * (counts / counts.sum() - probs).abs().sum().item()


def test_accept_drafts_keeps_the_target_distribution():
    """Drafts sampled from q and kept by the rule: the first emitted token
    follows p_0 and the second (when the first was a kept draft) p_1, to
    Monte-Carlo precision. transformers' rule (the drafter's argmax,
    accepted with probability min(1, p/q)) does not: the same check
    separates it."""
    gen = torch.Generator().manual_seed(0)
    vocab, k, trials = 5, 2, 10_000
    p = torch.softmax(1.5 * torch.randn(k + 1, vocab, generator=gen), -1)
    q = torch.softmax(1.5 * torch.randn(k, vocab, generator=gen), -1)
    counts = {rule: torch.zeros(2, vocab) for rule in ("ours", "argmax")}
    for _ in range(trials):
        for rule, row in counts.items():
            drafts = (
                torch.multinomial(q, 1, generator=gen)[:, 0]
                if rule == "ours"
                else q.argmax(-1)
            )
            n, last = accept_drafts(p, q, drafts, gen)
            emitted = torch.cat([drafts[:n], last])
            row[0, emitted[0]] += 1
            if n >= 1:
                row[1, emitted[1]] += 1
    assert total_variation(counts["ours"][0], p[0]) < 0.02
    assert total_variation(counts["ours"][1], p[1]) < 0.03
    assert counts["ours"][1].sum() > trials / 10  # drafts were kept
    assert total_variation(counts["argmax"][0], p[0]) > 0.04


class NoisyTarget:
    """A stand-in drafter for sampling: the target's own logits after the
    prompt and the newest token (exact in the first round), plus fixed
    noise, so that q is near p but not equal to it. Any q leaves the
    emitted law unchanged; this one makes rounds keep 0, 1 or 2 drafts.
    Logs the position of each round."""

    def __init__(self, target, ids, scale=0.5):
        gen = torch.Generator().manual_seed(9)
        self.target, self.ids, self.rounds = target, ids, []
        vocab = target.config.vocab_size
        self.noise = scale * torch.randn(vocab, generator=gen)

    def draft(self, embed, token, hidden, kv, position, k, pick):
        self.rounds.append(position)
        seq, drafts, logits = torch.cat([self.ids, token], 1), [], []
        for _ in range(k):
            logits.append(self.target(seq)[:, -1:] + self.noise)
            drafts.append(pick(logits[-1]))
            seq = torch.cat([seq, drafts[-1]], 1)
        return torch.cat(drafts, 1), torch.cat(logits, 1)


def test_assisted_sampling_follows_the_target_distribution():
    """End to end: the second new token (the first that a round decides)
    has the law plain sampling gives it, computed exactly from the target
    (top-k 3, so nine continuations), while rounds keep and reject drafts;
    a seed makes a run repeatable."""
    target = random_model("e2b-tiny", seed=1)
    ids = prompt(target.config, 1)
    drafter = NoisyTarget(target, ids)
    settings = dict(do_sample=True, temperature=1.0, top_k=3)

    def law(logits):
        cut = torch.topk(logits, 3)
        out = torch.zeros(logits.shape[-1])
        return out.index_put_((cut.indices,), torch.softmax(cut.values, -1))

    with torch.no_grad():
        first = law(target(ids)[0, -1])
        options = first.topk(3).indices
        after = target(torch.cat([ids.repeat(3, 1), options[:, None]], 1))
    second = sum(first[t] * law(row) for t, row in zip(options, after[:, -1]))
    counts, rejected, runs = torch.zeros_like(second), 0, 500
    for seed in range(runs):
        drafter.rounds.clear()
        # 4 tokens: the first round drafts 2; the next one drafts again
        # (at the next position) only if the first kept nothing
        got = generate(target, ids, 4, assistant=drafter, seed=seed,
                       num_assistant_tokens=2, **settings)  # fmt: skip
        counts[got[0, PROMPT + 1]] += 1
        rejected += drafter.rounds[1:2] == [PROMPT + 1]
    assert total_variation(counts, second) < 0.1
    assert runs / 10 < rejected < runs * 0.9  # both outcomes are common
    again = generate(target, ids, 12, assistant=drafter, seed=5,
                     num_assistant_tokens=3, **settings)  # fmt: skip
    once = generate(target, ids, 12, assistant=drafter, seed=5,
                    num_assistant_tokens=3, **settings)  # fmt: skip
    assert torch.equal(again, once)
