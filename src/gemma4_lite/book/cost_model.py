"""What one decode step costs, computed from a config: FLOPs per token,
bytes read per step, a roofline estimate of tokens per second on a few
devices, and which model fits where. Chapter: "Performance trade-offs".

Conventions, used throughout:

* A multiply-add is 2 FLOPs. Only matrix products are counted (norms, the
  activation, the softmax and RoPE are elementwise and far below 1%).
* "Context" is the number of tokens a new token can see, itself included:
  the token at position ``context - 1``. A sliding layer reads
  ``min(context, W)`` keys, a global layer ``context``.
* Weights are stored in bf16, int8 or int4 (``PRECISION_BYTES``) and
  multiplied in bf16 (weight-only quantisation, as llama.cpp's and vLLM's
  W8A16/W4A16 kernels do at decode), so the peak FLOP/s used is the bf16
  one for these formats. ``fp8`` weights multiply in FP8 on a device that
  has an FP8 peak (the H100: W8A8). Quantisation scales are ignored (Q4_0
  adds half a bit per weight). The KV cache stays bf16.
* Memory: a device holds its maker's capacity in bytes minus a runtime
  reserve (``RUNTIME_RESERVE``, 10%).
* A decode step of batch B reads every weight it needs once (not once per
  sequence) and every sequence's KV cache. A dense model needs all its
  weights; a mixture of experts only the experts some token in the batch
  was routed to.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..config import Gemma4Config
from ..moe import Gemma4Router
from .accounting import count_parameters, kv_cache_bytes, layer_parameters

GB = 1e9
PRECISION_BYTES = {
    "fp32": 4.0,
    "bf16": 2.0,
    "fp8": 1.0,
    "int8": 1.0,
    "int4": 0.5,
}
# The weight formats the chapter compares (fp32 is for the CPU twins)
WEIGHT_FORMATS = ("bf16", "int8", "int4")


# ------------------------------------------------------------------ FLOPs
def visible_keys(config: Gemma4Config, layer: int, context: int) -> int:
    """Keys one query reads in ``layer`` when it sees ``context`` tokens."""
    if config.is_sliding(layer):
        return min(context, config.sliding_window)
    return context


def layer_matmul_parameters(config: Gemma4Config, layer: int) -> dict:
    """Weights of one layer that a token multiplies by, by part: the
    attention projections, the dense MLP, the router's projection and the
    experts a token runs (``top_k`` of them). Gains and scales are left
    out: they are elementwise."""
    parts = layer_parameters(config, layer)
    d = config.head_dim_for(layer)
    gains = d if config.is_kv_shared(layer) else 2 * d  # q_norm (+ k_norm)
    out = {
        "attention": parts["attention"] - gains,
        "mlp": parts["mlp"],
        "router": 0,
        "experts": 0,
        "per_layer_input": 0,
    }
    if config.enable_moe_block:
        out["router"] = config.num_experts * config.hidden_size
        out["experts"] = (
            parts["experts"] * config.top_k_experts // config.num_experts
        )
    if parts["per_layer_input"]:  # the gate and the projection back
        out["per_layer_input"] = parts["per_layer_input"] - config.hidden_size
    return out


def flops_per_token(config: Gemma4Config, context: int) -> dict[str, int]:
    """FLOPs one new token costs when it sees ``context`` tokens.

    ``weights``: 2 per weight the token multiplies by (attention
    projections, dense MLP, router, the top-k experts, the per-layer-input
    projections and the tied head; the embedding lookup is free).
    ``attention``: q.k and the weighted sum of values, 2 * heads * head_dim
    FLOPs each per key read. Both are exact for the package's forward pass
    (tested against ``torch.utils.flop_counter`` on the tiny twins).
    """
    if context < 1:
        raise ValueError("context must be at least 1 (the token itself)")
    weights = config.vocab_size * config.hidden_size  # the tied head
    p = config.hidden_size_per_layer_input
    if p:  # the model-wide projection of per-layer inputs
        weights += config.hidden_size * config.num_hidden_layers * p
    attention = 0
    for layer in range(config.num_hidden_layers):
        weights += sum(layer_matmul_parameters(config, layer).values())
        heads, d = config.num_attention_heads, config.head_dim_for(layer)
        attention += 4 * heads * d * visible_keys(config, layer, context)
    weights *= 2
    return {
        "weights": weights,
        "attention": attention,
        "total": weights + attention,
    }


# ------------------------------------------------------------------ bytes
def expected_distinct_experts(
    num_experts: int, top_k: int, tokens: int
) -> float:
    """Experts of one layer that at least one of ``tokens`` tokens uses, on
    average, if each token picks ``top_k`` of ``num_experts`` uniformly:
    an expert is missed by one token with probability 1 - k/E."""
    return num_experts * (1 - (1 - top_k / num_experts) ** tokens)


def simulate_distinct_experts(
    router: Gemma4Router,
    tokens: int,
    trials: int = 200,
    *,
    seed: int = 0,
) -> float:
    """The same count measured with the package's router: ``trials``
    batches of ``tokens`` random residual vectors, the mean number of
    distinct experts the router picks per batch."""
    gen = torch.Generator().manual_seed(seed)
    hidden = router.proj.in_features
    x = torch.randn(trials * tokens, hidden, generator=gen)
    with torch.no_grad():
        chosen = router(x).experts.view(trials, tokens * router.top_k)
    used = [row.unique().numel() for row in chosen]
    return sum(used) / trials


def stored_weight_parameters(config: Gemma4Config) -> int:
    """Parameters that must sit in fast memory: everything but the
    per-layer-embedding table (a lookup of a few rows per token, which the
    edge models keep in flash)."""
    return count_parameters(config)["total_without_per_layer_table"]


def weight_bytes_read(
    config: Gemma4Config, batch: int, precision: str = "bf16"
) -> float:
    """Bytes of weights one decode step of ``batch`` tokens reads: all of
    them for a dense model; for a mixture of experts, the experts some
    token uses (expected under uniform routing), which grows with batch."""
    counts = count_parameters(config)
    params = float(stored_weight_parameters(config))
    if config.enable_moe_block:
        e, k = config.num_experts, config.top_k_experts
        touched = expected_distinct_experts(e, k, batch) / e
        params -= counts["experts"] * (1 - touched)
    return params * PRECISION_BYTES[precision]


def decode_bytes(
    config: Gemma4Config,
    batch: int,
    context: int,
    precision: str = "bf16",
    cache_dtype: torch.dtype = torch.bfloat16,
) -> dict[str, float]:
    """Bytes one decode step reads: weights (see :func:`weight_bytes_read`)
    plus every sequence's KV cache at ``context`` tokens
    (:func:`gemma4_lite.book.accounting.kv_cache_bytes`)."""
    weights = weight_bytes_read(config, batch, precision)
    cache = float(kv_cache_bytes(config, context, cache_dtype, batch))
    return {"weights": weights, "kv_cache": cache, "total": weights + cache}


# --------------------------------------------------------------- hardware
GIB = 2**30
# The share of a device's memory the book keeps back for the runtime (CUDA
# context, activations, allocator slack): vLLM's default
# gpu_memory_utilization of 0.9 keeps back the same 10%. A premise, not a
# measurement; pass ``reserve=`` to the fit helpers to change it.
RUNTIME_RESERVE = 0.10


@dataclass(frozen=True)
class Hardware:
    """A device as the roofline sees it: memory in bytes (what the maker
    sells: an "80 GB" H100 has 80 GiB), bandwidth, peak FLOP/s (bf16,
    dense), an optional FP8 peak (dense), and the bibliography key of the
    figures."""

    name: str
    memory_bytes: int
    bandwidth_gbs: float
    peak_tflops: float
    source: str
    peak_tflops_fp8: float | None = None

    @property
    def memory_gb(self) -> float:
        """The capacity in decimal GB (1e9 bytes), as the tables print."""
        return self.memory_bytes / GB

    def usable_bytes(self, reserve: float = RUNTIME_RESERVE) -> float:
        """The memory left for weights and cache after the runtime's
        reserve."""
        return self.memory_bytes * (1 - reserve)

    @property
    def bandwidth(self) -> float:
        return self.bandwidth_gbs * GB

    @property
    def peak_flops(self) -> float:
        return self.peak_tflops * 1e12

    def peak_flops_for(self, precision: str = "bf16") -> float:
        """The peak a step with weights in ``precision`` runs at: FP8
        weights multiply in FP8 where the device has an FP8 peak (W8A8);
        every other format is weight-only and multiplies in bf16."""
        if precision == "fp8" and self.peak_tflops_fp8:
            return self.peak_tflops_fp8 * 1e12
        return self.peak_flops

    @property
    def ridge(self) -> float:
        """FLOPs per byte at which compute and memory take equally long."""
        return self.peak_flops / self.bandwidth

    def ridge_for(self, precision: str = "bf16") -> float:
        return self.peak_flops_for(precision) / self.bandwidth


# Figures from the makers' data sheets, except where noted (see
# book/references.bib). The RTX 4080 and RTX 4070 tensor peaks are derived
# (:func:`ada_tensor_tflops`), and so is the M4 Max's: a third party's
# 13.74 TFLOP/s for the 32-core GPU scaled to the 40-core part. The CPU is
# the two-core machine the book is built on: its memory is MemTotal, its
# bandwidth and bf16 matmul rate were measured (the chapter measures them
# again) and rounded, so that printed comparisons do not change from run to
# run.
ADA_FLOPS_PER_SM_CLOCK = 512


def ada_tensor_tflops(sms: int, boost_ghz: float) -> float:
    """Dense FP16/BF16 tensor TFLOP/s (FP32 accumulate) of a GeForce Ada
    card: SMs x 512 FLOPs per clock x boost clock, the rule that gives the
    Ada white paper's 165.2 for the RTX 4090 (128 SMs, 2.52 GHz)."""
    return round(sms * ADA_FLOPS_PER_SM_CLOCK * boost_ghz / 1e3, 1)


