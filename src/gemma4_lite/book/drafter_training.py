"""Train a multi-token-prediction drafter for the book's dense model.
Chapter: "Multi-token prediction".

The drafter (:class:`gemma4_lite.Gemma4AssistantForCausalLM`) is distilled
from the frozen target (``checkpoints/shakespeare-dense``, chapter
"Training"). Each training sequence is a window of the training plays (the
prompt) followed by the target's own greedy continuation of it, because
greedy continuations are what the drafter must guess when it serves the
target. One teacher-forced pass of the target over the sequence gives what
the drafter receives when it drafts: the final-normed hidden state of each
position, the keys and values of the target's last sliding and last global
layer, and the scaled embeddings; and the target's argmax at each position,
which is the label.

Labels are the target's argmax, not its distribution: greedy acceptance is
an exact match with that argmax, and this small target's distributions are
flat (about 4.4 nats of held-out loss), so most of a KL term's weight would
go to tokens that never decide acceptance.

A round drafts k tokens at one position P, feeding back the drafter's own
hidden state; training unrolls the same recurrence for ``--unroll`` steps.
Step j at anchor t (P = t) reads the embedding of token t + j - 1 and the
hidden state of step j - 1 (for j = 1, the target's at t - 1) and is
labelled with the target's argmax at t + j - 1. It counts only where the
tokens t + 1 .. t + j - 1 are the target's greedy choices, since a draft
after a wrong one is discarded anyway; on the greedy continuation they
always are, which is why the sequences contain one (by default only its
positions are trained as anchors, ``--first-anchor``). Feeding the true
greedy token instead of the drafter's own guess changes nothing that
counts: where the guess is wrong, later drafts are rejected whatever they
are.

At inference the drafter reads the keys of positions up to P - 1 (global)
and the last W + 1 sliding entries; training gives anchor t the keys of
positions < t, and of positions >= t - W - 1 on sliding layers.
transformers also hands over the stale keys of a rejected draft after a
partial acceptance; training does not imitate that.

Run ``python -m gemma4_lite.book.drafter_training --help``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors.torch import save_file

from .. import Gemma4AssistantForCausalLM, Gemma4ForCausalLM, Tokenizer
from ..assistant import AssistantConfig
from ..config import FULL, SLIDING, Gemma4Config
from ..generation import generate, generate_stream
from ..hf_config import config_values
from ..loading import checkpoint_layout
from . import data
from .export import to_hf_dict
from .train import Progress, batches, lr_at, param_groups

TARGET = Path("checkpoints/shakespeare-dense")
OUT = Path("checkpoints/shakespeare-dense-assistant")


# ------------------------------------------------------------------ the model
def drafter_config(
    target: Gemma4Config, layers: int = 2, intermediate: int | None = None
) -> AssistantConfig:
    """A dense-headed drafter of ``layers`` layers (the last global, the
    others sliding) as wide as the target: its queries meet the target's
    keys, so head sizes, KV heads, RoPE and window are the target's."""
    if layers < 2:
        raise ValueError("a drafter needs a sliding and a global layer")
    text = {**to_hf_dict(target), "model_type": "gemma4_text"}
    text.update(
        num_hidden_layers=layers,
        layer_types=[SLIDING] * (layers - 1) + [FULL],
        intermediate_size=intermediate or target.intermediate_size,
        hidden_size_per_layer_input=0,
        vocab_size_per_layer_input=0,
        num_kv_shared_layers=0,
    )
    config = Gemma4Config(**config_values(text))
    # every layer reads the target's keys, which validation refuses for a
    # model on its own (AssistantConfig.from_hf does the same)
    config.num_kv_shared_layers = layers
    return AssistantConfig(config, backbone_hidden_size=target.hidden_size)


def lenders(target: Gemma4ForCausalLM) -> dict[str, int]:
    """The target layer whose keys and values each drafter layer type
    reads: the last non-shared layer of that type."""
    c = target.config
    return {c.layer_types[i]: i for i in range(c.first_kv_shared_layer)}


