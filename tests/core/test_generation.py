"""generate(): greedy equals an uncached argmax loop; sampling is seeded,
tempered and cut to top-k and the nucleus; EOS ends rows; left-padded
batches give each row its own tokens; streaming yields what generate
returns."""

import warnings

import pytest
import torch
from conftest import FAMILIES, random_model

from gemma4_lite import (
    Gemma4ForCausalLM,
    generate,
    generate_stream,
)
from gemma4_lite.book.export import save_pretrained
from gemma4_lite.book.train import causal_lm_loss
from gemma4_lite.generation import filter_logits


@pytest.fixture(scope="module")
def model():
    return random_model("e2b-tiny", seed=31)


def _prompt(model, length=19, batch=2, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return torch.randint(
        3, model.config.vocab_size, (batch, length), generator=gen
    )


def _greedy_uncached(model, ids, steps):
    with torch.no_grad():
        for _ in range(steps):
            nxt = model(ids)[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], 1)
    return ids


def test_greedy_equals_uncached_argmax_loop(model):
    ids = _prompt(model)
    out = generate(model, ids, 12, ignore_eos=True)
    assert torch.equal(out, _greedy_uncached(model, ids, 12))


@pytest.mark.parametrize("chunk", [1, 5, 8, 9, 100])
def test_chunked_prefill_gives_the_same_tokens(model, chunk):
    ids = _prompt(model)
    chunked = generate(
        model, ids, 10, prefill_chunk_size=chunk, ignore_eos=True
    )
    assert torch.equal(chunked, generate(model, ids, 10, ignore_eos=True))


@pytest.mark.parametrize("name", FAMILIES)
def test_last_only_is_the_last_row_of_the_full_logits(name):
    # KV-shared layers then run on the last position alone
    model = random_model(name, seed=32)
    ids = _prompt(model, length=21)
    with torch.no_grad():
        full = model(ids)
        last = model(ids, last_only=True)
        cache = model.new_cache(2)
        cached = model(ids, cache, last_only=True)
    assert last.shape == (2, 1, model.config.vocab_size)
    torch.testing.assert_close(last, full[:, -1:], rtol=0, atol=1e-5)
    torch.testing.assert_close(cached, full[:, -1:], rtol=0, atol=1e-5)


def test_sampling_is_reproducible_with_a_seed(model):
    ids = _prompt(model)
    a = generate(model, ids, 15, temperature=1.0, seed=7, ignore_eos=True)
    b = generate(model, ids, 15, temperature=1.0, seed=7, ignore_eos=True)
    c = generate(model, ids, 15, temperature=1.0, seed=8, ignore_eos=True)
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_filter_logits_keeps_the_top_k_and_the_nucleus():
    probs = torch.tensor([[0.05, 0.5, 0.15, 0.3]])
    logits = probs.log()
    kept = filter_logits(logits, top_k=2, top_p=None).isfinite()
    assert kept.tolist() == [[False, True, False, True]]
    # 0.5 < 0.8, 0.5 + 0.3 reaches 0.8: the nucleus is the two best tokens
    kept = filter_logits(logits, top_k=None, top_p=0.8).isfinite()
    assert kept.tolist() == [[False, True, False, True]]
    kept = filter_logits(logits, top_k=None, top_p=0.81).isfinite()
    assert kept.tolist() == [[False, True, True, True]]
    kept = filter_logits(logits, top_k=3, top_p=1e-9).isfinite()
    assert kept.tolist() == [[False, True, False, False]]


def test_top_k_samples_only_among_the_k_best(model):
    ids = _prompt(model, batch=1)
    out = generate(
        model, ids, 12, temperature=2.0, top_k=3, seed=5, ignore_eos=True
    )
    with torch.no_grad():
        logits = model(out[:, :-1])[0, ids.shape[1] - 1 :]
    best = logits.topk(3).indices
    chosen = out[0, ids.shape[1] :]
    assert all(int(t) in row.tolist() for t, row in zip(chosen, best))
    # at temperature 2 the 2nd and 3rd choices do get picked
    assert any(int(t) != int(row[0]) for t, row in zip(chosen, best))


