"""Gemma 4's patterns at small scale: controlled experiments with seeds.
Chapter: "Key takeaways" (``notebooks/13_key_takeaways.ipynb``).

Each experiment varies one thing of a tiny Gemma 4 trained on the
Shakespeare corpus and tokenizer of chapter 09 and reports the held-out
loss (nats per token, mean and standard deviation over seeds, and of the
per-seed difference to a reference variant) and what the pattern buys:

* ``hybrid``: all layers global vs 5 sliding : 1 global with windows 32 and
  64, at equal parameters (every head 64 wide, so only the masks and the
  RoPE of the sliding layers change); held-out loss at the training length
  and at twice it, and KV-cache bytes per sequence at both lengths;
* ``kv``: K=V on the global layer off vs on; loss and parameters;
* ``qknorm`` and ``qknorm_high_lr``: QK-norm on vs off at the base peak
  learning rate (3e-3) and at 1.0. Off means no q/k norm and the usual
  1/sqrt(d) scale folded into the query (Gemma 4's attention scale of 1.0
  assumes normed q and k; the V-norm stays). Reported: loss, loss spikes (a
  step whose training loss exceeds the median of the previous 20 steps by
  more than 0.5 nats, after warm-up), divergence (a non-finite loss, which
  ends the run) and failure (diverged, or a held-out loss above ln 4096,
  worse than a uniform guess). The rate 1.0 was chosen on one seed and
  100 steps of 8 x 128 tokens: without QK-norm, 0.03 and 0.1 gave no
  spike, 0.3 two spikes and a loss as good as with it, 1.0 21 spikes and a
  held-out loss of 11.4 (above ln 4096 = 8.3), while with QK-norm 1.0
  recovered to 5.9;
* ``moe``: dense vs MoE at equal active parameters (the dense MLP of 256
  against a dense MLP of 128 beside the top 2 of 8 experts of 64, the
  proportions of chapter 09's shipped pair).

A model used by several experiments (``base`` is in four) is trained once
per seed. With the same seed every variant starts from the same generator
state and sees the same batches, so the per-seed differences are paired.

The base model: vocabulary 4,096, width 128, 6 layers (5 sliding with a
window of 64, then 1 global), 2 query heads and 1 KV head of 64, MLP 256,
tied embedding: 1,412,992 parameters, 524,288 of them the embedding.
Sequences of 256 tokens, batches of 8, 500 steps (1.02M tokens), AdamW with
a 10% linear warm-up and a cosine to a tenth of the peak, gradients
clipped at 1.0, fp32. Validation: the first 32,768 tokens of the two
held-out plays.

Run everything from the repository root (writes
``checkpoints/experiments.json``, the file the chapter reads; progress on
stderr)::

    python -m gemma4_lite.book.experiments --seeds 3 --steps 500

Cost: 8 distinct models x 3 seeds = 24 runs. Measured on 2 threads of a
machine shared with other jobs: when it was quiet, 40 steps of 8 x 256
tokens took 11.5 s (0.29 s a step), so a 500-step run with its two
validations takes about 2.6 min and the 24 runs about 62 min on 2 quiet
cores; a whole 500-step run measured while the machine was loaded took
8.8 min (the base model, held-out loss 4.86 nats per token), which would
make the set about 3.5 hours. ``--only NAME`` (repeatable) runs some
experiments; ``--seeds`` and ``--steps`` shrink the set.

What this scale can show: whether a pattern costs held-out loss at equal
parameters and tokens on one small corpus, and the memory it saves, which
is exact arithmetic at any scale. What it cannot show: long-context
retrieval (sequences of 256 tokens), quality at billions of parameters, or
instabilities that appear only in long, large runs. A difference smaller
than the spread over seeds is no measurable difference.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch
from torch import nn

from ..config import FULL, Gemma4Config, layer_pattern
from ..model import Gemma4ForCausalLM
from . import data, train
from .accounting import count_parameters, kv_cache_bytes
from .train import causal_lm_loss

# Beside the shipped checkpoints of chapter 09, relative to the repository
# root where the command runs (as train.py's --out)
DEFAULT_OUT = Path("checkpoints") / "experiments.json"
SPIKE_NATS = 0.5
SPIKE_WINDOW = 20
BASE_LR = 3e-3
HIGH_LR = 1.0

# fmt: off
BASE = dict(
    vocab_size=4096, vocab_size_per_layer_input=4096, hidden_size=128,
    intermediate_size=256, num_hidden_layers=6,
    layer_types=layer_pattern(6, 6), num_attention_heads=2,
    num_key_value_heads=1, head_dim=64, global_head_dim=64,
    sliding_window=64, max_position_embeddings=4096,
)
# fmt: on


@dataclass(frozen=True)
class Variant:
    """One model and how it is trained: config changes to :data:`BASE`, a
    peak learning rate, and whether QK-norm is removed after building."""

    name: str
    label: str
    changes: dict = field(default_factory=dict)
    lr: float = BASE_LR
    qk_norm: bool = True

    def config(self) -> Gemma4Config:
        return Gemma4Config(**dict(BASE, **self.changes))


VARIANTS = {
    v.name: v
    for v in (
        Variant("base", "5:1, W=64"),
        Variant("global", "all global", {"layer_types": [FULL] * 6}),
        Variant("w32", "5:1, W=32", {"sliding_window": 32}),
        Variant("kv", "K=V on the global layer", {"attention_k_eq_v": True}),
        Variant("qk_off", "QK-norm off", qk_norm=False),
        Variant("qk_on_high", "QK-norm on, lr 1.0", lr=HIGH_LR),
        Variant(
            "qk_off_high", "QK-norm off, lr 1.0", lr=HIGH_LR, qk_norm=False
        ),
        Variant(
            "moe",
            "MoE 8 x 64, top 2, + dense 128",
            dict(
                intermediate_size=128,
                enable_moe_block=True,
                num_experts=8,
                top_k_experts=2,
                moe_intermediate_size=64,
            ),
        ),  # fmt: skip
    )
}

EXPERIMENTS: dict[str, tuple[str, ...]] = {
    "hybrid": ("global", "w32", "base"),
    "kv": ("base", "kv"),
    "qknorm": ("base", "qk_off"),
    "qknorm_high_lr": ("qk_on_high", "qk_off_high"),
    "moe": ("base", "moe"),
}
REFERENCE = {
    "hybrid": "global",
    "kv": "base",
    "qknorm": "base",
    "qknorm_high_lr": "qk_on_high",
    "moe": "base",
}


@dataclass
class Settings:
    """What every run shares (the command line)."""

    steps: int = 500
    seeds: int = 3
    batch_size: int = 8
    seq_len: int = 256
    warmup_fraction: float = 0.1
    valid_tokens: int = 32_768
    threads: int = 2
    data_dir: str = "data"
    balance: float = 0.01


class ScaledQuery(nn.Module):
    """Stands in for ``q_norm`` when QK-norm is off: the query times
    1/sqrt(d), the usual attention scale (Gemma 4's kernels use 1.0)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.scale = dim**-0.5

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.scale


def remove_qk_norm(model: Gemma4ForCausalLM) -> Gemma4ForCausalLM:
    """Replace every ``q_norm`` by :class:`ScaledQuery` and every
    ``k_norm`` by the identity (the V-norm stays)."""
    for module in model.modules():
        if hasattr(module, "q_norm") and hasattr(module, "head_dim"):
            module.q_norm = ScaledQuery(module.head_dim)
            if hasattr(module, "k_norm"):
                module.k_norm = nn.Identity()
    return model


def count_spikes(losses: list[float], skip: int) -> int:
    """Steps after ``skip`` whose loss exceeds the median of the previous
    :data:`SPIKE_WINDOW` steps by more than :data:`SPIKE_NATS`."""
    spikes = 0
    for t in range(max(skip, SPIKE_WINDOW), len(losses)):
        recent = statistics.median(losses[t - SPIKE_WINDOW : t])
        if losses[t] - recent > SPIKE_NATS:
            spikes += 1
    return spikes


def held_out(
    model: Gemma4ForCausalLM, corpus: data.Corpus, length: int, tokens: int
) -> float:
    """Held-out loss (nats per token) over the first ``tokens`` tokens of
    the held-out plays cut into windows of ``length``."""
    chunks = train.valid_chunks(corpus.valid[:tokens], length)
    loss, _ = train.evaluate(model, chunks, corpus.token_bytes, 16, "fp32")
    return loss


def run(
    variant: Variant,
    seed: int,
    settings: Settings,
    corpus: data.Corpus,
    progress: Callable[[int, float, int], None] | None = None,
) -> dict[str, Any]:
    """Train one variant with one seed; its results as a JSON-ready dict."""
    config = variant.config()
    args = train.TrainArgs(
        steps=settings.steps,
        batch_size=settings.batch_size,
        seq_len=settings.seq_len,
        lr=variant.lr,
        warmup=max(1, int(settings.warmup_fraction * settings.steps)),
        seed=seed,
        threads=settings.threads,
        autocast="fp32",
        save=False,
    )
    torch.set_num_threads(settings.threads)
    model = train.build_model(args, config).train()
    if not variant.qk_norm:
        remove_qk_norm(model)
    opt = torch.optim.AdamW(
        train.param_groups(model, args.weight_decay),
        lr=args.lr,
        betas=(0.9, args.beta2),
    )
    experts = config.num_experts if config.enable_moe_block else 0
    stream = train.batches(corpus.train, args.batch_size, args.seq_len, seed)
    losses: list[float] = []
    diverged = False
    start, cpu = time.perf_counter(), time.process_time()
    for step in range(1, args.steps + 1):
        for group in opt.param_groups:
            group["lr"] = train.lr_at(step - 1, args)
        ids = next(stream)
        with train.router_outputs(model) as routed:
            loss = causal_lm_loss(model(ids), ids)
        total = loss
        if experts and settings.balance > 0:
            total = loss + settings.balance * train.balancing_loss(
                routed, experts
            )
        value = float(loss.detach())
        if not math.isfinite(value):
            diverged = True
            break
        opt.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        losses.append(value)
        if progress:
            progress(step, value, step * ids.numel())
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu
    model.eval()
    length = settings.seq_len
    counts = count_parameters(config)
    result: dict[str, Any] = {
        "variant": variant.name,
        "seed": seed,
        "steps_done": len(losses),
        "diverged": diverged,
        "spikes": count_spikes(losses, args.warmup),
        "train_loss": [
            round(x, 4) for x in losses[:: max(1, len(losses) // 60)]
        ],
        "final_train_loss": round(statistics.fmean(losses[-20:]), 4)
        if losses
        else None,
        "valid_loss": None,
        "valid_loss_2x": None,
        "parameters": counts["total"],
        "active_parameters": counts["active_per_token"],
        "uniform_loss": round(math.log(config.vocab_size), 4),
        "kv_bytes": kv_cache_bytes(config, length),
        "kv_bytes_2x": kv_cache_bytes(config, 2 * length),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu_seconds, 1),
    }
    if not diverged:
        with torch.no_grad():
            result["valid_loss"] = round(
                held_out(model, corpus, length, settings.valid_tokens), 4
            )
            result["valid_loss_2x"] = round(
                held_out(model, corpus, 2 * length, settings.valid_tokens), 4
            )
    return result


def _spread(values: list[float]) -> dict[str, float | None]:
    if not values:
        return {"mean": None, "std": None, "n": 0}
    std = statistics.stdev(values) if len(values) > 1 else 0.0
    return {
        "mean": round(statistics.fmean(values), 4),
        "std": round(std, 4),
        "n": len(values),
    }


def summarise(runs: dict[str, dict[str, dict]]) -> dict[str, Any]:
    """Per experiment and variant: mean and standard deviation over seeds
    of the held-out losses, and of the per-seed difference to the
    experiment's reference variant; spikes and divergences counted;
    parameters and KV bytes (the same for every seed)."""
    out: dict[str, Any] = {}
    for name, members in EXPERIMENTS.items():
        ref = runs.get(REFERENCE[name], {})
        rows = {}
        for v in members:
            if v not in runs:
                continue
            seeds = runs[v]
            first = next(iter(seeds.values()))
            row: dict[str, Any] = {"label": VARIANTS[v].label}
            for key in ("valid_loss", "valid_loss_2x"):
                vals = [r[key] for r in seeds.values() if r[key] is not None]
                row[key] = _spread(vals)
                diffs = [
                    r[key] - ref[s][key]
                    for s, r in seeds.items()
                    if s in ref
                    and r[key] is not None
                    and ref[s][key] is not None
                ]
                row[key + "_minus_reference"] = _spread(diffs)
            row["spikes"] = sum(r["spikes"] for r in seeds.values())
            row["diverged"] = sum(r["diverged"] for r in seeds.values())
            row["failed"] = sum(
                r["diverged"] or r["valid_loss"] > r["uniform_loss"]
                for r in seeds.values()
            )
            for key in (
                "parameters", "active_parameters", "kv_bytes", "kv_bytes_2x",
            ):  # fmt: skip
                row[key] = first[key]
            rows[v] = row
        out[name] = {"reference": REFERENCE[name], "variants": rows}
    return out


def load_corpus(data_dir: str) -> data.Corpus:
    path, train_works, valid_works = data.prepare(data_dir)
    tok = data.SentencePieceTokenizer.from_file(path)
    return data.build_corpus(tok, train_works, valid_works)


def run_all(
    settings: Settings,
    only: list[str] | None = None,
    corpus: data.Corpus | None = None,
    stream=None,
) -> dict[str, Any]:
    """Every run the chosen experiments need (each distinct model once per
    seed), with one progress line per run, and their summary."""
    stream = stream or sys.stderr
    chosen = only or list(EXPERIMENTS)
    for name in chosen:
        if name not in EXPERIMENTS:
            raise ValueError(
                f"unknown experiment {name!r}: {list(EXPERIMENTS)}"
            )
    needed: list[str] = []
    for name in chosen:
        needed += [v for v in EXPERIMENTS[name] if v not in needed]
    corpus = corpus or load_corpus(settings.data_dir)
    runs: dict[str, dict[str, dict]] = {v: {} for v in needed}
    total = len(needed) * settings.seeds
    done = 0
    began = time.perf_counter()
    for seed in range(settings.seeds):
        for v in needed:
            done += 1
            print(
                f"run {done}/{total}: {v} ({VARIANTS[v].label}), seed {seed}",
                file=stream,
            )
            bar = train.Progress(
                settings.steps, max(1, settings.steps // 10), stream
            )
            runs[v][str(seed)] = run(
                VARIANTS[v], seed, settings, corpus, bar.update
            )
            elapsed = time.perf_counter() - began
            left = elapsed / done * (total - done)
            print(
                f"  held-out {runs[v][str(seed)]['valid_loss']} nats/token; "
                f"{elapsed / 60:.1f} min so far, about {left / 60:.1f} left",
                file=stream,
            )
    return {
        "settings": asdict(settings),
        "base_config": BASE,
        "variants": {v: asdict(VARIANTS[v]) for v in needed},
        "runs": runs,
        "summary": summarise(runs),
        "torch": torch.__version__,
    }


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    defaults = Settings()
    parser = argparse.ArgumentParser(
        prog="python -m gemma4_lite.book.experiments",
        description=(
            "Train tiny Gemma 4 variants on Shakespeare with several seeds "
            "and write the held-out losses to a JSON file."
        ),
    )
    parser.add_argument(
        "--only", action="append", choices=list(EXPERIMENTS),
        help="run only this experiment (repeatable; default: all)",
    )  # fmt: skip
    helps = {
        "seeds": ("seeds", int, "seeds per variant"),
        "steps": ("steps", int, "optimizer steps per run"),
        "threads": ("threads", int, "torch threads"),
        "batch-size": ("batch_size", int, "sequences per step"),
        "seq-len": ("seq_len", int, "tokens per training sequence"),
        "valid-tokens": ("valid_tokens", int, "held-out tokens evaluated"),
        "data-dir": ("data_dir", str, "cache of the corpus and tokenizer"),
    }
    for flag, (name, kind, text) in helps.items():
        default = getattr(defaults, name)
        parser.add_argument(
            "--" + flag, type=kind, default=default,
            help=f"{text} (default: {default})",
        )  # fmt: skip
    parser.add_argument(
        "--out", default=str(DEFAULT_OUT),
        help=f"the JSON file written (default: {DEFAULT_OUT})",
    )  # fmt: skip
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ns = parse_args(argv)
    settings = Settings(
        steps=ns.steps,
        seeds=ns.seeds,
        threads=ns.threads,
        batch_size=ns.batch_size,
        seq_len=ns.seq_len,
        valid_tokens=ns.valid_tokens,
        data_dir=ns.data_dir,
    )
    result = run_all(settings, ns.only)
    out = Path(ns.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"wrote {out}", file=sys.stderr)
    return result


# ------------------------------------------------ reading the results


def load_results(path: str | Path = DEFAULT_OUT) -> dict[str, Any]:
    """The JSON file :func:`main` writes."""
    return json.loads(Path(path).read_text())


def seed_values(
    result: dict[str, Any], variant: str, key: str = "valid_loss"
) -> dict[str, float | None]:
    """``{seed: value}`` of one variant (``None`` where a run diverged)."""
    return {s: r[key] for s, r in sorted(result["runs"][variant].items())}


def paired_differences(
    result: dict[str, Any],
    variant: str,
    reference: str,
    key: str = "valid_loss",
) -> list[float]:
    """Per seed, ``variant`` minus ``reference`` (both trained on the same
    batches from the same initial generator state), for the seeds where
    both runs finished."""
    mine = seed_values(result, variant, key)
    ref = seed_values(result, reference, key)
    return [
        mine[s] - ref[s]
        for s in mine
        if s in ref and mine[s] is not None and ref[s] is not None
    ]


def measurable(
    result: dict[str, Any],
    variant: str,
    reference: str,
    key: str = "valid_loss",
) -> bool:
    """The chapter's rule for "a measurable difference": every seed's
    paired difference has the same sign, and their mean is larger than
    the spread over seeds (the standard deviation) of either variant's
    own values. Anything less is reported as no measurable difference."""
    diffs = paired_differences(result, variant, reference, key)
    if len(diffs) < 2 or not (
        all(d > 0 for d in diffs) or all(d < 0 for d in diffs)
    ):
        return False
    spread = max(
        statistics.stdev([v for v in seed_values(result, name, key).values()
                          if v is not None] or [0.0, 0.0])
        for name in (variant, reference)
    )  # fmt: skip
    return abs(statistics.fmean(diffs)) > spread


def describe_difference(
    result: dict[str, Any],
    variant: str,
    reference: str,
    key: str = "valid_loss",
) -> str:
    """``"no measurable difference"``, or ``"lower by 0.123 ± 0.004"`` /
    ``"higher by ..."`` (mean ± standard deviation of the per-seed
    differences, nats per token), by :func:`measurable`."""
    if not measurable(result, variant, reference, key):
        return "no measurable difference"
    diffs = paired_differences(result, variant, reference, key)
    mean = statistics.fmean(diffs)
    std = statistics.stdev(diffs)
    word = "lower" if mean < 0 else "higher"
    return f"{word} by {abs(mean):.3f} ± {std:.3f}"


def mean_std(values: list[float | None], digits: int = 3) -> str:
    """``"4.861 ± 0.012"`` over the finished runs (``"-"`` if none)."""
    done = [v for v in values if v is not None]
    if not done:
        return "-"
    std = statistics.stdev(done) if len(done) > 1 else 0.0
    return f"{statistics.fmean(done):.{digits}f} ± {std:.{digits}f}"


if __name__ == "__main__":
    main()