M4_MAX_32_CORE_TFLOPS = 13.74
M4_MAX_TFLOPS = round(M4_MAX_32_CORE_TFLOPS * 40 / 32, 1)
HARDWARE: dict[str, Hardware] = {
    "H100": Hardware(
        "H100 SXM (80 GiB)", 80 * GIB, 3350, 989, "nvidia_h100", 1979
    ),
    "RTX 4090": Hardware(
        "RTX 4090 (24 GiB)", 24 * GIB, 1008, 165.2, "nvidia_ada"
    ),
    "RTX 4080": Hardware(
        "RTX 4080 (16 GiB)",
        16 * GIB,
        716.8,
        ada_tensor_tflops(76, 2.51),
        "nvidia_rtx4080",
    ),
    "RTX 4070": Hardware(
        "RTX 4070 (12 GiB)",
        12 * GIB,
        504,
        ada_tensor_tflops(46, 2.48),
        "nvidia_rtx4070",
    ),
    "M4 Max": Hardware(
        "M4 Max (128 GiB)", 128 * GIB, 546, M4_MAX_TFLOPS, "apple_m4max"
    ),
    "this CPU": Hardware(
        "this 2-core CPU", 25_276_182_528, 12, 1.0, "measured"
    ),
}
# One core of it in fp32, where the chapter times the small twins (one
# thread, because the machine is shared): measured, rounded
ONE_CORE_FP32 = Hardware("1 core, fp32", 25_276_182_528, 8, 0.08, "measured")