def test_sampling_follows_the_tempered_renormalised_nucleus(model):
    # 3000 copies of one prompt, one sampled token each: the tokens' shares
    # follow softmax(logits / T) cut by hand to the nucleus (the best tokens
    # until their probability reaches top_p) and renormalised
    temperature, top_p, rows = 0.3, 0.25, 3000
    prompt = _prompt(model, batch=1)
    with torch.no_grad():
        logits = model(prompt)[0, -1].double()
    probs = torch.softmax(logits / temperature, -1)
    nucleus, mass = [], 0.0
    for token in probs.argsort(descending=True).tolist():
        nucleus.append(token)
        mass += probs[token].item()
        if mass >= top_p:
            break
    assert len(nucleus) >= 3  # a nucleus worth sampling from
    out = generate(
        model,
        prompt.repeat(rows, 1),
        1,
        temperature=temperature,
        top_p=top_p,
        seed=0,
        ignore_eos=True,
    )
    drawn = torch.bincount(out[:, -1], minlength=probs.shape[0]).double()
    assert set(drawn.nonzero()[:, 0].tolist()) == set(nucleus)
    share = drawn[nucleus] / rows
    expected = probs[nucleus] / mass
    assert (share - expected).abs().max().item() < 0.035, (share, expected)


def test_tiny_top_p_is_greedy(model):
    ids = _prompt(model, batch=1)
    sampled = generate(
        model, ids, 8, temperature=1.0, top_p=1e-6, seed=1, ignore_eos=True
    )
    assert torch.equal(sampled, generate(model, ids, 8, ignore_eos=True))


def test_eos_stops_generation(model):
    ids = _prompt(model, batch=1)
    greedy = generate(model, ids, 10, ignore_eos=True)
    eos = int(greedy[0, ids.shape[1] + 3])
    first = (greedy[0, ids.shape[1] :] == eos).nonzero()[0].item()
    stopped = generate(model, ids, 10, eos_token_id=eos)
    assert stopped.shape[1] == ids.shape[1] + first + 1
    assert int(stopped[0, -1]) == eos


def test_eos_across_a_batch_pads_finished_rows(model):
    ids = _prompt(model, batch=2)
    greedy = generate(model, ids, 10, ignore_eos=True)
    new = greedy[:, ids.shape[1] :]
    # an early token of row 0 that row 1 never produces: row 1 runs all 10
    eos = next(t for t in new[0, :8].tolist() if t not in new[1].tolist())
    out = generate(model, ids, 10, eos_token_id=eos)
    first = new[0].tolist().index(eos)
    assert torch.equal(
        out[0, ids.shape[1] :][: first + 1], new[0, : first + 1]
    )
    assert (
        out[0, ids.shape[1] + first + 1 :] == model.config.pad_token_id
    ).all()
    assert torch.equal(out[1], greedy[1])


def test_a_list_of_eos_ids_stops_at_the_first_of_any(model):
    ids = _prompt(model, batch=1)
    new = generate(model, ids, 10, ignore_eos=True)[0, ids.shape[1] :].tolist()
    out = generate(model, ids, 10, eos_token_id=[new[5], new[2]])
    assert out.shape[1] == ids.shape[1] + min(new.index(new[2]), 5) + 1


def test_eos_defaults_to_the_checkpoint_then_the_config(model, tmp_path):
    ids = _prompt(model, batch=1)
    new = generate(model, ids, 10, ignore_eos=True)[0, ids.shape[1] :].tolist()
    eos = new[4]
    expected_length = ids.shape[1] + new.index(eos) + 1
    configured = random_model("e2b-tiny", seed=31, eos_token_id=eos)
    assert generate(configured, ids, 10).shape[1] == expected_length
    model.generation_config = {"eos_token_id": [eos, 0]}
    try:
        save_pretrained(model, tmp_path)
    finally:
        model.generation_config = {}
    loaded = Gemma4ForCausalLM.from_pretrained(tmp_path)
    assert loaded.generation_config["eos_token_id"] == [eos, 0]
    assert generate(loaded, ids, 10).shape[1] == expected_length


