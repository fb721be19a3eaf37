"""The MTP drafter against transformers 5.24 (``Gemma4AssistantForCausalLM``
and the 12B's ``Gemma4UnifiedAssistantForCausalLM``) on tiny random
drafters, and its loader's errors."""

import json

import pytest
import torch
from hf_reference import build_hf_model, randomise
from safetensors.torch import load_file, save_file

from gemma4_lite import CheckpointError, Gemma4AssistantForCausalLM
from gemma4_lite.assistant import AssistantConfig

transformers = pytest.importorskip("transformers")

S, F = "sliding_attention", "full_attention"
WINDOW, BACKBONE, VOCAB = 8, 64, 128
# K/V lengths (sliding, global): below the window, exactly window + 1 (all
# visible), one past it, well past it
LENGTHS = [(5, 6), (9, 9), (10, 14), (14, 20)]


def build_reference(
    unified=False, ordered=False, k_eq_v=False, seed=0, vocab=VOCAB, kv=2
):
    """A random transformers drafter shaped like the released ones: three
    sliding layers then a global one with wider heads (and, like the 26B and
    31B drafters' targets, fewer global KV heads with K=V)."""
    t = transformers
    text = dict(
        vocab_size=vocab, hidden_size=32, intermediate_size=64,
        num_hidden_layers=4, layer_types=[S, S, S, F],
        num_attention_heads=4, num_key_value_heads=kv, head_dim=16,
        global_head_dim=32, sliding_window=WINDOW,
        max_position_embeddings=512,
    )  # fmt: skip
    if k_eq_v:
        text.update(attention_k_eq_v=True, num_global_key_value_heads=1)
    if unified:
        text_config = t.Gemma4UnifiedTextConfig(**text)
        classes = (
            t.Gemma4UnifiedAssistantConfig,
            t.Gemma4UnifiedAssistantForCausalLM,
        )
    else:
        text.update(
            hidden_size_per_layer_input=0, vocab_size_per_layer_input=0
        )
        text_config = t.Gemma4TextConfig(**text)
        classes = t.Gemma4AssistantConfig, t.Gemma4AssistantForCausalLM
    config = classes[0](
        text_config=text_config, backbone_hidden_size=BACKBONE,
        use_ordered_embeddings=ordered, num_centroids=16,
        centroid_intermediate_top_k=4,
    )  # fmt: skip
    torch.manual_seed(seed)
    model = classes[1]._from_config(
        config, attn_implementation="eager", dtype=torch.float32
    )
    with torch.no_grad():
        randomise(model, seed)
        if ordered:  # transformers initialises it to zeros (every slot id 0)
            order = torch.randperm(
                vocab, generator=torch.Generator().manual_seed(seed)
            )
            model.masked_embedding.token_ordering.copy_(order)
    return model.eval()


def target_kv(sliding, full, full_heads=2, seed=0, batch=1):
    """Random stand-ins for the target's (K, V) of each layer type."""
    gen = torch.Generator().manual_seed(seed)

    def pair(length, heads, dim):
        shape = (batch, heads, length, dim)
        return torch.randn(shape, generator=gen), torch.randn(
            shape, generator=gen
        )

    return {S: pair(sliding, 2, 16), F: pair(full, full_heads, 32)}


def pair_of(tmp_path, **kwargs):
    reference = build_reference(**kwargs)
    reference.save_pretrained(tmp_path)
    return reference, Gemma4AssistantForCausalLM.from_pretrained(tmp_path)


CASES = {
    "dense": dict(),
    "centroid": dict(ordered=True),
    "dense-k=v": dict(k_eq_v=True),
    "unified-dense": dict(unified=True),
    "unified-centroid": dict(unified=True, ordered=True),
}