def init_from_target(
    drafter: Gemma4AssistantForCausalLM, target: Gemma4ForCausalLM
) -> None:
    """Start from the target: its output table, its final norm, and for
    each drafter layer the last target layer of the same type (queries,
    output projection, MLP, norms). The projections start as identities
    (the input projection adds embedding and hidden state), so the first
    step starts near "the target's last layers on a mixed input". An MLP
    of another width than the target's keeps its random start."""
    sd, td = drafter.state_dict(), target.state_dict()
    new = {"model.embed_tokens.weight": td["model.embed_tokens.weight"]}
    new["model.norm.weight"] = td["model.norm.weight"]
    kinds = drafter.config.text_config.layer_types
    source = {k: i for i, k in enumerate(target.config.layer_types)}
    for i, kind in enumerate(kinds):
        mine, theirs = f"model.layers.{i}.", f"model.layers.{source[kind]}."
        for name in sd:
            if not name.startswith(mine):
                continue
            t = td[theirs + name[len(mine) :]]
            if name.endswith("qkv_proj.weight"):  # the query rows
                new[name] = t[: sd[name].shape[0]]
            elif t.shape == sd[name].shape:  # not an MLP of another width
                new[name] = t
    width = drafter.config.backbone_hidden_size
    eye = torch.eye(drafter.config.text_config.hidden_size, width)
    new["pre_projection.weight"] = torch.cat([eye, eye], dim=1)
    new["post_projection.weight"] = eye.T.contiguous()
    drafter.load_state_dict({**sd, **new})


def save_drafter(
    drafter: Gemma4AssistantForCausalLM,
    out: str | Path,
    num_assistant_tokens: int = 3,
    dtype: torch.dtype = torch.bfloat16,
) -> None:
    """``config.json``, ``model.safetensors`` and ``generation_config.json``
    as transformers 5.24 writes them for ``gemma4_assistant``: the stacked
    ``qkv_proj`` saved as ``q_proj``, no ``lm_head.weight`` (tied), and
    ``num_assistant_tokens``, which transformers' assisted generation reads
    from the drafter and fails without."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ours = drafter.state_dict()
    state = {}
    for name, parts in checkpoint_layout(drafter).items():
        t = ours[name].detach().cpu()
        t = t.to(dtype) if t.is_floating_point() else t
        rows = [shape[0] for _, shape in parts]
        pieces = t.split(rows) if len(parts) > 1 else [t]
        for (key, _), piece in zip(parts, pieces):
            state[key] = piece.contiguous().clone()
    save_file(state, str(out / "model.safetensors"), {"format": "pt"})
    c = drafter.config
    text = to_hf_dict(c.text_config)
    text.update(vocab_size_per_layer_input=0, tie_word_embeddings=True)
    config = {
        "architectures": ["Gemma4AssistantForCausalLM"],
        "backbone_hidden_size": c.backbone_hidden_size,
        "centroid_intermediate_top_k": c.centroid_intermediate_top_k,
        "dtype": str(dtype).replace("torch.", ""),
        "model_type": "gemma4_assistant",
        "num_centroids": c.num_centroids,
        "text_config": text,
        "tie_word_embeddings": True,
        "use_ordered_embeddings": c.use_ordered_embeddings,
    }
    (out / "config.json").write_text(json.dumps(config, indent=2) + "\n")
    t = c.text_config
    generation = {
        "bos_token_id": t.bos_token_id,
        "eos_token_id": t.eos_token_id,
        "pad_token_id": t.pad_token_id,
        "num_assistant_tokens": num_assistant_tokens,
    }
    text = json.dumps(generation, indent=2) + "\n"
    (out / "generation_config.json").write_text(text)


# ------------------------------------------------------------------- the data
def greedy_sequences(
    target: Gemma4ForCausalLM,
    prompts: torch.Tensor,
    new_tokens: int,
) -> torch.Tensor:
    """The prompts [B, P] followed by the target's greedy continuation."""
    with torch.no_grad():
        return generate(
            target, prompts, new_tokens, do_sample=False, ignore_eos=True
        )