def test_streaming_yields_what_generate_returns(model):
    ids = _prompt(model)
    steps = list(generate_stream(model, ids, 9, ignore_eos=True))
    assert len(steps) == 9 and all(s.shape == (2,) for s in steps)
    out = generate(model, ids, 9, ignore_eos=True)
    assert torch.equal(torch.stack(steps, 1), out[:, ids.shape[1] :])


@pytest.mark.parametrize("name", FAMILIES)
def test_left_padded_batch_gives_each_row_its_own_tokens(name):
    model = random_model(name, seed=33)
    window = model.config.sliding_window
    lengths = [2 * window + 3, 5, window + 1]  # across the window and not
    prompts = [_prompt(model, n, batch=1, seed=n)[0] for n in lengths]
    width = max(lengths)
    ids = torch.zeros(len(prompts), width, dtype=torch.long)
    mask = torch.zeros(len(prompts), width, dtype=torch.long)
    for row, prompt in enumerate(prompts):
        ids[row, width - len(prompt) :] = prompt
        mask[row, width - len(prompt) :] = 1
    batched = generate(
        model, ids, 2 * window, attention_mask=mask, ignore_eos=True
    )
    chunked = generate(
        model, ids, 2 * window, attention_mask=mask, ignore_eos=True,
        prefill_chunk_size=3,
    )  # fmt: skip
    assert torch.equal(batched, chunked)
    for row, prompt in enumerate(prompts):
        alone = generate(model, prompt[None], 2 * window, ignore_eos=True)
        assert torch.equal(batched[row, width:], alone[0, len(prompt) :])
    # the uncached forward agrees on the real positions
    with torch.no_grad():
        padded = model(ids, attention_mask=mask)
        for row, prompt in enumerate(prompts):
            own = model(prompt[None])[0]
            got = padded[row, width - len(prompt) :]
            torch.testing.assert_close(got, own, rtol=0, atol=1e-4)


def test_bad_attention_masks_are_refused(model):
    ids = _prompt(model, length=4)
    for mask, message in [
        (torch.ones(2, 3), r"must be \[2, 4\]"),
        (torch.tensor([[1, 1, 0, 1], [1, 1, 1, 1]]), "left padding"),
        (torch.tensor([[0, 2, 1, 1], [1, 1, 1, 1]]), "only 0s and 1s"),
        (torch.tensor([[0, 0, 0, 0], [1, 1, 1, 1]]), "real token"),
    ]:
        with pytest.raises(ValueError, match=message):
            model(ids, attention_mask=mask)


def test_labels_give_the_shifted_cross_entropy(model):
    ids = _prompt(model)
    labels = ids.clone()
    labels[0, :5] = -100  # ignored positions
    logits = model(ids)
    loss = causal_lm_loss(logits, labels)
    by_hand = torch.nn.functional.cross_entropy(
        logits[:, :-1].reshape(-1, logits.shape[-1]),
        labels[:, 1:].reshape(-1),
        ignore_index=-100,
    )
    torch.testing.assert_close(loss, by_hand)
    assert loss.requires_grad
    with pytest.raises(ValueError, match="shape"):
        causal_lm_loss(logits, labels[:, :-1])


def test_bad_generation_arguments(model):
    ids = _prompt(model)
    with pytest.raises(ValueError, match="temperature"):
        generate(model, ids, 3, temperature=-1)
    with pytest.raises(ValueError, match="top_p"):
        generate(model, ids, 3, temperature=1, top_p=0)
    with pytest.raises(ValueError, match="top_k"):
        generate(model, ids, 3, temperature=1, top_k=0)
    with pytest.raises(ValueError, match="prefill_chunk_size"):
        generate(model, ids, 3, prefill_chunk_size=0)
    with pytest.raises(ValueError, match="max_new_tokens"):
        generate(model, ids, -1)
    assert torch.equal(generate(model, ids, 0), ids)