@pytest.mark.parametrize("case", CASES)
def test_draft_rounds_match_transformers_bitwise(case, tmp_path):
    """Three draft steps per round, as the loop runs them: the same position
    and K/V each step, the previous step's hidden state and token fed back.
    fp32 logits and hidden states are bit-identical to transformers' eager
    path, below and past the sliding window."""
    reference, ours = pair_of(tmp_path, **CASES[case])
    full_heads = 1 if CASES[case].get("k_eq_v") else 2
    gen = torch.Generator().manual_seed(7)
    table = torch.randn(VOCAB, BACKBONE, generator=gen)  # target embedding
    for round_, (sliding, full) in enumerate(LENGTHS):
        kv = target_kv(sliding, full, full_heads, seed=round_)
        position = full  # the newest token is not in the target's cache
        token = torch.tensor([[3 + round_]])
        h_ref = h_ours = torch.randn(1, 1, BACKBONE, generator=gen)
        with torch.no_grad():
            for _ in range(3):
                embeds = table[token]
                expected = reference(
                    inputs_embeds=torch.cat([embeds, h_ref], dim=-1),
                    position_ids=torch.tensor([[position]]),
                    shared_kv_states=kv,
                )
                got = ours(embeds, h_ours, kv, position)
                assert torch.equal(got.logits, expected.logits), (
                    sliding,
                    full,
                )
                assert torch.equal(got.hidden, expected.last_hidden_state)
                h_ref, h_ours = expected.last_hidden_state, got.hidden
                token = expected.logits[:, -1:].argmax(-1)
    # not trivially equal: the logits spread and the drafts differ by step
    assert expected.logits.std() > 0.1


@pytest.mark.parametrize("case", ["dense", "centroid"])
def test_sdpa_and_batches_match_transformers(case, tmp_path):
    """PyTorch's fused attention on both sides agrees to fp32 rounding (the
    kernels sum in different orders), and a batch of two matches too; the
    centroid head's fill value is one scalar for the whole batch."""
    reference, ours = pair_of(tmp_path, **CASES[case])
    reference.set_attn_implementation("sdpa")
    ours.set_attn_implementation("sdpa")
    gen = torch.Generator().manual_seed(3)
    embeds, hidden = torch.randn(2, 2, 1, BACKBONE, generator=gen)
    kv = target_kv(14, 20, batch=2)
    with torch.no_grad():
        expected = reference(
            inputs_embeds=torch.cat([embeds, hidden], dim=-1),
            position_ids=torch.tensor([[20], [20]]),
            shared_kv_states=kv,
        )
        got = ours(embeds, hidden, kv, 20)
    torch.testing.assert_close(got.logits, expected.logits, rtol=0, atol=1e-5)
    torch.testing.assert_close(
        got.hidden, expected.last_hidden_state, rtol=0, atol=1e-5
    )


def test_sliding_layers_see_the_last_window_plus_one_entries(tmp_path):
    """transformers' bidirectional window counts from the end of the K/V
    tensor and keeps sliding_window + 1 entries (the target's own sliding
    layers see sliding_window); global layers see everything."""
    _, ours = pair_of(tmp_path)
    masks = [ours.default_mask(S, target_kv(n, 1)[S][0], 1) for n in (5, 9)]
    assert masks == [None, None]
    mask = ours.default_mask(S, target_kv(14, 1)[S][0], 1)
    assert mask.tolist() == [[False] * 5 + [True] * 9]
    assert ours.default_mask(F, target_kv(1, 14)[F][0], 1) is None

    gen = torch.Generator().manual_seed(0)
    embeds, hidden = torch.randn(2, 1, 1, BACKBONE, generator=gen)

    def logits_after(kind, index):
        kv = target_kv(14, 20)
        kv[kind][0][:, :, index] += 5.0
        with torch.no_grad():
            return ours(embeds, hidden, kv, 20).logits

    base = logits_after(S, slice(0, 0))
    assert torch.equal(logits_after(S, 4), base)  # just outside the window
    assert not torch.equal(logits_after(S, 5), base)  # its first entry
    assert not torch.equal(logits_after(F, 0), base)  # global: all of it