def sequences(
    target: Gemma4ForCausalLM,
    stream: torch.Tensor,
    batch_size: int,
    prompt_len: int,
    new_tokens: int,
    seed: int,
    pool: int = 8,
):
    """Endless training batches [batch_size, prompt_len + new_tokens]:
    windows of ``stream`` continued greedily by the target, generated
    ``pool`` batches at a time (a wide batch generates faster)."""
    windows = batches(stream, batch_size * pool, prompt_len, seed)
    for prompts in windows:
        yield from greedy_sequences(target, prompts, new_tokens).split(
            batch_size
        )


@dataclass
class Teacher:
    """What the frozen target hands the drafter, for every position of a
    batch of sequences [B, T]."""

    ids: torch.Tensor  # [B, T]
    embeds: torch.Tensor  # [B, T, H] scaled embeddings
    hidden: torch.Tensor  # [B, T, H] final-normed hidden states
    kv: dict  # layer type -> (K, V) [B, kv_heads, T, head_dim]
    argmax: torch.Tensor  # [B, T] the target's next token after each


@torch.no_grad()
def teacher(target: Gemma4ForCausalLM, ids: torch.Tensor) -> Teacher:
    """One teacher-forced pass of the target over ``ids``."""
    which = lenders(target)
    kv = {i: None for i in which.values()}
    h = target.model(ids, kv_out=kv)
    argmax = target.head(h).argmax(-1)
    embeds = target.model.embed_tokens(ids)
    pairs = {kind: kv[i] for kind, i in which.items()}
    return Teacher(ids, embeds, h, pairs, argmax)


def training_masks(length: int, window: int) -> dict[str, torch.Tensor]:
    """[T - 1, T] visibility for anchors t = 1 .. T - 1: keys of positions
    before t, and on sliding layers only the last ``window + 1`` of those
    (the drafter's rule, applied to what it sees after a full accept)."""
    t = torch.arange(1, length)[:, None]
    key = torch.arange(length)[None]
    full = key < t
    return {FULL: full, SLIDING: full & (key >= t - window - 1)}


