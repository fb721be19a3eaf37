"""The training loop on the one-play fixture with tiny models: schedule,
weight decay, batches, determinism, the balancing loss, what it writes."""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from gemma4_lite import Gemma4Config, Gemma4ForCausalLM, Tokenizer
from gemma4_lite.book import data, train

FIXTURE = Path(__file__).parents[1] / "fixtures" / "comedy_of_errors_gut.txt"


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    play = FIXTURE.read_text(encoding="utf-8")
    folder = tmp_path_factory.mktemp("tok")
    path = data.train_tokenizer(play, folder / "tok", vocab_size=512)
    tok = data.SentencePieceTokenizer.from_file(path)
    cut = len(play) * 9 // 10
    corpus = data.build_corpus(tok, {"a": play[:cut]}, {"b": play[cut:]})
    return corpus, path


def tiny(moe: bool = False) -> Gemma4Config:
    return Gemma4Config.from_preset(
        "26b-a4b-tiny" if moe else "dense-tiny", vocab_size=512
    )


def args(tmp_path, **changes) -> train.TrainArgs:
    values = dict(out=str(tmp_path / "run"), steps=6, batch_size=2,
                  seq_len=32, warmup=2, eval_every=3, eval_batches=2,
                  lr=1e-2)  # fmt: skip
    return train.TrainArgs(**{**values, **changes})


def test_schedule_warms_up_then_decays_to_the_floor():
    a = train.TrainArgs(steps=100, warmup=10, lr=1.0, min_lr_ratio=0.1)
    lrs = [train.lr_at(s, a) for s in range(100)]
    assert lrs[0] == pytest.approx(0.1) and lrs[9] == pytest.approx(1.0)
    assert all(x >= y for x, y in zip(lrs[9:], lrs[10:]))
    assert train.lr_at(100, a) == pytest.approx(0.1)


def test_weight_decay_on_matrices_only():
    model = Gemma4ForCausalLM(tiny(moe=True))
    decay, rest = train.param_groups(model, 0.1)
    assert decay["weight_decay"] == 0.1 and rest["weight_decay"] == 0.0
    assert all(p.dim() >= 2 for p in decay["params"])
    names = {id(p): n for n, p in model.named_parameters()}
    skipped = [names[id(p)] for p in rest["params"]]
    assert any("norm" in n for n in skipped)
    assert any(n.endswith("per_expert_scale") for n in skipped)
    count = len(decay["params"]) + len(rest["params"])
    assert count == len(list(model.parameters()))


def test_batches_depend_on_the_seed_only():
    stream = torch.arange(1000)
    a = train.batches(stream, 4, 16, seed=3)
    b = train.batches(stream, 4, 16, seed=3)
    first = next(a)
    torch.manual_seed(123)  # the model's seed does not move them
    assert torch.equal(first, next(b)) and first.shape == (4, 16)
    assert torch.equal(first[:, 1:] - first[:, :-1], torch.ones(4, 15).long())


def test_coverage_counts_every_window_position():
    a = train.TrainArgs(steps=5, batch_size=3, seq_len=4, seed=1)
    seen = train.coverage(50, a)
    assert int(seen.sum()) == 5 * 3 * 4
    want = torch.zeros(50, dtype=torch.long)
    stream = torch.arange(50)
    for _, batch in zip(range(5), train.batches(stream, 3, 4, seed=1)):
        for window in batch:
            want[window] += 1
    assert torch.equal(seen, want)