def test_unseeded_sampling_follows_torch_global_generator(model):
    ids = _prompt(model, batch=1)
    torch.manual_seed(0)
    a = generate(model, ids, 15, temperature=1.0, ignore_eos=True)
    b = generate(model, ids, 15, temperature=1.0, ignore_eos=True)
    torch.manual_seed(0)
    again = generate(model, ids, 15, temperature=1.0, ignore_eos=True)
    assert torch.equal(a, again) and not torch.equal(a, b)
    # a seed gives a generator of its own: the global one is left alone
    torch.manual_seed(0)
    generate(model, ids, 15, temperature=1.0, seed=3, ignore_eos=True)
    assert torch.equal(
        generate(model, ids, 15, temperature=1.0, ignore_eos=True), a
    )


SAMPLING = {"do_sample": True, "temperature": 0.7, "top_k": 5, "top_p": 0.9}


def test_generation_config_sampling_settings_are_the_defaults(model, tmp_path):
    ids = _prompt(model, batch=4)
    run = dict(seed=11, ignore_eos=True)
    sampled = generate(model, ids, 10, **SAMPLING, **run)
    greedy = generate(model, ids, 10, ignore_eos=True)
    assert not torch.equal(sampled, greedy)
    model.generation_config = dict(SAMPLING)
    try:
        save_pretrained(model, tmp_path)
    finally:
        model.generation_config = {}
    loaded = Gemma4ForCausalLM.from_pretrained(tmp_path)
    assert torch.equal(generate(loaded, ids, 10, **run), sampled)
    # the caller's arguments win, one by one
    assert torch.equal(generate(loaded, ids, 10, do_sample=False), greedy)
    assert torch.equal(generate(loaded, ids, 10, temperature=0), greedy)
    assert torch.equal(generate(loaded, ids, 10, top_k=1, **run), greedy)
    hotter = generate(loaded, ids, 10, temperature=5.0, **run)
    assert torch.equal(
        hotter, generate(model, ids, 10, **{**SAMPLING, "temperature": 5.0},
                         **run)
    )  # fmt: skip


def test_sampling_settings_precedence(model):
    from gemma4_lite.generation import sampling_settings

    assert sampling_settings(model) == (0.0, None, None)
    assert sampling_settings(model, temperature=0.8) == (0.8, None, None)
    assert sampling_settings(model, True) == (1.0, None, None)
    assert sampling_settings(model, False, 0.8, 3) == (0.0, None, None)
    model.generation_config = dict(SAMPLING)
    try:
        assert sampling_settings(model) == (0.7, 5, 0.9)
        assert sampling_settings(model, top_p=0.5) == (0.7, 5, 0.5)
        assert sampling_settings(model, temperature=0) == (0.0, None, None)
        assert sampling_settings(model, False) == (0.0, None, None)
    finally:
        model.generation_config = {}


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    "settings, error, message",
    [
        ({"temperature": NAN}, ValueError, "temperature must be finite"),
        ({"temperature": INF}, ValueError, "temperature must be finite"),
        ({"temperature": -INF}, ValueError, "temperature"),
        ({"temperature": True}, TypeError, "temperature"),
        ({"temperature": "0.7"}, TypeError, "temperature"),
        ({"do_sample": True, "temperature": 0}, ValueError, "temperature"),
        ({"do_sample": 1}, TypeError, "do_sample"),
        ({"temperature": 1, "top_k": 2.5}, TypeError, "top_k"),
        ({"temperature": 1, "top_k": True}, TypeError, "top_k"),
        ({"temperature": 1, "top_k": -3}, ValueError, "top_k"),
        ({"temperature": 1, "top_p": 1.5}, ValueError, "top_p"),
        ({"temperature": 1, "top_p": -0.1}, ValueError, "top_p"),
        ({"temperature": 1, "top_p": NAN}, ValueError, "top_p"),
        ({"temperature": 1, "top_p": False}, TypeError, "top_p"),
        ({"max_new_tokens": 2.0}, TypeError, "max_new_tokens"),
        ({"max_new_tokens": 2.5}, TypeError, "max_new_tokens"),
        ({"max_new_tokens": True}, TypeError, "max_new_tokens"),
        ({"max_new_tokens": -2}, ValueError, "max_new_tokens"),
        ({"prefill_chunk_size": 1.5}, TypeError, "prefill_chunk_size"),
        ({"seed": 0.5}, TypeError, "seed"),
    ],
)
def test_invalid_settings_fail_before_any_work(
    model, monkeypatch, settings, error, message
):
    def no_work(*args, **kwargs):
        raise AssertionError("work started before the settings were checked")

    monkeypatch.setattr(model, "new_cache", no_work)
    monkeypatch.setattr(model, "logits", no_work)
    settings = {"max_new_tokens": 3, **settings}
    with pytest.raises(error, match=message):
        generate(model, _prompt(model), **settings)


