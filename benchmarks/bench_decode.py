"""Prefill and decode speed of gemma4_lite against transformers on the same
CPU, weights and config.

Run from the repository root:

    python benchmarks/bench_decode.py [--threads 2] [--repeats 3] [--tiny]
        [--only NAME ...]

For each config (~30-40M parameters, fp32, batch 1) the same random weights
are loaded into both implementations (transformers saves, gemma4_lite
loads), then
  * prefill: one forward pass over a 512-token prompt that fills the cache;
  * decode: 64 greedy tokens after that prompt, one at a time, with the
    cache.
gemma4_lite runs eagerly (written-out attention, bitwise equal to
transformers), with its one-token step compiled (a hand-written loop over
the compiled step, and ``generate(compile=True)`` itself, whose per-step
host work is then included) and with sdpa attention. transformers runs
with eager and sdpa attention through a hand-written cached loop (the
fastest way to drive it without compiling), through its own
``generate()``, and through ``generate()`` with a static cache and
``torch.compile``. Rounds interleave all of them, the
bandwidth included, and the medians and ranges over rounds are kept;
compile times are reported apart. The "bandwidth bound" is the decode speed
if each token cost only one read of all weights at the memory bandwidth
measured by copying them (in the same round). ``--profile`` instead prints
where one compiled decode step spends its time, and ``--prefill-only``
times prefill alone over many cheap rounds.

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
import torch.nn.functional as F
from torch import nn

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent / "tests"))

from gemma4_lite import Gemma4Config, Gemma4ForCausalLM  # noqa: E402
from gemma4_lite.book.accounting import count_parameters  # noqa: E402
from gemma4_lite.config import layer_pattern  # noqa: E402
from gemma4_lite.generation import compiled_step  # noqa: E402

PROMPT, NEW_TOKENS = 512, 64
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
    # the configuration of the independent check in issue 20 (measured
    # there through generate(compile=True)): plain GQA, no K=V
    "dense (plain GQA)": Gemma4Config(
        **_COMMON,
        intermediate_size=2048,
        num_hidden_layers=8,
        num_key_value_heads=2,
        layer_types=layer_pattern(8, 4),
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
    steps, the fastest step's seconds), the way ``generate`` runs them."""
    total = PROMPT + NEW_TOKENS

    def run() -> tuple[float, float]:
        cache = model.new_cache(1, max_length=total)
        start = time.perf_counter()
        logits = model.logits(prompt, cache, last_only=True)
        prefilled = time.perf_counter()
        token = logits[:, -1].argmax(-1, keepdim=True)
        position = torch.tensor([PROMPT])
        fastest, last = float("inf"), prefilled
        for _ in range(NEW_TOKENS - 1):
            logits = step(token, cache, position)
            cache.seq_len += 1
            position += 1
            token = logits[:, -1].argmax(-1, keepdim=True)
            now = time.perf_counter()
            fastest, last = min(fastest, now - last), now
        return prefilled - start, last - prefilled, fastest

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
        fastest, last = float("inf"), prefilled
        for _ in range(NEW_TOKENS - 1):
            out = model(token, past_key_values=cache, use_cache=True)
            cache = out.past_key_values
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            now = time.perf_counter()
            fastest, last = min(fastest, now - last), now
        return prefilled - start, last - prefilled, fastest

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


def weight_read_rate(
    model: Gemma4ForCausalLM, active: int
) -> tuple[float, float]:
    """Tokens/s if a decode step only had to stream ``active`` weights once
    (memory-bandwidth bound), at the bandwidth of copying all of them: the
    median and the fastest of 7 copies."""
    weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    sink = torch.empty_like(weights)
    times = [_timed(lambda: sink.copy_(weights)) for _ in range(7)]
    bytes_per_second = 2 * weights.nbytes  # a copy reads and writes
    per_token = active * weights.element_size()
    return tuple(
        bytes_per_second / t / per_token
        for t in (statistics.median(times), min(times))
    )


