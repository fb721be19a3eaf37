"""Assisted (speculative) decoding against plain greedy decoding for the
book's dense model and its trained drafter, on this CPU.

Run from the repository root (the held-out plays are read from the data
cache, ``data/``, fetched on first use):

    python benchmarks/bench_speculative.py [--threads 1] [--rounds 5]
        [--prompts 8] [--quick] [--no-save]

Target ``checkpoints/shakespeare-dense`` and drafter
``checkpoints/shakespeare-dense-assistant``, both in fp32, batch 1, through
``gemma4_lite.generate`` as a user calls it. Prompts are windows of the
held-out plays (never seen by either model in training); each gets
``--new-tokens`` new tokens.

* Timing: a round decodes every prompt with plain greedy decoding and with
  the drafter at each k (``num_assistant_tokens``) in {1, 2, 3, 4, 6}, in
  that order; the speed-up of a round is plain time over assisted time.
  Medians and ranges over rounds are kept. Every assisted greedy output is
  checked against plain greedy output (they must be equal).
* Counting (deterministic, outside the timing): new tokens per target
  forward pass (the prefill counted as one) and, per draft position, the
  share of rounds whose draft at that position was accepted (with every
  draft before it); greedy, and sampled at temperatures 0.7 and 1.0.
* Costs: one target decode step (1 token), one verify pass of k + 1
  tokens, one drafter step, each timed alone with a prompt-sized cache;
  the verify and draft costs are given relative to the decode step.
* Time split: the shares of assisted decoding's wall time spent drafting,
  in target passes and in the loop's own work, at each k.

Writes ``benchmarks/speculative.json`` unless ``--no-save``.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from gemma4_lite import (
    Gemma4AssistantForCausalLM,
    Gemma4ForCausalLM,
    Tokenizer,
    generate,
)
from gemma4_lite.book import data
from gemma4_lite.book.drafter_training import (
    OUT,
    TARGET,
    held_out_prompts,
    lenders,
    measure,
)

HERE = Path(__file__).resolve().parent
KS = (1, 2, 3, 4, 6)
TEMPERATURES = (0.7, 1.0)


def machine(threads: int) -> dict:
    model = next(
        (line.split(":", 1)[1].strip()
         for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        "unknown",
    )  # fmt: skip
    return dict(
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        cpu=model,
        cores=os.cpu_count(),
        threads=threads,
        load_average=[round(x, 2) for x in os.getloadavg()],
        torch=torch.__version__,
    )


def spread(values: list[float], digits: int = 4) -> dict:
    return dict(
        median=round(statistics.median(values), digits),
        min=round(min(values), digits),
        max=round(max(values), digits),
    )


def timed(fn) -> tuple[float, object]:
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def counts(rounds) -> dict:
    return dict(
        tokens=rounds.tokens,
        forwards=rounds.forwards,
        tokens_per_forward=round(rounds.tokens_per_forward, 3),
        drafted=rounds.drafted,
        accepted=rounds.accepted,
        acceptance=[round(r, 3) for r in rounds.rates()],
    )


@torch.no_grad()
def step_costs(target, drafter, prompt: torch.Tensor, repeats: int) -> dict:
    """Median seconds of a target decode step, of verify passes of k + 1
    tokens and of a drafter step, after a prefill of ``prompt``."""
    which = lenders(target)
    length = prompt.shape[1]
    cache = target.new_cache(1, max_length=length + 8, lookahead=max(KS))
    kv = {i: None for i in which.values()}
    h = target.model(prompt, cache, kv_out=kv)
    view = {kind: kv[i] for kind, i in which.items()}
    embed = target.model.embed_tokens
    token = prompt[:, -1:]

    def verify(n):
        def run():
            cache.seq_len = length
            out = {i: None for i in which.values()}
            target.head(target.model(token.expand(1, n), cache, kv_out=out))

        return run

    def draft():
        drafter(embed(token), h[:, -1:], view, length)

    def median(fn):
        fn()  # warm-up
        return statistics.median(timed(fn)[0] for _ in range(repeats))

    decode = median(verify(1))
    return dict(
        decode_step_seconds=round(decode, 6),
        verify_over_decode={
            str(k): round(median(verify(k + 1)) / decode, 3) for k in KS
        },
        draft_step_over_decode=round(median(draft) / decode, 3),
    )


@torch.no_grad()
def time_split(target, drafter, prompts, n: int, k: int) -> dict:
    """Shares of assisted decoding's wall time spent in the drafter's
    rounds of drafting, in the target's forward passes (prefill and
    verify), and elsewhere (the loop's own work: cutting the keys and
    values for the drafter, acceptance, cache bookkeeping)."""
    spent = {"draft": 0.0, "target": 0.0}
    draft, forward = drafter.draft, target.model.forward

    def clocked(name, fn):
        def run(*args, **kwargs):
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            spent[name] += time.perf_counter() - start
            return out

        return run

    drafter.draft = clocked("draft", draft)
    target.model.forward = clocked("target", forward)
    total = 0.0
    try:
        for x in prompts:
            start = time.perf_counter()
            generate(target, x[None], n, do_sample=False, ignore_eos=True,
                     assistant=drafter, num_assistant_tokens=k)  # fmt: skip
            total += time.perf_counter() - start
    finally:
        del drafter.draft, target.model.forward
    rest = total - spent["draft"] - spent["target"]
    return dict(
        draft=round(spent["draft"] / total, 3),
        target=round(spent["target"] / total, 3),
        other=round(rest / total, 3),
    )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    # one thread: on a shared 2-core machine a batch-1 step with two threads
    # waits at every parallel region for the descheduled one (README)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--prompt-len", type=int, default=32)
    p.add_argument("--new-tokens", type=int, default=64)
    p.add_argument("--target", default=str(TARGET))
    p.add_argument("--drafter", default=str(OUT))
    p.add_argument("--quick", action="store_true",
                   help="2 rounds of 2 prompts (same schema)")  # fmt: skip
    p.add_argument("--no-save", action="store_true")
    args = p.parse_args()
    if args.quick:
        args.rounds, args.prompts = 2, 2
    torch.set_num_threads(args.threads)
    about = machine(args.threads)
    target = Gemma4ForCausalLM.from_pretrained(args.target, dtype="float32")
    drafter = Gemma4AssistantForCausalLM.from_pretrained(
        args.drafter, dtype="float32"
    )
    tok = Tokenizer.from_pretrained(args.target)
    _, _, valid = data.prepare()
    stream = data.encode_works(tok, valid)
    prompts = held_out_prompts(stream, args.prompts, args.prompt_len)
    n = args.new_tokens

    def plain(prompt):
        return generate(target, prompt[None], n, do_sample=False,
                        ignore_eos=True)  # fmt: skip

    def assisted(prompt, k):
        return generate(target, prompt[None], n, do_sample=False,
                        ignore_eos=True, assistant=drafter,
                        num_assistant_tokens=k)  # fmt: skip

    reference = [plain(x) for x in prompts]  # also a warm-up
    seconds = {"plain": [], **{k: [] for k in KS}}
    for r in range(args.rounds):
        total = 0.0
        for x in prompts:
            total += timed(lambda: plain(x))[0]
        seconds["plain"].append(total)
        for k in KS:
            total = 0.0
            for x, ref in zip(prompts, reference):
                t, out = timed(lambda: assisted(x, k))
                assert torch.equal(out, ref), "assisted greedy != greedy"
                total += t
            seconds[k].append(total)
        print(f"round {r + 1}/{args.rounds}: plain "
              f"{seconds['plain'][-1]:.2f} s, k=3 {seconds[3][-1]:.2f} s",
              flush=True)  # fmt: skip
    greedy = {"plain": {"seconds": spread(seconds["plain"])}}
    for k in KS:
        ratios = [a / b for a, b in zip(seconds["plain"], seconds[k])]
        greedy[str(k)] = dict(
            seconds=spread(seconds[k]),
            speedup=spread(ratios, 3),
            **counts(measure(target, drafter, prompts, n, k)),
        )
    split = {str(k): time_split(target, drafter, prompts, n, k) for k in KS}
    sampling = {}
    for temperature in TEMPERATURES:
        sampling[str(temperature)] = {
            str(k): counts(
                measure(
                    target,
                    drafter,
                    prompts,
                    n,
                    k,
                    do_sample=True,
                    temperature=temperature,
                    seed=0,
                )
            )  # fmt: skip
            for k in KS
        }
    costs = step_costs(target, drafter, prompts[:1], 30)
    about["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    result = dict(
        machine=about,
        setup=dict(
            target=args.target,
            drafter=args.drafter,
            dtype="float32",
            attention="eager",
            batch=1,
            prompts=args.prompts,
            prompt_len=args.prompt_len,
            new_tokens=n,
            rounds=args.rounds,
            ks=list(KS),
            temperatures=list(TEMPERATURES),
            quick=args.quick,
        ),
        greedy=greedy,
        sampling=sampling,
        costs=costs,
        time_split=split,
    )
    text = json.dumps(result, indent=1)
    print(text)
    if not args.no_save:
        (HERE / "speculative.json").write_text(text + "\n")


if __name__ == "__main__":
    main()