def test_centroid_head_scores_only_the_chosen_clusters(tmp_path):
    """Tokens of the top-4 of 16 clusters get the dense head's scores; every
    other token gets one value below the lowest of them."""
    _, ours = pair_of(tmp_path, ordered=True)
    x = torch.randn(1, 1, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        logits = ours.head(x)[0, 0]
        dense = (x @ ours.model.embed_tokens.weight.T)[0, 0]
        top = ours.masked_embedding.centroids(x)[0, 0].topk(4).indices
    clusters = ours.masked_embedding.token_ordering.view(16, -1)
    chosen = clusters[top].flatten()
    assert len(chosen) == 4 * VOCAB // 16
    torch.testing.assert_close(logits[chosen], dense[chosen])
    rest = torch.ones(VOCAB, dtype=torch.bool)
    rest[chosen] = False
    fill = logits[chosen].min().item() - 1.0
    assert torch.equal(logits[rest], torch.full((int(rest.sum()),), fill))
    assert logits.argmax() in chosen


def test_config_reads_both_families_and_keeps_the_geometry(tmp_path):
    build_reference(unified=True, k_eq_v=True).save_pretrained(tmp_path)
    config = AssistantConfig.from_hf(tmp_path)
    text = config.text_config
    assert config.backbone_hidden_size == BACKBONE
    assert text.num_kv_shared_layers == text.num_hidden_layers == 4
    assert (text.head_dim, text.global_head_dim) == (16, 32)
    assert (text.num_key_value_heads, text.num_global_key_value_heads) == (
        2,
        1,
    )
    assert text.sliding_window == WINDOW
    # transformers' default backbone width differs by family
    raw = json.loads((tmp_path / "config.json").read_text())
    del raw["backbone_hidden_size"]
    assert (
        AssistantConfig.from_hf(raw_file(tmp_path, raw)).backbone_hidden_size
        == 3840
    )


def raw_file(folder, raw):
    path = folder / "edited.json"
    path.write_text(json.dumps(raw))
    return path


@pytest.mark.parametrize(
    "change, field",
    [
        (dict(hidden_size_per_layer_input=16), "hidden_size_per_layer_input"),
        (dict(enable_moe_block=True), "enable_moe_block"),
        (dict(use_double_wide_mlp=True), "use_double_wide_mlp"),
        (dict(num_kv_shared_layers=2), "num_kv_shared_layers"),
    ],
)
def test_config_refuses_what_no_drafter_has(change, field, tmp_path):
    build_reference().save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    raw["text_config"].update(change)
    with pytest.raises(ValueError, match=field):
        AssistantConfig.from_hf(raw_file(tmp_path, raw))


def test_config_refuses_other_models_and_untied_heads(tmp_path):
    build_reference().save_pretrained(tmp_path)
    raw = json.loads((tmp_path / "config.json").read_text())
    with pytest.raises(ValueError, match="tie_word_embeddings"):
        AssistantConfig.from_hf(
            raw_file(tmp_path, dict(raw, tie_word_embeddings=False))
        )
    target = dict(raw["text_config"])  # a target's file, not a drafter's
    with pytest.raises(ValueError, match="not a Gemma 4 drafter"):
        AssistantConfig.from_hf(raw_file(tmp_path, target))


def test_loader_lists_every_bad_tensor(tmp_path):
    build_reference(ordered=True).save_pretrained(tmp_path)
    path = tmp_path / "model.safetensors"
    state = load_file(path)
    del state["pre_projection.weight"]
    state["model.layers.0.self_attn.k_proj.weight"] = torch.zeros(32, 32)
    state["post_projection.weight"] = torch.zeros(BACKBONE + 1, 32)
    save_file(state, path)
    with pytest.raises(CheckpointError) as error:
        Gemma4AssistantForCausalLM.from_pretrained(tmp_path)
    message = str(error.value)
    assert "missing tensor: pre_projection.weight" in message
    # a drafter layer has no keys of its own
    assert (
        "unexpected tensor: model.layers.0.self_attn.k_proj.weight" in message
    )
    assert (
        "wrong shape: post_projection.weight: checkpoint [65, 32]" in message
    )
    assert "missing tensor: post_projection.weight" not in message


def test_loader_refuses_pickle_and_applies_the_dtype(tmp_path):
    reference = build_reference(ordered=True)
    reference.save_pretrained(tmp_path)
    model = Gemma4AssistantForCausalLM.from_pretrained(
        tmp_path, dtype="bfloat16"
    )
    assert model.pre_projection.weight.dtype == torch.bfloat16
    assert (
        model.model.layers[3].self_attn.qkv_proj.weight.dtype == torch.bfloat16
    )
    kv = {
        k: (a.bfloat16(), b.bfloat16())
        for k, (a, b) in target_kv(14, 20).items()
    }
    embeds, hidden = torch.randn(2, 1, 1, BACKBONE).bfloat16()
    with torch.no_grad():
        out = model(embeds, hidden, kv, 20)
    assert out.logits.dtype == out.hidden.dtype == torch.bfloat16
    assert torch.isfinite(out.logits).all()
    order = reference.masked_embedding.token_ordering
    assert torch.equal(model.masked_embedding.token_ordering, order)
    assert model.generation_config == json.loads(
        (tmp_path / "generation_config.json").read_text()
    )
    (tmp_path / "model.safetensors").rename(tmp_path / "pytorch_model.bin")
    with pytest.raises(CheckpointError, match="pickle"):
        Gemma4AssistantForCausalLM.from_pretrained(tmp_path)


@pytest.mark.parametrize(
    "target, drafter",
    [("e2b-tiny", dict(ordered=True, kv=1)), ("31b-tiny", dict(k_eq_v=True))],
    ids=["e2b-tiny", "31b-tiny"],
)
def test_replays_transformers_assisted_generation(target, drafter, tmp_path):
    """Every drafter call of transformers' own assisted generation (a tiny
    random target, k = 3, 20 tokens, crossing the window) replayed on ours
    from the same inputs gives the same bits. The K/V lengths it was handed
    follow the rule the speculative loop must reproduce: the target's last
    forward returned global K/V up to its end E, and sliding K/V of the last
    sliding_window - 1 + q positions (q tokens in that forward, the cache
    recording its past for rollback); both are cut to the new length L."""
    from gemma4_lite import Gemma4Config

    config = Gemma4Config.from_preset(target)
    model = build_hf_model(config, seed=1)
    reference = build_reference(seed=2, vocab=config.vocab_size, **drafter)
    reference.generation_config.num_assistant_tokens = 3
    calls = []

    def record(module, args, kwargs, output):
        kv = kwargs["shared_kv_states"]
        calls.append((kwargs["inputs_embeds"], kwargs["position_ids"], kv,
                      output.logits, output.last_hidden_state))  # fmt: skip

    reference.register_forward_hook(record, with_kwargs=True)
    prompt = torch.randint(3, config.vocab_size, (1, 5))
    tokens = model.generate(
        prompt, assistant_model=reference, do_sample=False,
        max_new_tokens=20, eos_token_id=None,
    )  # fmt: skip
    reference.save_pretrained(tmp_path)
    ours = Gemma4AssistantForCausalLM.from_pretrained(tmp_path)
    rounds = {}
    for embeds, position, kv, logits, hidden in calls:
        with torch.no_grad():
            got = ours(*embeds.split(BACKBONE, -1), kv, int(position))
        assert torch.equal(got.logits, logits)
        assert torch.equal(got.hidden, hidden)
        rounds.setdefault(int(position), []).append((embeds, kv, logits))
    assert len(rounds) >= 8  # rounds, each with its own position
    # whole rounds: the first call's inputs, then ours feeds itself
    embed = model.get_input_embeddings()
    for position, steps in rounds.items():
        (embeds, kv, _), k = steps[0], len(steps)
        token = tokens[:, position : position + 1]
        drafts, logits = ours.draft(
            embed, token, embeds[..., BACKBONE:], kv, position, k
        )
        expected = torch.cat([step[2] for step in steps], dim=1)
        assert torch.equal(logits, expected)
        assert torch.equal(drafts, expected.argmax(-1))
    # the K/V lengths of each round
    first = min(rounds)
    end, fed, window = first, first, config.sliding_window
    assert first == prompt.shape[1] and len(rounds[first]) == 3
    for position, steps in sorted(rounds.items()):
        kv = steps[0][1]
        lengths = kv[S][0].shape[2], kv[F][0].shape[2]
        new_length = position + 1
        expected_full = min(end, new_length)
        expected_sliding = min(end, window - 1 + fed, new_length)
        assert lengths == (expected_sliding, expected_full), position
        end, fed = position + len(steps) + 1, len(steps) + 1