def ours_generate_runner(model: Gemma4ForCausalLM, prompt: torch.Tensor):
    """``generate(compile=True)`` as a user calls it: prefill, then the
    compiled step with generate_stream's per-step host work (sampling,
    the EOS bookkeeping, yielding). Returns total seconds."""
    from gemma4_lite import generate

    return lambda: _timed(
        lambda: generate(model, prompt, NEW_TOKENS, compile=True)
    )


def _rates(values: list, bounds: list[tuple[float, float]]) -> dict:
    """Median and range over rounds of a path's prefill and decode rates
    (tokens/s), and of its decode rate over the same round's bound; for
    paths timed step by step, also the fastest step against the fastest
    copy (what a step costs when no other job takes a core from it)."""
    decode = [(NEW_TOKENS - 1) / v[1] for v in values]
    ratio = [d / b[0] for d, b in zip(decode, bounds)]
    out = dict(
        decode=statistics.median(decode),
        decode_range=[min(decode), max(decode)],
        of_bound=statistics.median(ratio),
        of_bound_range=[min(ratio), max(ratio)],
    )
    if len(values[0]) == 3:
        fastest = 1 / min(v[2] for v in values)
        out.update(
            fastest_step=fastest,
            fastest_of_bound=fastest / max(b[1] for b in bounds),
        )
    if values[0][0] is not None:
        prefill = [PROMPT / v[0] for v in values]
        out.update(
            prefill=statistics.median(prefill),
            prefill_range=[min(prefill), max(prefill)],
        )
    return out


def _models(config: Gemma4Config):
    """transformers' model with random weights, gemma4_lite loading them
    (eager and sdpa attention), and the prompt."""
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
    return reference, ours, ours_sdpa, prompt


def measure_prefill(name: str, config: Gemma4Config, repeats: int) -> dict:
    """Prefill alone (``--prefill-only``): each round times one prefill of
    every path in turn, as the full run does (ours with a cache sized for
    the decode that would follow, transformers with its own cache and
    ``logits_to_keep=1``); per round, our best over transformers' best."""
    reference, ours, ours_sdpa, prompt = _models(config)

    def ours_prefill(model):
        def run():
            cache = model.new_cache(1, max_length=PROMPT + NEW_TOKENS)
            return _timed(lambda: model.logits(prompt, cache, last_only=True))

        return run

    def theirs_prefill(kind):
        def run():
            reference.set_attn_implementation(kind)
            return _timed(
                lambda: reference(prompt, use_cache=True, logits_to_keep=1)
            )

        return run

    paths = {
        "ours eager": ours_prefill(ours),
        "ours sdpa": ours_prefill(ours_sdpa),
        "transformers eager": theirs_prefill("eager"),
        "transformers sdpa": theirs_prefill("sdpa"),
    }
    times: dict[str, list[float]] = {key: [] for key in paths}
    with torch.inference_mode():
        for run in paths.values():  # warm up allocators and kernels
            run()
        for _ in range(repeats):
            for key, run in paths.items():
                times[key].append(run())
    ratios = [
        min(times["transformers eager"][i], times["transformers sdpa"][i])
        / min(times["ours eager"][i], times["ours sdpa"][i])
        for i in range(repeats)
    ]
    rates = {
        key: dict(
            prefill=PROMPT / statistics.median(t),
            prefill_range=[PROMPT / max(t), PROMPT / min(t)],
        )
        for key, t in times.items()
    }
    return dict(
        name=name,
        paths=rates,
        ratio=statistics.median(ratios),
        ratio_range=[min(ratios), max(ratios)],
    )


def prefill_table(results: list[dict]) -> str:
    rows = [
        "| config | ours sdpa, tokens/s (range) "
        "| transformers sdpa, tokens/s (range) "
        "| ours best / transformers best, per round: median (range) |",
        "|---|---|---|---|",
    ]
    for r in results:
        cells = []
        for key in ("ours sdpa", "transformers sdpa"):
            p = r["paths"][key]
            low, high = p["prefill_range"]
            cells.append(f"{p['prefill']:.0f} ({low:.0f}-{high:.0f})")
        low, high = r["ratio_range"]
        rows.append(
            f"| {r['name']} | {cells[0]} | {cells[1]} "
            f"| {r['ratio']:.2f}x ({low:.2f}-{high:.2f}) |"
        )
    return "\n".join(rows)


