"""Training a drafter for the book's model (``book.drafter_training``):
the unrolled training steps are the draft rounds the loop runs, labels
follow the target's greedy path, a two-step run writes a checkpoint, and
the checkpoint is transformers' ``gemma4_assistant`` format; the shipped
drafter gives transformers' assisted tokens."""

import json
import math
from pathlib import Path

import pytest
import torch
from safetensors import safe_open

from gemma4_lite import (
    Gemma4AssistantForCausalLM,
    Gemma4ForCausalLM,
    Tokenizer,
    generate,
)
from gemma4_lite.book import drafter_training as dt
from gemma4_lite.book.export import save_pretrained
from gemma4_lite.book.tiny import tiny_model

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "checkpoints" / "shakespeare-dense-assistant"
TARGET = ROOT / "checkpoints" / "shakespeare-dense"


def tiny_pair(seed=0):
    """A random tiny target (window 8) and a drafter initialised from it,
    then perturbed so that its layers matter."""
    target = tiny_model("dense-tiny", seed=seed, std=0.3)
    drafter = Gemma4AssistantForCausalLM(dt.drafter_config(target.config))
    dt.init_from_target(drafter, target)
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in drafter.parameters():
            p.add_(torch.randn(p.shape, generator=gen) * 0.05)
    return target, drafter.eval()


def greedy_ids(target, length, seed=1):
    """A start token and the target's greedy continuation (a random tiny
    target soon repeats one token)."""
    start = torch.randint(3, 200, (2, 1), generator=_gen(seed))
    return dt.greedy_sequences(target, start, length - 1)


def _gen(seed):
    return torch.Generator().manual_seed(seed)


def test_training_masks():
    masks = dt.training_masks(6, window=2)
    # anchor t (row t - 1) sees the keys before it; sliding: the last W + 1
    assert masks["full_attention"].int().tolist() == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [1, 1, 1, 1, 0, 0],
        [1, 1, 1, 1, 1, 0],
    ]
    assert masks["sliding_attention"].int().tolist() == [
        [1, 0, 0, 0, 0, 0],
        [1, 1, 0, 0, 0, 0],
        [1, 1, 1, 0, 0, 0],
        [0, 1, 1, 1, 0, 0],
        [0, 0, 1, 1, 1, 0],
    ]


def test_unrolled_steps_are_draft_rounds():
    """Step j of training at anchor t gives the logits of the j-th draft
    of a round at position t (the drafter's own ``draft``, its tokens
    forced to the sequence's), with the keys the loop hands over: the
    target's before t, the sliding ones cut to the last W + 1. Anchors
    before and past the window (8) of a 14-token random sequence."""
    target, drafter = tiny_pair()
    ids = torch.randint(3, 500, (2, 14), generator=_gen(4))
    tf = dt.teacher(target, ids)
    unroll = 3
    with torch.no_grad():
        steps = list(dt.unrolled_steps(drafter, tf, unroll))
    embed = target.model.embed_tokens
    checked = 0
    for row in range(ids.shape[0]):
        for t in range(1, ids.shape[1] - unroll + 1):
            kv = {kind: (k[row : row + 1, :, :t], v[row : row + 1, :, :t])
                  for kind, (k, v) in tf.kv.items()}  # fmt: skip
            forced = iter(ids[row, t + 1 : t + unroll].tolist() + [0])

            def pick(logits, forced=forced):
                return torch.tensor([[next(forced)]])

            _, logits = drafter.draft(
                embed, ids[row : row + 1, t : t + 1],
                tf.hidden[row : row + 1, t - 1 : t], kv, t, unroll, pick,
            )  # fmt: skip
            for j, (trained, labels) in enumerate(steps):
                torch.testing.assert_close(
                    trained[row, t - 1], logits[0, j], atol=2e-5, rtol=1e-5
                )
                label = int(labels[row, t - 1])
                assert label in (-100, tf.argmax[row, t + j]) and (
                    j or label >= 0
                )
                checked += 1
    assert checked == 2 * 11 * unroll
    # the steps differ: the recurrence is not the same step thrice
    assert not torch.allclose(steps[0][0], steps[1][0])


def test_labels_follow_the_greedy_path():
    """On the target's greedy continuation every step is labelled; a token
    off that path removes step j from the j - 1 anchors before it."""
    target, drafter = tiny_pair()
    ids = greedy_ids(target, 12)
    tf = dt.teacher(target, ids)
    assert torch.equal(tf.ids[:, 1:], tf.argmax[:, :-1])
    with torch.no_grad():
        _, _, counts = dt.unrolled_loss(drafter, tf, 4)
    anchors = ids.shape[1] - 1
    assert counts == [2 * (anchors - j) for j in range(4)]
    off = ids.clone()
    off[0, 6] = (tf.argmax[0, 5] + 1) % target.config.vocab_size
    tf = dt.teacher(target, off)
    with torch.no_grad():
        steps = list(dt.unrolled_steps(drafter, tf, 4))
    for j, (_, labels) in enumerate(steps):
        # anchors 7 - j .. 5 cross position 6 (row 0, index t - 1); past
        # position 6 the target's own choices continue a path of their own
        kept = (labels[0] >= 0).nonzero()[:, 0] + 1
        crossing = set(range(7 - j, 6)) if j else set()
        on_path = tf.ids[0, 1:] == tf.argmax[0, :-1]
        expected = {
            t for t in range(1, anchors + 1 - j)
            if all(on_path[t + i - 1] for i in range(1, j + 1))
        }  # fmt: skip
        assert set(kept.tolist()) == expected
        assert not crossing & expected