@dataclass(frozen=True)
class Roofline:
    """One decode step on one device."""

    seconds: float
    memory_seconds: float
    compute_seconds: float
    batch: int

    @property
    def bound(self) -> str:
        if self.memory_seconds >= self.compute_seconds:
            return "memory"
        return "compute"

    @property
    def tokens_per_second(self) -> float:
        """Per sequence: one token per step."""
        return 1.0 / self.seconds

    @property
    def total_tokens_per_second(self) -> float:
        return self.batch / self.seconds


def decode_roofline(
    config: Gemma4Config,
    hardware: Hardware,
    batch: int = 1,
    context: int = 4096,
    precision: str = "bf16",
    cache_dtype: torch.dtype = torch.bfloat16,
) -> Roofline:
    """The roofline estimate of one decode step: the slower of reading its
    bytes at full bandwidth and doing its FLOPs at peak. Real kernels reach
    a fraction of both, so this is a ceiling on tokens per second."""
    moved = decode_bytes(config, batch, context, precision, cache_dtype)
    moved = moved["total"]
    flops = batch * flops_per_token(config, context)["total"]
    peak = hardware.peak_flops_for(precision)
    memory, compute = moved / hardware.bandwidth, flops / peak
    return Roofline(max(memory, compute), memory, compute, batch)