def measure(name: str, config: Gemma4Config, repeats: int) -> dict:
    reference, ours, ours_sdpa, prompt = _models(config)
    counts = count_parameters(config)
    # a step reads every active weight once, but only one row per token of
    # the per-layer embedding table (the token table is read whole: it is
    # also the output head)
    read = counts["active_per_token"] - counts["per_layer_embedding_table"]
    with torch.inference_mode():  # same weights, same answer, before timing
        assert torch.equal(reference(prompt).logits, ours(prompt))
        ours_sdpa(prompt)
        compile_seconds = _timed(
            ours_runner(ours, prompt, compiled_step(ours))
        )
        hf_compiled = generate_runner(reference, prompt, compiled=True)
        hf_compile_seconds = _timed(hf_compiled)
    runners = {
        "ours eager": ours_runner(ours, prompt, ours.decode_step),
        "ours compiled": ours_runner(ours, prompt, compiled_step(ours)),
        "ours generate(compile=True)": ours_generate_runner(ours, prompt),
        "ours sdpa": ours_runner(ours_sdpa, prompt, ours_sdpa.decode_step),
        "transformers eager": transformers_runner(reference, prompt),
        "transformers sdpa": transformers_runner(reference, prompt),
        "transformers generate": generate_runner(reference, prompt, False),
        "transformers compiled": hf_compiled,
    }
    runs: dict[str, list] = {key: [] for key in runners}
    bounds = []
    with torch.inference_mode():
        # rounds interleave the paths (and the bandwidth measurement) so
        # that drifts in machine load hit them all alike; the checks and
        # compilations above warmed caches and allocators up
        for _ in range(repeats):
            bounds.append(weight_read_rate(ours, read))
            for key, run in runners.items():
                if key.startswith("transformers"):
                    kind = key.split()[-1]
                    reference.set_attn_implementation(
                        kind if kind in ("eager", "sdpa") else "sdpa"
                    )
                runs[key].append(run())
    # generate() gives total seconds: take off a prefill of the same kind
    # (the median of the same implementation's hand-written loop) and count
    # the NEW_TOKENS - 1 decode steps that follow it
    own = statistics.median(v[0] for v in runs["ours compiled"])
    theirs = statistics.median(v[0] for v in runs["transformers sdpa"])
    for key, values in runs.items():
        if not isinstance(values[0], tuple):
            prefill = own if key.startswith("ours") else theirs
            runs[key] = [(None, t - prefill) for t in values]
    paths = {key: _rates(values, bounds) for key, values in runs.items()}
    return dict(
        name=name,
        params=counts["total"],
        paths=paths,
        bound=statistics.median(b[0] for b in bounds),
        bound_range=[min(b[0] for b in bounds), max(b[0] for b in bounds)],
        bound_fastest=max(b[1] for b in bounds),
        compile_seconds=dict(
            ours=compile_seconds
            - statistics.median(v[0] + v[1] for v in runs["ours compiled"]),
            transformers=hf_compile_seconds
            - statistics.median(
                v[1] + theirs for v in runs["transformers compiled"]
            ),
        ),
    )


def _best(r: dict, keys: list[str], what: str = "decode") -> float:
    return max(r["paths"][k][what] for k in keys)


OURS = ["ours eager", "ours compiled", "ours sdpa"]
PLAIN = ["transformers eager", "transformers sdpa", "transformers generate"]