def _left_padded(model, pad):
    ids = _prompt(model, length=9, batch=3)
    ids[0, :4] = pad
    ids[2, :1] = pad
    return ids, (ids != pad).long()


def test_pad_ids_on_the_left_without_a_mask_are_padding(model):
    pad = model.config.pad_token_id
    ids, mask = _left_padded(model, pad)
    expected = generate(model, ids, 8, attention_mask=mask, ignore_eos=True)
    with pytest.warns(UserWarning, match="attention_mask"):
        inferred = generate(model, ids, 8, ignore_eos=True)
    assert torch.equal(inferred, expected)
    # transformers cannot tell padding from an end when pad is an EOS id:
    # the prompt is then taken whole, as with no pad id in it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        whole = generate(model, ids, 8, eos_token_id=[pad], ignore_eos=True)
    ones = torch.ones_like(mask)
    assert torch.equal(
        whole, generate(model, ids, 8, attention_mask=ones, ignore_eos=True)
    )


def test_a_chat_loop_stops_at_the_end_of_each_turn(tmp_path):
    # a folder like an instruction-tuned checkpoint's: tokenizer.json, chat
    # template, and generation_config.json whose EOS ids include <turn|>
    pytest.importorskip("transformers")
    from chat_folder import build_chat_folder

    from gemma4_lite import Tokenizer

    tok = Tokenizer.from_pretrained(build_chat_folder(tmp_path))
    turn = tok.token_to_id("<turn|>")
    model = random_model("dense-tiny", seed=1, vocab_size=len(tok))
    with torch.no_grad():  # makes <turn|> likely, so that turns end
        model.model.embed_tokens.weight[turn] *= 10
    model.generation_config = {"eos_token_id": [tok.eos_id, turn]}
    save_pretrained(model, tmp_path)
    model = Gemma4ForCausalLM.from_pretrained(tmp_path)
    assert model.generation_config["eos_token_id"] == [1, turn]

    chat = [{"role": "system", "content": "Answer in verse."}]
    for question in ("Who's there?", "Nay, answer me.", "Long live the king!"):
        chat.append({"role": "user", "content": question})
        prompt = tok.apply_chat_template(chat, add_generation_prompt=True)
        ids = torch.tensor([prompt])
        new = generate(model, ids, 16)[0, ids.shape[1] :].tolist()
        assert 1 < len(new) < 16 and new.index(turn) == len(new) - 1
        unstopped = generate(model, ids, 16, ignore_eos=True)
        assert unstopped[0, ids.shape[1] :].tolist()[: len(new)] == new
        reply = tok.decode(new)  # the special <turn|> is not in the text
        assert "<turn|>" not in reply and reply == tok.decode(new[:-1])
        chat.append({"role": "assistant", "content": reply})
    text = tok.apply_chat_template(chat, tokenize=False)
    assert text.count("<|turn>model\n") == 3 and text.endswith("<turn|>\n")


def test_pad_ids_without_a_mask_give_transformers_tokens(tmp_path):
    pytest.importorskip("transformers")
    from hf_reference import build_hf_model

    from gemma4_lite import Gemma4Config

    reference = build_hf_model(Gemma4Config.from_preset("dense-tiny"), seed=4)
    reference.save_pretrained(tmp_path)
    ours = Gemma4ForCausalLM.from_pretrained(tmp_path)
    ids, _ = _left_padded(ours, ours.config.pad_token_id)
    with torch.no_grad():  # no attention_mask: transformers infers one
        theirs = reference.generate(
            ids, do_sample=False, max_new_tokens=8, min_new_tokens=0
        )
    with pytest.warns(UserWarning, match="attention_mask"):
        mine = generate(ours, ids, 8, ignore_eos=True)
    assert torch.equal(mine[:, : theirs.shape[1]], theirs)
