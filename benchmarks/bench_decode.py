"""Prefill and decode speed of gemma4_lite against transformers on the same
CPU, weights and config.

Run from the repository root:

    python benchmarks/bench_decode.py [--threads 2] [--repeats 3]

For each config (~20-50M parameters, fp32, batch 1): the same random weights
are loaded into both implementations (transformers saves, gemma4_lite loads),
then
  * prefill: one forward pass over a 512-token prompt that fills the cache;
  * decode: 128 greedy tokens after that prompt, one at a time, with the cache.
transformers runs with eager and with sdpa attention through a hand-written
cached loop (the fastest way to drive it), and through its own `generate`;
measurements are interleaved round by round and the median is kept. Results are
ratios (gemma4_lite speed divided by the best transformers speed), because
absolute times depend on the machine. The "bandwidth bound" column is the
decode speed if each token cost only one read of all weights at the measured
memory bandwidth.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from gemma4_lite import Gemma4Config, Gemma4ForCausalLM, count_parameters  # noqa: E402
from gemma4_lite.config import layer_pattern  # noqa: E402

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


def ours_runner(model: Gemma4ForCausalLM, prompt: torch.Tensor):
    """One measurement: (prefill seconds, seconds for NEW_TOKENS - 1 decode
    steps).
    """
    total = PROMPT + NEW_TOKENS

    def run() -> tuple[float, float]:
        cache = model.new_cache(1, max_length=total)
        start = time.perf_counter()
        logits = model(prompt, cache, last_only=True)
        prefilled = time.perf_counter()
        token = logits[:, -1].argmax(-1, keepdim=True)
        for _ in range(NEW_TOKENS - 1):
            token = model(token, cache)[:, -1].argmax(-1, keepdim=True)
        return prefilled - start, time.perf_counter() - prefilled

    return run


def transformers_runner(model, prompt: torch.Tensor):
    """The fastest way to drive transformers: its own cache, one forward call
    per token, no generate().
    """

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


def generate_runner(model, prompt: torch.Tensor):
    """transformers' generate(), the way most people call it; reported as one
    more decode figure.
    """
    from transformers import GenerationConfig

    settings = GenerationConfig(
        do_sample=False,
        max_new_tokens=NEW_TOKENS,
        min_new_tokens=0,
        eos_token_id=None,
        pad_token_id=0,
    )
    mask = torch.ones_like(prompt)
    return lambda: _timed(
        lambda: model.generate(
            prompt, attention_mask=mask, generation_config=settings
        )
    )


def weight_read_rate(model: Gemma4ForCausalLM) -> float:
    """Tokens/s if a decode step only had to stream every weight once
    (memory-bandwidth bound).
    """
    weights = torch.cat([p.detach().reshape(-1) for p in model.parameters()])
    sink = torch.empty_like(weights)
    t = statistics.median(
        _timed(lambda: sink.copy_(weights)) for _ in range(7)
    )
    return 1.0 / (t / 2)  # a copy reads and writes; a forward pass only reads


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--tiny",
        action="store_true",
        help="the tiny presets: per-step overhead alone",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    import transformers
    from hf_reference import build_hf_model

    transformers.logging.set_verbosity_error()

    rows = []
    for name, config in (TINY_CONFIGS if args.tiny else CONFIGS).items():
        reference = build_hf_model(config, seed=0)
        with tempfile.TemporaryDirectory() as folder:
            reference.save_pretrained(folder)
            ours = Gemma4ForCausalLM.from_pretrained(folder)
        prompt = torch.randint(
            3,
            config.vocab_size,
            (1, PROMPT),
            generator=torch.Generator().manual_seed(0),
        )
        with (
            torch.inference_mode()
        ):  # same weights, same answer, before timing anything
            assert (
                reference(prompt).logits - ours(prompt)
            ).abs().max().item() < 1e-4
        # Rounds interleave the implementations so that drifts in machine load
        # hit them all alike.
        runs: dict[str, list] = {
            "ours": [],
            "eager": [],
            "sdpa": [],
            "generate": [],
        }
        with torch.inference_mode():
            for round_ in range(args.repeats + 1):
                timings = {"ours": ours_runner(ours, prompt)()}
                for impl in ("eager", "sdpa"):
                    reference.set_attn_implementation(impl)
                    timings[impl] = transformers_runner(reference, prompt)()
                timings["generate"] = generate_runner(
                    reference, prompt
                )()  # sdpa, the default
                if round_:  # round 0 warms up caches and allocators
                    for key, value in timings.items():
                        runs[key].append(value)
        med = {
            key: (
                statistics.median(v[0] for v in values),
                statistics.median(v[1] for v in values),
            )
            if key != "generate"
            else statistics.median(values)
            for key, values in runs.items()
        }
        prefill = {
            key: PROMPT / med[key][0] for key in ("ours", "eager", "sdpa")
        }
        decode = {
            key: (NEW_TOKENS - 1) / med[key][1]
            for key in ("ours", "eager", "sdpa")
        }
        decode_generate = NEW_TOKENS / (med["generate"] - med["sdpa"][0])
        bound = weight_read_rate(ours)
        params = count_parameters(config)["total"] / 1e6
        best_prefill = max(prefill["eager"], prefill["sdpa"])
        best_decode = max(decode["eager"], decode["sdpa"], decode_generate)
        rows.append(
            (
                name,
                params,
                prefill["ours"] / best_prefill,
                decode["ours"] / best_decode,
                decode["ours"] / decode_generate,
                decode["ours"] / bound,
            )
        )
        print(
            f"{name}: tokens/s prefill ours {prefill['ours']:.0f}, "
            f"eager {prefill['eager']:.0f}, sdpa {prefill['sdpa']:.0f}; "
            f"decode ours {decode['ours']:.1f}, eager {decode['eager']:.1f}, "
            f"sdpa {decode['sdpa']:.1f}, generate {decode_generate:.1f}; "
            f"bandwidth bound {bound:.1f}",
            file=sys.stderr,
        )

    print(
        f"\ngemma4_lite vs transformers {transformers.__version__}, "
        f"torch {torch.__version__}, {args.threads} threads, fp32, batch 1, "
        f"prompt {PROMPT}, {NEW_TOKENS} new tokens\n"
    )
    print(
        "| config | params | prefill vs best transformers "
        "| decode vs best transformers "
        "| decode vs transformers generate() | decode / bandwidth bound |"
    )
    print("|---|---|---|---|---|---|")
    for name, params, prefill, decode, vs_generate, vs_bound in rows:
        print(
            f"| {name} | {params:.0f}M | {prefill:.2f}x | {decode:.2f}x "
            f"| {vs_generate:.2f}x | {vs_bound:.2f} |"
        )


if __name__ == "__main__":
    main()