def unrolled_steps(
    drafter: Gemma4AssistantForCausalLM,
    tf: Teacher,
    unroll: int,
    first: int = 1,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """For draft steps 1 .. ``unroll``, the drafter's logits [B, A, V] at
    the anchors t = ``first`` .. T - 1 and their labels [B, A] (the
    target's argmax, -100 where the step is off the greedy path or past
    the end), unrolled as :meth:`Gemma4AssistantForCausalLM.draft` runs a
    round (see the module docstring)."""
    b, length = tf.ids.shape
    if not 1 <= first < length:
        raise ValueError(f"first anchor {first} not in 1..{length - 1}")
    window = drafter.config.text_config.sliding_window
    masks = {k: m[first - 1 :] for k, m in
             training_masks(length, window).items()}  # fmt: skip
    position = torch.arange(first, length).expand(b, length - first)
    hidden = tf.hidden[:, first - 1 : -1]  # the state before each anchor
    # token s is the target's greedy choice after s - 1
    greedy = F.pad(tf.ids[:, 1:] == tf.argmax[:, :-1], (1, 0), value=False)
    valid = torch.ones_like(position, dtype=torch.bool)
    for j in range(unroll):
        # step j + 1 reads token t + j and is labelled with argmax[t + j]
        embeds = F.pad(tf.embeds[:, first + j :], (0, 0, 0, j))
        labels = F.pad(tf.argmax[:, first + j :], (0, j), value=-100)
        if j:
            valid = valid & F.pad(greedy[:, first + j :], (0, j), value=False)
        out = drafter(embeds, hidden, tf.kv, position, masks)
        hidden = out.hidden
        yield out.logits, labels.masked_fill(~valid, -100)


def unrolled_loss(
    drafter: Gemma4AssistantForCausalLM,
    tf: Teacher,
    unroll: int,
    first: int = 1,
) -> tuple[torch.Tensor, list[float], list[int]]:
    """Mean over draft steps of the cross-entropy with the target's argmax
    (:func:`unrolled_steps`). Returns the loss, each step's top-1
    agreement with the target and each step's count of labelled anchors."""
    losses, agree, counts = [], [], []
    for logits, labels in unrolled_steps(drafter, tf, unroll, first):
        logits = logits.float()
        count = int((labels >= 0).sum())
        counts.append(count)
        if not count:
            agree.append(float("nan"))
            continue
        losses.append(F.cross_entropy(logits.flatten(0, 1), labels.flatten()))
        right = (logits.argmax(-1) == labels) & (labels >= 0)
        agree.append(float(right.sum()) / count)
    return torch.stack(losses).mean(), agree, counts


# ------------------------------------------------------------ the measurement
@dataclass
class Rounds:
    """Counts from assisted decoding: target forward passes, new tokens,
    and per draft position i (0-based) how many rounds drafted it and how
    many accepted it (with every earlier draft)."""

    forwards: int = 0
    tokens: int = 0
    drafted: list | None = None
    accepted: list | None = None

    def add(self, other: Rounds) -> None:
        self.forwards += other.forwards
        self.tokens += other.tokens
        for mine, theirs in (
            (self.drafted, other.drafted),
            (self.accepted, other.accepted),
        ):
            for i, n in enumerate(theirs):
                if i < len(mine):
                    mine[i] += n
                else:
                    mine.append(n)

    @property
    def tokens_per_forward(self) -> float:
        return self.tokens / self.forwards

    def rates(self) -> list[float]:
        return [a / d for a, d in zip(self.accepted, self.drafted) if d]


def assisted_rounds(
    target: Gemma4ForCausalLM,
    drafter: Gemma4AssistantForCausalLM,
    prompt: torch.Tensor,
    new_tokens: int,
    k: int,
    **settings,
) -> tuple[Rounds, torch.Tensor]:
    """Run assisted decoding on one prompt [1, P] and count what it did:
    target passes (prefill included), new tokens, drafts per position and
    accepted ones (a draft is accepted when the emitted tokens repeat it;
    a rejected sampled draft cannot be re-emitted, as the residual
    distribution gives it probability 0). Returns the counts and the
    tokens."""
    events, calls = [], [0]
    draft = drafter.draft

    def recording(*args, **kwargs):
        out = draft(*args, **kwargs)
        events.append(out[0][0].tolist())
        return out

    def count(*_):
        calls[0] += 1

    hook = target.model.register_forward_hook(count)
    drafter.draft = recording
    tokens = []
    try:
        for token in generate_stream(
            target, prompt, new_tokens, assistant=drafter,
            num_assistant_tokens=k, ignore_eos=True, **settings,
        ):  # fmt: skip
            tokens.append(int(token))
            events.append(int(token))
    finally:
        hook.remove()
        del drafter.draft
    rounds = Rounds(calls[0], len(tokens), [0] * k, [0] * k)
    for at, event in enumerate(events):
        if not isinstance(event, list):
            continue
        after = []
        for e in events[at + 1 :]:
            if isinstance(e, list):
                break
            after.append(e)
        n = 0
        while n < min(len(event), len(after)) and event[n] == after[n]:
            n += 1
        for i in range(len(event)):
            rounds.drafted[i] += 1
            rounds.accepted[i] += i < n
    return rounds, torch.tensor(tokens)


def held_out_prompts(
    stream: torch.Tensor, count: int, length: int
) -> torch.Tensor:
    """``count`` prompts [count, length] spread evenly over a held-out
    stream."""
    step = (len(stream) - length) // count
    return torch.stack(
        [stream[i * step : i * step + length] for i in range(count)]
    )


def measure(
    target: Gemma4ForCausalLM,
    drafter: Gemma4AssistantForCausalLM,
    prompts: torch.Tensor,
    new_tokens: int,
    k: int,
    **settings,
) -> Rounds:
    """:func:`assisted_rounds` summed over ``prompts``."""
    total = Rounds(0, 0, [], [])
    for i, prompt in enumerate(prompts):
        extra = dict(settings)
        if settings.get("do_sample"):
            extra["seed"] = settings.get("seed", 0) + i
        rounds, _ = assisted_rounds(
            target, drafter, prompt[None], new_tokens, k, **extra
        )
        total.add(rounds)
    return total


# --------------------------------------------------------------- the command
@dataclass
class DrafterArgs:
    target: str = str(TARGET)
    out: str = str(OUT)
    layers: int = 2
    intermediate: int = 512
    steps: int = 400
    batch_size: int = 8
    prompt_len: int = 32
    new_tokens: int = 64
    unroll: int = 3
    first_anchor: int = 32
    lr: float = 2e-3
    warmup: int = 20
    min_lr_ratio: float = 0.1
    weight_decay: float = 0.0
    clip: float = 1.0
    seed: int = 0
    threads: int = 1
    log_every: int = 10
    eval_prompts: int = 16
    eval_prompt_len: int = 32
    eval_tokens: int = 64
    eval_k: int = 3
    max_minutes: float = 0.0
    save_every: int = 0
    data_dir: str = str(data.DATA_DIR)


def train(
    args: DrafterArgs,
    stream=sys.stderr,
    corpus: tuple[torch.Tensor, torch.Tensor] | None = None,
) -> dict:
    """Train, evaluate on held-out prompts, save; returns the record that
    is also written as ``training.json`` beside the weights. ``corpus``
    (training and held-out token streams) replaces the plays of chapter
    "Training", read with the target's tokenizer."""
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    # sdpa: faster than the written-out attention, and only argmaxes and
    # hidden states are taken from the target here
    target = Gemma4ForCausalLM.from_pretrained(
        args.target, dtype="float32", attn_implementation="sdpa"
    )
    target.requires_grad_(False)
    if corpus is None:
        _, train_works, valid_works = data.prepare(args.data_dir)
        tok = Tokenizer.from_pretrained(args.target)
        corpus = (
            data.encode_works(tok, train_works),
            data.encode_works(tok, valid_works),
        )
    corpus_train, corpus_valid = corpus
    drafter = Gemma4AssistantForCausalLM(
        drafter_config(target.config, args.layers, args.intermediate)
    )
    init_from_target(drafter, target)
    drafter.set_attn_implementation("sdpa")
    drafter.train()
    opt = torch.optim.AdamW(
        param_groups(drafter, args.weight_decay), lr=args.lr,
        betas=(0.9, 0.95),
    )  # fmt: skip
    source = sequences(
        target, corpus_train, args.batch_size, args.prompt_len,
        args.new_tokens, args.seed,
    )  # fmt: skip
    progress = Progress(args.steps, args.log_every, stream)
    log, tokens, start = [], 0, time.perf_counter()
    done = 0
    for step in range(1, args.steps + 1):
        for group in opt.param_groups:
            group["lr"] = lr_at(step - 1, args)
        tf = teacher(target, next(source))
        loss, agree, counts = unrolled_loss(
            drafter, tf, args.unroll, args.first_anchor
        )
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(drafter.parameters(), args.clip)
        opt.step()
        tokens += tf.ids.numel()
        done = step
        minutes = (time.perf_counter() - start) / 60
        out_of_time = bool(args.max_minutes) and minutes > args.max_minutes
        if step % args.log_every == 0 or step == args.steps or out_of_time:
            log.append(dict(
                step=step, loss=round(loss.item(), 4),
                agree=[round(a, 4) for a in agree], labelled=counts,
                seconds=round(time.perf_counter() - start, 1),
            ))  # fmt: skip
        progress.update(step, loss.item(), tokens)
        if args.save_every and step % args.save_every == 0:
            save_drafter(drafter, args.out, args.eval_k)
        if out_of_time:
            print(f"stopping at step {step}: --max-minutes reached",
                  file=stream)  # fmt: skip
            break
    seconds = time.perf_counter() - start
    drafter.eval()
    save_drafter(drafter, args.out, args.eval_k)
    # measure what was saved: the bf16 weights, read back in fp32
    saved = Gemma4AssistantForCausalLM.from_pretrained(
        args.out, dtype="float32"
    )
    prompts = held_out_prompts(
        corpus_valid, args.eval_prompts, args.eval_prompt_len
    )
    rounds = measure(target, saved, prompts, args.eval_tokens, args.eval_k)
    record = dict(
        args=asdict(args),
        steps_done=done,
        train_seconds=round(seconds, 1),
        train_tokens=tokens,
        parameters=sum(p.numel() for p in drafter.parameters()),
        log=log,
        held_out=dict(
            prompts=args.eval_prompts,
            prompt_len=args.eval_prompt_len,
            new_tokens=args.eval_tokens,
            k=args.eval_k,
            forwards=rounds.forwards,
            tokens=rounds.tokens,
            tokens_per_forward=round(rounds.tokens_per_forward, 3),
            drafted=rounds.drafted,
            accepted=rounds.accepted,
            acceptance=[round(r, 3) for r in rounds.rates()],
        ),
    )
    path = Path(args.out) / "training.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(
        f"done: {done} steps in {seconds / 60:.1f} min; held-out k="
        f"{args.eval_k}: {rounds.tokens_per_forward:.2f} new tokens per "
        f"target forward, acceptance per draft position "
        f"{[round(r, 2) for r in rounds.rates()]}",
        file=stream,
    )
    return record


