"""Prefill and decode speed of gemma4_lite against transformers on the same
CPU, weights and config.

Run from the repository root:

    python benchmarks/bench_decode.py [--threads 2] [--repeats 5] [--tiny]

For each config (~30-40M parameters, fp32, batch 1) the same random weights
are loaded into both implementations (transformers saves, gemma4_lite
loads), then
  * prefill: one forward pass over a 512-token prompt that fills the cache;
  * decode: 128 greedy tokens after that prompt, one at a time, with the
    cache.
gemma4_lite runs eagerly (written-out attention, bitwise equal to
transformers), with its one-token step compiled (``generate(compile=True)``)
and with sdpa attention. transformers runs with eager and sdpa attention
through a hand-written cached loop (the fastest way to drive it without
compiling), through its own ``generate()``, and through ``generate()`` with
a static cache and ``torch.compile``. Rounds interleave all of them and the
medians are kept; compile times are reported apart. The "bandwidth bound" is
the decode speed if each token cost only one read of all weights at the
memory bandwidth measured by copying them.

Writes ``benchmarks/results.json`` and ``benchmarks/decode_speed.png`` (the
README's table and figure) unless ``--no-save``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from gemma4_lite import (  # noqa: E402
    Gemma4Config,
    Gemma4ForCausalLM,
    count_parameters,
)
from gemma4_lite.config import layer_pattern  # noqa: E402
from gemma4_lite.generation import compiled_step  # noqa: E402

PROMPT, NEW_TOKENS = 512, 128
_COMMON = dict(
    vocab_size=8192,
    vocab_size_per_layer_input=8192,
    hidden_size=512,
    num_attention_heads=8,
    head_dim=64,
    global_head_dim=128,
    sliding_window=128,
    max_position_embeddings=4096,
)
CONFIGS = {
    "dense (31B-style, K=V)": Gemma4Config(
        **_COMMON,
        intermediate_size=1536,
        num_hidden_layers=8,
        num_key_value_heads=2,
        num_global_key_value_heads=1,
        attention_k_eq_v=True,
        layer_types=layer_pattern(8, 4),
    ),
    "E-style (PLE, KV sharing)": Gemma4Config(
        **_COMMON,
        intermediate_size=1024,
        num_hidden_layers=10,
        num_key_value_heads=1,
        layer_types=layer_pattern(10, 5),
        hidden_size_per_layer_input=64,
        num_kv_shared_layers=4,
        use_double_wide_mlp=True,
    ),
    "MoE (26B-style)": Gemma4Config(
        **_COMMON,
        intermediate_size=512,
        num_hidden_layers=8,
        num_key_value_heads=2,
        num_global_key_value_heads=1,
        attention_k_eq_v=True,
        layer_types=layer_pattern(8, 4),
        enable_moe_block=True,
        num_experts=16,
        top_k_experts=4,
        moe_intermediate_size=128,
    ),
}

# The tiny presets: almost no arithmetic, so they measure per-step overhead
# alone (--tiny).
TINY_CONFIGS = {
    name: Gemma4Config.from_preset(name)
    for name in ("dense-tiny", "e2b-tiny", "26b-a4b-tiny")
}


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def ours_runner(model: Gemma4ForCausalLM, prompt: torch.Tensor, step):
    """One measurement: (prefill seconds, seconds for NEW_TOKENS - 1 decode
    steps), the way ``generate`` runs them."""
    total = PROMPT + NEW_TOKENS

    def run() -> tuple[float, float]:
        cache = model.new_cache(1, max_length=total)
        start = time.perf_counter()
        logits = model.logits(prompt, cache, last_only=True)
        prefilled = time.perf_counter()
        token = logits[:, -1].argmax(-1, keepdim=True)
        position = torch.tensor([PROMPT])
        for _ in range(NEW_TOKENS - 1):
            logits = step(token, cache, position)
            cache.seq_len += 1
            position += 1
            token = logits[:, -1].argmax(-1, keepdim=True)
        return prefilled - start, time.perf_counter() - prefilled

    return run


def transformers_runner(model, prompt: torch.Tensor):
    """The fastest way to drive transformers uncompiled: its own cache, one
    forward call per token, no generate()."""

    def run() -> tuple[float, float]:
        start = time.perf_counter()
        out = model(prompt, use_cache=True, logits_to_keep=1)
        prefilled = time.perf_counter()
        cache = out.past_key_values
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(NEW_TOKENS - 1):
            out = model(token, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            token = out.logits[:, -1].argmax(-1, keepdim=True)
        return prefilled - start, time.perf_counter() - prefilled

    return run


def generate_runner(model, prompt: torch.Tensor, compiled: bool):
    """transformers' generate(), the way most people call it; with
    ``compiled``, its static cache and automatic torch.compile, which it
    applies on CPU only when told to (CompileConfig._compile_all_devices).
    Returns total seconds."""
    from transformers import CompileConfig, GenerationConfig

    extra = {}
    if compiled:
        config = CompileConfig()
        config._compile_all_devices = True
        extra = dict(cache_implementation="static", compile_config=config)
    settings = GenerationConfig(
        do_sample=False,
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=0,
        eos_token_id=None,
        pad_token_id=0,
        **extra,
    )
    mask = torch.ones_like(prompt)
    return lambda: _timed(
        lambda: model.generate(
            prompt, attention_mask=mask, generation_config=settings
        )
    )


def weight_read_rate(model: Gemma4ForCausalLM, active: int) -> float:
    """Tokens/s if a decode step only had to stream ``active`` weights once
    (memory-bandwidth bound), at the bandwidth of copying all of them."""
    weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    sink = torch.empty_like(weights)
    t = statistics.median(
        _timed(lambda: sink.copy_(weights)) for _ in range(7)
    )
    bytes_per_second = 2 * weights.nbytes / t  # a copy reads and writes
    return bytes_per_second / (active * weights.element_size())


def measure(name: str, config: Gemma4Config, repeats: int) -> dict:
    from hf_reference import build_hf_model

    reference = build_hf_model(config, seed=0)
    with tempfile.TemporaryDirectory() as folder:
        reference.save_pretrained(folder)
        ours = Gemma4ForCausalLM.from_pretrained(folder)
        ours_sdpa = Gemma4ForCausalLM.from_pretrained(
            folder, attn_implementation="sdpa"
        )
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, config.vocab_size, (1, PROMPT), generator=gen)
    with torch.inference_mode():  # same weights, same answer, before timing
        diff = (reference(prompt).logits - ours(prompt)).abs().max().item()
        assert diff < 1e-4, diff
        compile_seconds = _timed(
            ours_runner(ours, prompt, compiled_step(ours))
        )
        hf_compiled = generate_runner(reference, prompt, compiled=True)
        hf_compile_seconds = _timed(hf_compiled)
    runners = {
        "ours eager": ours_runner(ours, prompt, ours.decode_step),
        "ours compiled": ours_runner(ours, prompt, compiled_step(ours)),
        "ours sdpa": ours_runner(ours_sdpa, prompt, ours_sdpa.decode_step),
        "transformers eager": transformers_runner(reference, prompt),
        "transformers sdpa": transformers_runner(reference, prompt),
        "transformers generate": generate_runner(reference, prompt, False),
        "transformers compiled": hf_compiled,
    }
    runs: dict[str, list] = {key: [] for key in runners}
    with torch.inference_mode():
        # rounds interleave the paths so that drifts in machine load hit
        # them all alike; round 0 warms caches and allocators up
        for round_ in range(repeats + 1):
            for key, run in runners.items():
                if key.startswith("transformers") and key.endswith(
                    ("eager", "sdpa")
                ):
                    reference.set_attn_implementation(key.split()[-1])
                if key.endswith(("generate", "compiled")) and key.startswith(
                    "transformers"
                ):
                    reference.set_attn_implementation("sdpa")
                value = run()
                if round_:
                    runs[key].append(value)
    prefill, decode = {}, {}
    hf_prefill = statistics.median(v[0] for v in runs["transformers sdpa"])
    for key, values in runs.items():
        if isinstance(values[0], tuple):
            prefill[key] = PROMPT / statistics.median(v[0] for v in values)
            decode[key] = (NEW_TOKENS - 1) / statistics.median(
                v[1] for v in values
            )
        else:  # generate(): total time less a prefill of the same kind
            seconds = statistics.median(values) - hf_prefill
            decode[key] = NEW_TOKENS / seconds
    counts = count_parameters(config)
    # a step reads every active weight once, but only one row per token of
    # the per-layer embedding table (the token table is read whole: it is
    # also the output head)
    read = counts["active_per_token"] - counts["per_layer_embedding_table"]
    bound = weight_read_rate(ours, read)
    return dict(
        name=name,
        params=counts["total"],
        prefill=prefill,
        decode=decode,
        bound=bound,
        compile_seconds=dict(
            ours=compile_seconds
            - statistics.median(v[1] + v[0] for v in runs["ours compiled"]),
            transformers=hf_compile_seconds
            - statistics.median(runs["transformers compiled"]),
        ),
    )


def table(results: list[dict]) -> str:
    rows = [
        "| config | decode vs best uncompiled transformers "
        "| decode vs compiled transformers | decode / bandwidth bound "
        "| prefill vs best transformers |",
        "|---|---|---|---|---|",
    ]
    for r in results:
        d, p = r["decode"], r["prefill"]
        ours = max(d["ours eager"], d["ours compiled"], d["ours sdpa"])
        plain = max(
            d["transformers eager"],
            d["transformers sdpa"],
            d["transformers generate"],
        )
        ours_prefill = max(p["ours eager"], p["ours sdpa"])
        hf_prefill = max(p["transformers eager"], p["transformers sdpa"])
        rows.append(
            f"| {r['name']} | {ours / plain:.2f}x "
            f"| {ours / d['transformers compiled']:.2f}x "
            f"| {ours / r['bound']:.2f} | {ours_prefill / hf_prefill:.2f}x |"
        )
    return "\n".join(rows)


def figure(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [
        "transformers eager",
        "transformers sdpa",
        "transformers generate",
        "transformers compiled",
        "ours eager",
        "ours sdpa",
        "ours compiled",
    ]
    colours = ["#bbbbbb"] * 4 + ["#8fb3d9", "#5b8fc7", "#1f5fa6"]
    fig, axes = plt.subplots(
        len(results), 1, figsize=(6.75, 2.3 * len(results)), dpi=150
    )
    for ax, r in zip(axes, results):
        values = [r["decode"][k] / r["bound"] for k in keys]
        ax.barh(range(len(keys)), values, color=colours)
        ax.axvline(1.0, color="black", lw=1)
        for i, v in enumerate(values):
            ax.text(v + 0.01, i, f"{v:.2f}", va="center", fontsize=8)
        ax.set_yticks(range(len(keys)), keys, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.1)
        ax.set_title(r["name"], fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=8)
    axes[-1].set_xlabel(
        "decode speed / bandwidth bound (1 = streaming the weights once "
        "per token)",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="the tiny presets: per-step overhead alone",
    )
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    configs = TINY_CONFIGS if args.tiny else CONFIGS
    results = []
    for name, config in configs.items():
        result = measure(name, config, args.repeats)
        results.append(result)
        print(json.dumps(result, indent=1), file=sys.stderr)
    print(
        f"\ngemma4_lite vs transformers {transformers.__version__}, "
        f"torch {torch.__version__}, {args.threads} threads, fp32, batch 1, "
        f"prompt {PROMPT}, {NEW_TOKENS} new tokens\n"
    )
    print(table(results))
    if not args.no_save and not args.tiny:
        (HERE / "results.json").write_text(json.dumps(results, indent=1))
        figure(results, HERE / "decode_speed.png")


if __name__ == "__main__":
    main()