def test_training_lowers_the_loss_and_writes_a_checkpoint(setup, tmp_path):
    corpus, tok = setup
    a = args(tmp_path, steps=12, eval_every=6)
    model, curves = train.train(a, corpus, tok, False, tiny())
    assert curves.loss[-1] < curves.loss[0] - 0.5
    assert [v["step"] for v in curves.valid] == [0, 6, 12]
    assert curves.tokens[-1] == 12 * 64
    out = Path(a.out)
    assert {p.name for p in out.iterdir()} >= {
        "config.json", "model.safetensors", "tokenizer.model", "curves.json",
        "tokenizer.json", "tokenizer_config.json",
    }  # fmt: skip
    # the folder's tokenizer.json gives the ids the model was trained on
    play = FIXTURE.read_text(encoding="utf-8")
    works = {"a": play[: len(play) * 9 // 10]}
    shipped = Tokenizer.from_pretrained(out)
    assert torch.equal(data.encode_works(shipped, works), corpus.train)
    saved = json.loads((out / "curves.json").read_text())
    assert saved["loss"] == curves.loss
    loaded = Gemma4ForCausalLM.from_pretrained(out)
    assert loaded.dtype == torch.bfloat16
    ids = corpus.valid[:20][None]
    with torch.no_grad():
        diff = (loaded.float()(ids) - model(ids)).abs().max()
    assert diff < 0.5  # bf16 weights of the fp32 model


def test_every_point_is_validated_on_the_same_sample(setup, tmp_path):
    corpus, tok = setup
    a = args(tmp_path, save=False, steps=4, eval_every=2, eval_batches=3)
    model, curves = train.train(a, corpus, tok, False, tiny())
    chunks = train.valid_chunks(corpus.valid, a.seq_len)
    sample = train.eval_sample(chunks, 3)
    assert len(chunks) > 3 * 2  # so the sample is not the whole set
    assert [v["sequences"] for v in curves.valid] == [3, 3, 3]
    # the last point too: the returned model on the sample gives its loss
    loss, bpb = train.evaluate(
        model, sample, corpus.token_bytes, 16, a.autocast
    )
    assert curves.valid[-1]["loss"] == pytest.approx(loss, abs=1e-6)
    assert curves.valid[-1]["bpb"] == pytest.approx(bpb, abs=1e-6)
    # the whole held-out set is recorded apart, at the last step only
    full = curves.full_valid
    assert full["step"] == 4 and full["sequences"] == len(chunks)
    loss, _ = train.evaluate(model, chunks, corpus.token_bytes, 16, a.autocast)
    assert full["loss"] == pytest.approx(loss, abs=1e-6)
    assert full["loss"] != pytest.approx(curves.valid[-1]["loss"], abs=1e-4)


def test_eval_sample_spreads_evenly():
    chunks = torch.arange(30).view(10, 3)
    assert train.eval_sample(chunks, 3)[:, 0].tolist() == [0, 9, 18]
    assert len(train.eval_sample(chunks, 20)) == 10


def test_time_steps_interleaves_rounds(setup):
    corpus, _ = setup
    a = train.TrainArgs(batch_size=2, seq_len=32, autocast="fp32")
    times = train.time_steps(
        {"dense": tiny(), "moe": tiny(moe=True)},
        a,
        corpus.train,
        rounds=2,
        steps=1,
        warmup=1,
    )
    assert list(times) == ["dense", "moe"]
    assert all(len(t) == 2 and min(t) > 0 for t in times.values())


def test_command_runs_the_same_arguments():
    import shlex

    a = train.TrainArgs(
        model="moe",
        out="x/y",
        steps=800,
        batch_size=8,
        warmup=50,
        eval_batches=8,
        save=False,
    )
    text = train.command(a)
    assert all(len(line) <= 72 for line in text.splitlines())
    words = shlex.split(text.replace("\\\n", " "))
    start = words.index("gemma4_lite.book.train") + 1
    assert train.parse_args(words[start:]) == a


def test_a_run_is_deterministic(setup, tmp_path):
    corpus, tok = setup
    a = args(tmp_path, save=False)
    _, one = train.train(a, corpus, tok, False, tiny(moe=True))
    _, two = train.train(a, corpus, tok, False, tiny(moe=True))
    assert one.loss == two.loss and one.balance == two.balance
    assert [v["loss"] for v in one.valid] == [v["loss"] for v in two.valid]


def test_stop_after_replays_the_first_steps(setup, tmp_path):
    corpus, tok = setup
    a = args(tmp_path, save=False)
    _, whole = train.train(a, corpus, tok, False, tiny())
    _, first = train.train(a, corpus, tok, False, tiny(), stop_after=3)
    assert first.loss == whole.loss[:3]


def test_balancing_loss_is_recorded_and_trains_the_routers(setup, tmp_path):
    corpus, tok = setup
    runs = {}
    for coef in (0.0, 1.0):
        a = args(tmp_path, save=False, balance=coef, steps=4)
        model, curves = train.train(a, corpus, tok, False, tiny(moe=True))
        runs[coef] = model
        assert all(b is not None and b >= 1.0 - 1e-6 for b in curves.balance)
    off, on = (r.model.layers[0].router.proj.weight for r in runs.values())
    assert not torch.equal(off, on)
    _, dense = train.train(args(tmp_path, save=False, steps=2), corpus, tok,
                           False, tiny())  # fmt: skip
    assert dense.balance == [None, None]


def test_command_line_help():
    result = subprocess.run(
        [sys.executable, "-m", "gemma4_lite.book.train", "--help"],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    for option in ("--model", "--steps", "--balance", "--threads"):
        assert option in result.stdout


def test_parse_args_round_trip():
    a = train.parse_args(["--model", "moe", "--steps", "7", "--no-save"])
    assert (a.model, a.steps, a.save) == ("moe", 7, False)
    assert a.lr == train.TrainArgs().lr