def test_a_two_step_run_writes_a_checkpoint(tmp_path):
    target = tiny_model("dense-tiny", seed=3, std=0.3)
    save_pretrained(target, tmp_path / "target")
    gen = _gen(0)
    corpus = (
        torch.randint(3, 256, (400,), generator=gen),
        torch.randint(3, 256, (200,), generator=gen),
    )
    args = dt.DrafterArgs(
        target=str(tmp_path / "target"), out=str(tmp_path / "drafter"),
        steps=2, batch_size=2, prompt_len=4, new_tokens=6, unroll=2,
        first_anchor=4,
        warmup=1, threads=1, log_every=1, eval_prompts=2,
        eval_prompt_len=4, eval_tokens=7, eval_k=2,
    )  # fmt: skip
    log = tmp_path / "progress.txt"
    with log.open("w") as stream:
        record = dt.train(args, stream=stream, corpus=corpus)
    assert "2/2" in log.read_text()
    assert record["steps_done"] == 2
    assert [e["step"] for e in record["log"]] == [1, 2]
    assert all(math.isfinite(e["loss"]) for e in record["log"])
    # anchors 4..9 of 2 rows, all on the greedy continuation
    assert record["log"][0]["labelled"] == [2 * 6, 2 * 5]
    held = record["held_out"]
    assert held["tokens"] == 2 * 7
    # each round emits its accepted drafts plus one token of the target's
    assert held["tokens"] == held["forwards"] + sum(held["accepted"])
    out = Path(args.out)
    saved = json.loads((out / "training.json").read_text())
    assert saved["held_out"] == held
    drafter = Gemma4AssistantForCausalLM.from_pretrained(out)
    assert drafter.generation_config["num_assistant_tokens"] == 2
    assert drafter.config.backbone_hidden_size == 64


def test_save_round_trip_and_transformers_reads_it(tmp_path):
    transformers = pytest.importorskip("transformers")
    target, drafter = tiny_pair(seed=2)
    dt.save_drafter(drafter, tmp_path, dtype=torch.float32)
    with safe_open(str(tmp_path / "model.safetensors"), "pt") as f:
        keys = set(f.keys())
    assert "lm_head.weight" not in keys
    assert "model.layers.0.self_attn.q_proj.weight" in keys
    assert not any("qkv_proj" in k or "k_proj" in k for k in keys)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == "gemma4_assistant"
    assert config["text_config"]["num_kv_shared_layers"] == 2
    assert config["text_config"]["vocab_size_per_layer_input"] == 0
    ours = Gemma4AssistantForCausalLM.from_pretrained(tmp_path)
    for name, tensor in drafter.state_dict().items():
        assert torch.equal(ours.state_dict()[name], tensor), name
    theirs, info = transformers.Gemma4AssistantForCausalLM.from_pretrained(
        tmp_path,
        dtype=torch.float32,
        output_loading_info=True,
        attn_implementation="eager",
    )
    assert not any(info.values()), info
    ids = greedy_ids(target, 12)[:1]
    tf = dt.teacher(target, ids)
    kv = {kind: (k[:, :, :9].contiguous(), v[:, :, :9].contiguous())
          for kind, (k, v) in tf.kv.items()}  # fmt: skip
    embeds = tf.embeds[:, 9:10].contiguous()
    hidden = tf.hidden[:, 8:9].contiguous()
    with torch.no_grad():
        expected = theirs(
            inputs_embeds=torch.cat([embeds, hidden], dim=-1),
            position_ids=torch.tensor([[9]]),
            shared_kv_states=kv,
        )
        got = ours(embeds, hidden, kv, 9)
    # the core's tests establish bitwise parity on their configs; here the
    # file format is under test, and a misread tensor would move logits by
    # far more than float rounding
    torch.testing.assert_close(got.logits, expected.logits, atol=1e-5, rtol=0)
    assert expected.logits.std() > 0.1


def shipped_prompts():
    tok = Tokenizer.from_pretrained(TARGET)
    lines = [
        "HAMLET. To be, or not to be, that is the question:",
        "KING. My lords, the night grows late; ",
    ]
    return [torch.tensor([tok.encode(x, add_bos=True)]) for x in lines]


def test_shipped_drafter_gives_transformers_assisted_tokens():
    """The committed checkpoint loads in transformers, whose assisted greedy
    generation gives our tokens (and plain greedy decoding's), with
    drafts accepted."""
    transformers = pytest.importorskip("transformers")
    hf_drafter = transformers.Gemma4AssistantForCausalLM.from_pretrained(
        SHIPPED, dtype=torch.float32
    ).eval()
    hf_target = transformers.Gemma4ForCausalLM.from_pretrained(
        TARGET, dtype=torch.float32
    ).eval()
    assert hf_drafter.generation_config.num_assistant_tokens == 3
    target = Gemma4ForCausalLM.from_pretrained(TARGET, dtype="float32")
    drafter = Gemma4AssistantForCausalLM.from_pretrained(
        SHIPPED, dtype="float32"
    )
    for ids in shipped_prompts():
        with torch.no_grad():
            theirs = hf_target.generate(
                ids, assistant_model=hf_drafter, do_sample=False,
                max_new_tokens=24,
            )  # fmt: skip
        ours = generate(target, ids, 24, do_sample=False, assistant=drafter)
        assert torch.equal(ours, theirs)
        assert torch.equal(ours, generate(target, ids, 24, do_sample=False))
        rounds, _ = dt.assisted_rounds(target, drafter, ids, 24, 3)
        assert rounds.tokens == rounds.forwards + sum(rounds.accepted)
        assert sum(rounds.accepted) > 0