# what each field of DrafterArgs means on the command line (--flag-name)
HELP = {
    "target": "target checkpoint folder",
    "out": "folder to write the drafter to",
    "layers": "drafter layers (the last global, the others sliding)",
    "intermediate": "drafter MLP width",
    "steps": "optimizer steps",
    "batch_size": "sequences per step",
    "prompt_len": "tokens of training text that start each sequence",
    "new_tokens": "greedy target tokens that continue each sequence",
    "unroll": "draft steps unrolled in training",
    "first_anchor": "first position trained as a draft anchor (the prompt "
    "length: train on the greedy continuation only)",
    "lr": "peak learning rate",
    "warmup": "warm-up steps",
    "min_lr_ratio": "final learning rate over the peak (cosine decay)",
    "weight_decay": "AdamW weight decay on matrices",
    "clip": "gradient-norm clip",
    "seed": "seed of init and data",
    "threads": "torch threads (on a busy 2-core machine one thread ran a "
    "training step 10 times faster than two)",
    "log_every": "steps between progress lines and log entries",
    "eval_prompts": "held-out prompts for the final acceptance measurement",
    "eval_prompt_len": "tokens per held-out prompt",
    "eval_tokens": "new tokens per held-out prompt",
    "eval_k": "draft tokens per round when measuring (also written as "
    "num_assistant_tokens)",
    "max_minutes": "stop early after this many minutes of training (0: never)",
    "save_every": "also save the weights every this many steps (0: at the "
    "end only)",
    "data_dir": "cache of the corpus and tokenizer",
}


def parse_args(argv: list[str] | None = None) -> DrafterArgs:
    defaults = asdict(DrafterArgs())
    p = argparse.ArgumentParser(
        prog="python -m gemma4_lite.book.drafter_training",
        description=(
            "Distil a Gemma 4 MTP drafter from a frozen target on its own "
            "greedy continuations of training-split windows, unrolled over "
            "draft steps; save it in transformers' gemma4_assistant format "
            "and report held-out acceptance (chapter 'Multi-token "
            "prediction')."
        ),
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    for name, default in defaults.items():
        p.add_argument(
            "--" + name.replace("_", "-"), type=type(default),
            default=default, help=HELP[name],
        )  # fmt: skip
    return DrafterArgs(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> None:
    train(parse_args(argv))


if __name__ == "__main__":
    main()