def decode_roofline_split(
    config: Gemma4Config,
    hardware: Hardware,
    batch: int = 1,
    context: int = 4096,
    precision: str = "bf16",
) -> dict[str, float]:
    """Seconds of one decode step with the weights and the cache each on
    their own roofline, as separate kernels run: ``weights`` is the slower
    of reading the weight bytes and doing the weight FLOPs, ``cache`` the
    same for the KV cache and the attention FLOPs; ``total`` their sum. It
    is never faster than :func:`decode_roofline`, which lets the two
    overlap."""
    moved = decode_bytes(config, batch, context, precision)
    flops = flops_per_token(config, context)
    peak = hardware.peak_flops_for(precision)
    weights = max(
        moved["weights"] / hardware.bandwidth,
        batch * flops["weights"] / peak,
    )
    cache = max(
        moved["kv_cache"] / hardware.bandwidth,
        batch * flops["attention"] / peak,
    )
    return {"weights": weights, "cache": cache, "total": weights + cache}


def matmul_compute_bound_batch(
    hardware: Hardware, precision: str = "bf16"
) -> float:
    """The batch at which a weight matrix product turns compute-bound: B
    tokens do 2B FLOPs per weight read, against the ridge times the bytes
    of one weight (activations, small at decode, are left out)."""
    return hardware.ridge_for(precision) * PRECISION_BYTES[precision] / 2


def compute_bound_batch(
    config: Gemma4Config,
    hardware: Hardware,
    context: int = 4096,
    precision: str = "bf16",
    limit: int = 1 << 16,
) -> int | None:
    """The smallest batch at which a decode step is compute-bound (or
    ``None`` below ``limit``). The cache grows with batch as fast as the
    FLOPs do, so at long contexts a step may never get there."""
    batch = 1
    while batch <= limit:
        step = decode_roofline(config, hardware, batch, context, precision)
        if step.bound == "compute":
            low = batch // 2 + 1 if batch > 1 else 1
            for b in range(low, batch + 1):  # the exact first batch
                step = decode_roofline(config, hardware, b, context, precision)
                if step.bound == "compute":
                    return b
        batch *= 2
    return None


def prefill_roofline(
    config: Gemma4Config,
    hardware: Hardware,
    batch: int,
    prompt: int,
    precision: str = "bf16",
) -> Roofline:
    """The same estimate for prefilling ``batch`` prompts of ``prompt``
    tokens in one pass: every token's FLOPs (token t sees t + 1 tokens),
    and the weights the ``batch * prompt`` tokens need, read once.
    ``Roofline.batch`` is then the number of tokens processed."""
    flops = batch * sum(
        flops_per_token(config, c)["total"] for c in range(1, prompt + 1)
    )
    moved = weight_bytes_read(config, batch * prompt, precision)
    peak = hardware.peak_flops_for(precision)
    memory, compute = moved / hardware.bandwidth, flops / peak
    return Roofline(max(memory, compute), memory, compute, batch * prompt)


def measure_tokens_per_second(
    model: torch.nn.Module,
    batch: int,
    prompt: int,
    new_tokens: int,
    repeats: int = 3,
    seed: int = 0,
) -> dict[str, float]:
    """Wall-clock prefill and decode throughput of ``model`` (all sequences
    together): ``batch`` random prompts of ``prompt`` tokens prefilled in
    one pass, then ``new_tokens`` one-token steps with the cache, eager.
    Medians of ``repeats`` runs; the times vary from run to run."""
    import statistics
    import time

    gen = torch.Generator().manual_seed(seed)
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (batch, prompt), generator=gen)
    token = torch.randint(0, vocab, (batch, 1), generator=gen)
    prefill, decode = [], []
    with torch.inference_mode():
        for _ in range(repeats):
            cache = model.new_cache(batch, max_length=prompt + new_tokens)
            start = time.perf_counter()
            model.logits(ids, cache, last_only=True)
            prefill.append(time.perf_counter() - start)
            start = time.perf_counter()
            for _ in range(new_tokens):
                model.logits(token, cache)
            decode.append(time.perf_counter() - start)
    return {
        "prefill": batch * prompt / statistics.median(prefill),
        "decode": batch * new_tokens / statistics.median(decode),
    }


# ----------------------------------------------------------------- memory
def memory_needed(
    config: Gemma4Config,
    context: int,
    batch: int = 1,
    precision: str = "bf16",
) -> dict[str, float]:
    """Bytes resident while decoding: all stored weights (every expert, as
    Google's memory table notes for the 26B-A4B) plus the bf16 cache."""
    weights = stored_weight_parameters(config) * PRECISION_BYTES[precision]
    cache = float(kv_cache_bytes(config, context, torch.bfloat16, batch))
    return {"weights": weights, "kv_cache": cache, "total": weights + cache}