def table(results: list[dict]) -> str:
    rows = [
        "| config | decode vs best uncompiled transformers "
        "| decode vs compiled transformers "
        "| compiled decode / bandwidth bound (range) "
        "| generate(compile=True) / bound "
        "| fastest compiled step / fastest copy "
        "| prefill vs best transformers |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        p = r["paths"]
        ours = _best(r, OURS)
        low, high = p["ours compiled"]["of_bound_range"]
        prefill = _best(r, ["ours eager", "ours sdpa"], "prefill")
        hf_prefill = _best(
            r, ["transformers eager", "transformers sdpa"], "prefill"
        )
        rows.append(
            f"| {r['name']} | {ours / _best(r, PLAIN):.2f}x "
            f"| {ours / p['transformers compiled']['decode']:.2f}x "
            f"| {p['ours compiled']['of_bound']:.2f} ({low:.2f}-{high:.2f}) "
            f"| {p['ours generate(compile=True)']['of_bound']:.2f} "
            f"| {p['ours compiled']['fastest_of_bound']:.2f} "
            f"| {prefill / hf_prefill:.2f}x |"
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
        "ours generate(compile=True)",
    ]
    colours = ["#bbbbbb"] * 4 + ["#8fb3d9", "#5b8fc7", "#1f5fa6", "#1f5fa6"]
    fig, axes = plt.subplots(
        len(results), 1, figsize=(6.75, 2.4 * len(results))
    )
    for ax, r in zip(axes, results):
        paths = [r["paths"][k] for k in keys]
        values = [p["of_bound"] for p in paths]
        spread = [
            [v - p["of_bound_range"][0] for v, p in zip(values, paths)],
            [p["of_bound_range"][1] - v for v, p in zip(values, paths)],
        ]
        ax.barh(range(len(keys)), values, color=colours, xerr=spread)
        ax.axvline(1.0, color="black", lw=1)
        for i, p in enumerate(paths):
            ax.text(
                p["of_bound_range"][1] + 0.02, i, f"{values[i]:.2f}",
                va="center", fontsize=8,
            )  # fmt: skip
        ax.set_yticks(range(len(keys)), keys, fontsize=8)
        ax.invert_yaxis()
        ax.set_xlim(0, 1.25)
        ax.set_title(r["name"], fontsize=9, loc="left")
        ax.tick_params(axis="x", labelsize=8)
    axes[-1].set_xlabel(
        "decode speed / bandwidth bound of the same round (median, range "
        "over rounds)",
        fontsize=8,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=150)


def profile_step(config: Gemma4Config, steps: int = 40) -> str:
    """Where one compiled decode step spends its time: torch's profiler
    over ``steps`` steps, grouped into the weight matrix products, the
    attention products, the rest of the compiled graph (fused pointwise
    kernels, softmax, cache writes) and the host work around the graph
    (guards, the call, Python); beside the bound's time for one step."""
    from torch.profiler import ProfilerActivity, profile

    torch.manual_seed(0)
    model = Gemma4ForCausalLM(config).eval()
    counts = count_parameters(config)
    read = counts["active_per_token"] - counts["per_layer_embedding_table"]
    gen = torch.Generator().manual_seed(0)
    prompt = torch.randint(3, config.vocab_size, (1, PROMPT), generator=gen)
    step = compiled_step(model)
    with torch.inference_mode():
        for warm in (True, False):
            cache = model.new_cache(1, max_length=PROMPT + steps + 1)
            model.logits(prompt, cache, last_only=True)
            token, position = torch.tensor([[5]]), torch.tensor([PROMPT])
            with profile(activities=[ProfilerActivity.CPU]) as prof:
                start = time.perf_counter()
                for _ in range(steps):
                    step(token, cache, position)
                    cache.seq_len += 1
                    position += 1
                wall = (time.perf_counter() - start) / steps
        bound = 1 / weight_read_rate(model, read)[1]
    groups = dict(weights=0.0, attention=0.0, graph=0.0)
    for event in prof.key_averages():
        us = event.self_cpu_time_total / steps
        if event.key in (
            "aten::mm",
            "aten::addmm",
            "aten::_weight_int8pack_mm",
        ):
            groups["weights"] += us
        elif event.key in ("aten::bmm", "aten::baddbmm"):
            groups["attention"] += us
        elif event.key.startswith("## Call CompiledFxGraph"):
            groups["graph"] += us
    inside = sum(groups.values())
    bare = bare_products(model)
    lines = [
        f"one compiled step: {wall * 1e6:.0f} us wall, bound "
        f"{bound * 1e6:.0f} us (ratio {bound / wall:.2f})",
        f"  bare products over the same weights, no model: "
        f"{bare * 1e6:.0f} us (ratio {bound / bare:.2f})",
    ]
    for key, us in groups.items():
        lines.append(f"  {key:10} {us:7.0f} us  {us / (wall * 1e6):.0%}")
    rest = wall * 1e6 - inside
    lines.append(f"  {'host':10} {rest:7.0f} us  {rest / (wall * 1e6):.0%}")
    return "\n".join(lines)


def bare_products(model: Gemma4ForCausalLM, repeats: int = 30) -> float:
    """Seconds for the matrix products of one decode step and nothing
    else: one ``F.linear`` of a single row per weight matrix a token uses
    (every projection, the head and, with experts, ``top_k`` experts'
    two matrices), called in a plain loop. What the CPU's matrix-vector
    kernel alone allows, whatever a model around it does."""
    config = model.config
    mats = [m.weight for m in model.modules() if isinstance(m, nn.Linear)]
    mats.append(model.model.embed_tokens.weight)  # the tied head
    for layer in model.model.layers:
        if config.enable_moe_block:
            for e in range(config.top_k_experts):
                mats += [layer.experts.gate_up_proj[e]]
                mats += [layer.experts.down_proj[e]]
    rows = [torch.randn(1, w.shape[1]) for w in mats]
    times = []
    with torch.inference_mode():
        for _ in range(repeats):
            start = time.perf_counter()
            for w, x in zip(mats, rows):
                F.linear(x, w)
            times.append(time.perf_counter() - start)
    return statistics.median(times)


def machine() -> dict:
    import os
    import platform

    model = next(
        (line.split(":", 1)[1].strip()
         for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )  # fmt: skip
    return dict(
        date=time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        cpu=model,
        cores=os.cpu_count(),
        load_average=os.getloadavg(),
        torch=torch.__version__,
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="the tiny presets: per-step overhead alone",
    )
    parser.add_argument("--only", nargs="*", help="config names to run")
    parser.add_argument(
        "--profile", action="store_true", help="where a step's time goes"
    )
    parser.add_argument(
        "--prefill-only",
        action="store_true",
        help="time prefill alone, round by round (saves nothing)",
    )
    parser.add_argument("--no-save", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformers

    transformers.logging.set_verbosity_error()
    configs = TINY_CONFIGS if args.tiny else CONFIGS
    if args.only:
        configs = {k: v for k, v in configs.items() if k in args.only}
    if args.profile:
        for name, config in configs.items():
            print(f"{name}\n{profile_step(config)}")
        return
    if args.prefill_only:
        about = machine()
        results = [
            measure_prefill(name, config, args.repeats)
            for name, config in configs.items()
        ]
        print(json.dumps(results, indent=1), file=sys.stderr)
        print(
            f"\nprefill of {PROMPT} tokens, {args.threads} threads, "
            f"{args.repeats} rounds; {about['date']}, load "
            f"{about['load_average']} -> {__import__('os').getloadavg()}\n"
        )
        print(prefill_table(results))
        return
    about = machine()
    results = []
    for name, config in configs.items():
        result = measure(name, config, args.repeats)
        results.append(result)
        print(json.dumps(result, indent=1), file=sys.stderr)
    about["load_average_after"] = __import__("os").getloadavg()
    print(
        f"\ngemma4_lite vs transformers {transformers.__version__}, "
        f"torch {torch.__version__}, {args.threads} threads, fp32, batch 1, "
        f"prompt {PROMPT}, {NEW_TOKENS} new tokens, {args.repeats} rounds; "
        f"{about['date']}, {about['cpu']}, load {about['load_average']}\n"
    )
    print(table(results))
    if not args.no_save and not args.tiny:
        about.update(threads=args.threads, rounds=args.repeats,
                     transformers=transformers.__version__)  # fmt: skip
        out = dict(machine=about, results=results)
        (HERE / "results.json").write_text(json.dumps(out, indent=1))
        figure(results, HERE / "decode_speed.png")


if __name__ == "__main__":
    main()