def fits(
    config: Gemma4Config,
    hardware: Hardware,
    context: int,
    batch: int = 1,
    precision: str = "bf16",
    reserve: float = RUNTIME_RESERVE,
) -> bool:
    """Whether weights and cache fit the device's memory less the runtime
    ``reserve`` (a share of its capacity)."""
    need = memory_needed(config, context, batch, precision)["total"]
    return need <= hardware.usable_bytes(reserve)


def max_context(
    config: Gemma4Config,
    hardware: Hardware,
    batch: int = 1,
    precision: str = "bf16",
    reserve: float = RUNTIME_RESERVE,
) -> int:
    """The longest context (up to the model's limit) whose weights and
    cache fit the device's memory; 0 if the weights alone do not fit."""
    low, high = 0, config.max_position_embeddings
    while low < high:  # the cache only grows with context
        mid = (low + high + 1) // 2
        if fits(config, hardware, mid, batch, precision, reserve):
            low = mid
        else:
            high = mid - 1
    return low


def max_batch(
    config: Gemma4Config,
    hardware: Hardware,
    context: int,
    precision: str = "bf16",
    reserve: float = RUNTIME_RESERVE,
) -> int:
    """The most sequences of ``context`` tokens whose weights and caches
    fit the device's memory (0 if not even one does): the cache is linear
    in the batch, so it is the room left by the weights over one
    sequence's cache."""
    need = memory_needed(config, context, 1, precision)
    room = hardware.usable_bytes(reserve) - need["weights"]
    return max(0, math.floor(room / need["kv_cache"]))


def cache_overtakes_weights_batch(
    config: Gemma4Config, context: int, precision: str = "bf16"
) -> int:
    """The smallest batch whose bf16 cache at ``context`` holds more bytes
    than the stored weights (the cache is linear in batch)."""
    need = memory_needed(config, context, 1, precision)
    return math.floor(need["weights"] / need["kv_cache"]) + 1


# ------------------------------------------------------- where they go
COMPONENTS = (
    "embedding",
    "sliding attention",
    "global attention",
    "dense MLP",
    "experts (used)",
    "experts (idle)",
    "norms, router",
)


def component_parameters(config: Gemma4Config) -> dict[str, int]:
    """:func:`count_parameters` split by component, with attention split by
    layer kind (from :func:`layer_parameters`) and the experts into the
    top-k a token runs and the rest. Sums to the total exactly."""
    counts = count_parameters(config)
    out = dict.fromkeys(COMPONENTS, 0)
    out["embedding"] = (
        counts["embedding"]
        + counts["per_layer_embedding_table"]
        + counts["per_layer_embedding_other"]
    )
    for layer in range(config.num_hidden_layers):
        parts = layer_parameters(config, layer)
        kind = "sliding" if config.is_sliding(layer) else "global"
        out[f"{kind} attention"] += parts["attention"]
        out["dense MLP"] += parts["mlp"]
        out["norms, router"] += (
            parts["norms"] + parts["router"] + parts["per_layer_input"]
        )
        if config.enable_moe_block:
            used = (
                parts["experts"] * config.top_k_experts // config.num_experts
            )
            out["experts (used)"] += used
            out["experts (idle)"] += parts["experts"] - used
    out["norms, router"] += config.hidden_size  # the final norm
    assert sum(out.values()) == counts["total"]
    return out


# -------------------------------------------------------------- compare
def throughput_crossovers(
    first: Gemma4Config,
    second: Gemma4Config,
    hardware: Hardware,
    context: int,
    precision: str = "bf16",
    max_batch_size: int = 512,
) -> list[int]:
    """The batches (1 to ``max_batch_size``) at which the order of the two
    models' decode ceilings (all sequences) changes: at each listed batch
    the model that was behind at the batch before is now ahead."""
    out, before = [], None
    for batch in range(1, max_batch_size + 1):
        a = decode_roofline(first, hardware, batch, context, precision)
        b = decode_roofline(second, hardware, batch, context, precision)
        ahead = a.total_tokens_per_second > b.total_tokens_per_second
        if before is not None and ahead != before:
            out.append(batch)
        before = ahead
    return out


def best_of(
    values: dict[str, float | None], higher: bool = True, digits: int = 3
) -> list[str]:
    """The names whose value is best, ties included: values equal to
    ``digits`` significant digits count as a tie (``None``: not a
    candidate)."""
    rounded = {
        name: float(f"{v:.{digits}g}")
        for name, v in values.items()
        if v is not None
    }
    if not rounded:
        return []
    top = (max if higher else min)(rounded.values())
    return [name for name, v in rounded.items() if v == top]
