"""Training a tiny Gemma 4 mixture-of-experts layer with and without load
balancing. Chapter: "Router design".

The released Gemma 4 code is inference code: it routes tokens but says nothing
about how the experts were kept busy during training. This module trains one
MoE layer built from the package's own ``Gemma4Router`` and ``Gemma4Experts``
on a small synthetic task, three ways:

* ``"none"``: the task loss alone;
* ``"aux"``: the task loss plus the Switch-Transformer auxiliary loss
  (:func:`load_balancing_loss`), optionally with the ST-MoE router z-loss
  (:func:`router_z_loss`);
* ``"bias"``: no extra loss; a per-expert bias, updated from the observed load,
  is added to the router scores for the top-k *selection* only
  (auxiliary-loss-free balancing, Wang et al. 2024, as used by DeepSeek).

Everything is seeded and runs single-threaded on the CPU in about a second per
run, so the chapter and the tests can repeat it for several seeds.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Iterator

import torch
import torch.nn.functional as F
from torch import nn

from ..moe import Gemma4Experts, Gemma4Router, Routing
from ..norms import RMSNorm

BALANCING = ("none", "aux", "bias")


# -------------------------------------------------------------------- the task
@dataclass(frozen=True)
class RoutingTask:
    """A regression task with one natural expert per cluster and a trap for the
    router.

    A token is ``x = common + centres[c] + noise`` for a cluster ``c``; its
    target is ``maps[c] @ (x - common)``, a different linear map for every
    cluster, so the task rewards specialised experts. ``common`` is one large
    direction shared by every token (residual streams of real models carry such
    shared components). The router normalises its input, so at initialisation
    it sees almost the same vector for every token and sends them all to the
    same few experts: the situation in which routing collapses if nothing
    pushes back.
    """

    centres: torch.Tensor  # [C, H]
    common: torch.Tensor  # [H]
    maps: torch.Tensor  # [C, H, H]
    noise: float

    @property
    def hidden_size(self) -> int:
        return self.centres.shape[1]

    @property
    def num_clusters(self) -> int:
        return self.centres.shape[0]

    def sample(
        self, n: int, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """``n`` tokens: inputs [n, H], targets [n, H] and cluster ids [n]."""
        cluster = torch.randint(
            0, self.num_clusters, (n,), generator=generator
        )
        local = self.centres[cluster] + self.noise * torch.randn(
            n, self.hidden_size, generator=generator
        )
        target = torch.empty_like(local)
        for c in range(
            self.num_clusters
        ):  # one matrix product per cluster, not one [H, H] gather per token
            rows = cluster == c
            target[rows] = local[rows] @ self.maps[c].T
        return self.common + local, target, cluster


def make_routing_task(
    hidden_size: int,
    num_clusters: int = 16,
    shared: float = 3.0,
    noise: float = 0.3,
    seed: int = 0,
) -> RoutingTask:
    """Draw a task. ``shared`` is the length of the common direction relative
    to a cluster centre (whose length is about sqrt(H)); 0 removes the trap."""
    g = torch.Generator().manual_seed(10_000 + seed)
    centres = torch.randn(num_clusters, hidden_size, generator=g)
    common = torch.randn(hidden_size, generator=g)
    common = common / common.norm() * shared * hidden_size**0.5
    maps = (
        torch.randn(num_clusters, hidden_size, hidden_size, generator=g)
        / hidden_size**0.5
    )
    return RoutingTask(centres, common, maps, noise)


# ------------------------------------------------------------------- the model
def biased_routing(
    router: Gemma4Router, x: torch.Tensor, bias: torch.Tensor
) -> Routing:
    """Gemma 4's router with a per-expert ``bias`` added to the logits only
    to *choose* the top-k experts (Wang et al. add it to the gating scores);
    the weights are the unbiased probabilities, as in ``Gemma4Router``."""
    z = router.norm(x) * router.scale * router.scalar_root_size
    logits = router.proj(z)
    probs = F.softmax(logits, dim=-1, dtype=torch.float32)
    scores = logits.float() + bias.float()  # the bias only ranks
    experts = torch.topk(scores, router.top_k, dim=-1).indices
    chosen = probs.gather(-1, experts)
    chosen = chosen / chosen.sum(dim=-1, keepdim=True)
    weights = chosen * router.per_expert_scale[experts]
    return Routing(logits, probs, weights, experts)


class TinyMoE(nn.Module):
    """The MoE half of a 26B-A4B block and nothing else: the router reads the
    raw input, the experts read it through their own pre-norm
    (``pre_feedforward_layernorm_2`` in the real block)."""

    def __init__(
        self, hidden_size: int, num_experts: int, top_k: int, expert_width: int
    ) -> None:
        super().__init__()
        self.router = Gemma4Router(hidden_size, num_experts, top_k)
        self.pre_norm = RMSNorm(hidden_size)
        self.experts = Gemma4Experts(num_experts, hidden_size, expert_width)
        with torch.no_grad():
            nn.init.normal_(
                self.router.proj.weight, 0.0, 0.02
            )  # the package's init: near-uniform probabilities
            nn.init.normal_(self.experts.gate_up_proj, 0.0, hidden_size**-0.5)
            nn.init.normal_(self.experts.down_proj, 0.0, expert_width**-0.5)

    def forward(
        self, x: torch.Tensor, bias: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, Routing]:
        routing = (
            self.router(x)
            if bias is None
            else biased_routing(self.router, x, bias)
        )
        return self.experts(
            self.pre_norm(x), routing.experts, routing.weights
        ), routing


# -------------------------------------------------------------------- training
@dataclass(frozen=True)
class TrainConfig:
    """One training run. The layer sizes default to the ``26b-a4b-tiny`` preset
    (H 64, 16 experts, top 4, expert width 32)."""

    balance: str = "none"  # "none", "aux" or "bias"
    seed: int = 0  # seeds the task, the initial weights and the batches
    steps: int = 150
    batch_size: int = 128  # tokens per step
    lr: float = 3e-3
    # Switch used 0.01 over ~10^5 steps; a 150-step run needs a firmer push
    aux_coef: float = 0.05
    z_coef: float = 0.0  # ST-MoE uses 1e-3
    # bias step per update (Wang et al. use 1e-3 over far longer runs)
    bias_rate: float = 0.01
    hidden_size: int = 64
    num_experts: int = 16
    top_k: int = 4
    expert_width: int = 32
    shared: float = 3.0  # strength of the common direction (see RoutingTask)

    def __post_init__(self) -> None:
        if self.balance not in BALANCING:
            raise ValueError(
                f"TrainConfig.balance must be one of {BALANCING}, "
                f"got {self.balance!r}"
            )


@dataclass
class TrainResult:
    """Per-step histories of one run."""

    config: TrainConfig
    task_loss: list[float] = field(default_factory=list)
    aux_loss: list[float] = field(
        default_factory=list
    )  # logged in every run, added to the loss only for "aux"
    z_loss: list[float] = field(default_factory=list)  # logged in every run
    load: list[torch.Tensor] = field(
        default_factory=list
    )  # [E] assignments per expert, one tensor per step
    bias: torch.Tensor | None = None

    def load_share(self, last: int = 20) -> torch.Tensor:
        """Each expert's load over the last ``last`` steps relative to a fair
        share (1 = exactly fair).
        """
        total = torch.stack(self.load[-last:]).sum(0).double()
        return total / total.mean()

    def imbalance(self, last: int = 20) -> float:
        """Busiest expert's load over the mean load: 1 is perfect balance, E/k
        is total collapse.
        """
        return float(self.load_share(last).max())

    def unused_experts(self, last: int = 20) -> int:
        """Experts that received no token in the last ``last`` steps."""
        return int((self.load_share(last) == 0).sum())

    def imbalance_curve(self) -> list[float]:
        """Per-step max/mean load."""
        return [float(load.max() / load.double().mean()) for load in self.load]


@contextlib.contextmanager
def _one_thread() -> Iterator[None]:
    """Run single-threaded so the result does not depend on how many cores the
    machine has.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train_step(
    model: TinyMoE,
    optimiser: torch.optim.Optimizer,
    x: torch.Tensor,
    target: torch.Tensor,
    config: TrainConfig,
    bias: torch.Tensor | None,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """One training step; returns task loss, aux loss, z-loss and load."""
    E = config.num_experts
    y, routing = model(x, bias)  # bias (if any) only picks the experts
    task_loss = F.mse_loss(y, target)
    aux = load_balancing_loss(routing.probs, routing.experts, E)
    z = router_z_loss(routing.logits)
    loss = task_loss + config.z_coef * z
    if config.balance == "aux":
        loss = loss + config.aux_coef * aux
    optimiser.zero_grad(set_to_none=True)
    loss.backward()
    optimiser.step()
    load = expert_load(routing.experts.detach(), E)
    if bias is not None:  # no gradient: nudge each bias towards balance
        below_mean = torch.sign(load.double().mean() - load).float()
        bias += config.bias_rate * below_mean
    return task_loss.detach(), aux.detach(), z.detach(), load


def train_tiny_moe(config: TrainConfig) -> TrainResult:
    """Train a ``TinyMoE`` on a ``RoutingTask`` with Adam, one
    :func:`train_step` per batch, and return its histories (seeded,
    deterministic).
    """
    task = make_routing_task(
        config.hidden_size, shared=config.shared, seed=config.seed
    )
    data = torch.Generator().manual_seed(20_000 + config.seed)
    with _one_thread():
        torch.manual_seed(config.seed)
        model = TinyMoE(
            config.hidden_size,
            config.num_experts,
            config.top_k,
            config.expert_width,
        )
        optimiser = torch.optim.Adam(model.parameters(), lr=config.lr)
        bias = (
            torch.zeros(config.num_experts)
            if config.balance == "bias"
            else None
        )
        result = TrainResult(config)
        n = config.batch_size
        inputs, targets, _ = task.sample(config.steps * n, data)
        for step in range(config.steps):
            batch = slice(step * n, (step + 1) * n)
            task_loss, aux, z, load = train_step(
                model, optimiser, inputs[batch], targets[batch], config, bias
            )
            result.task_loss.append(float(task_loss))
            result.aux_loss.append(float(aux))
            result.z_loss.append(float(z))
            result.load.append(load)
        result.bias = bias
    return result


def compare_balancing(
    seed: int = 0, modes: tuple[str, ...] = BALANCING, **overrides
) -> dict[str, TrainResult]:
    """The same run (same task, same initial weights, same batches) under each
    balancing ``mode``.
    """
    return {
        mode: train_tiny_moe(TrainConfig(balance=mode, seed=seed, **overrides))
        for mode in modes
    }


# ------------------------------------------------------------ balancing losses
def load_balancing_loss(
    probs: torch.Tensor, experts: torch.Tensor, num_experts: int
) -> torch.Tensor:
    """Switch-Transformer auxiliary loss for one layer:
    ``E * sum_e f_e * P_e``.

    ``f_e`` is the fraction of the N*k routing assignments that went to expert
    e (not differentiable), ``P_e`` the mean router probability of e over the N
    tokens (differentiable). It equals 1 when both are uniform and grows as
    routing concentrates.
    """
    counts = torch.bincount(experts.reshape(-1), minlength=num_experts)
    fraction = counts.to(probs.dtype) / experts.numel()
    mean_prob = probs.reshape(-1, num_experts).mean(dim=0)  # also [B, S, E]
    return num_experts * torch.sum(fraction * mean_prob)


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE z-loss: the mean squared log-partition, which keeps router logits
    small.
    """
    return torch.logsumexp(logits.float(), dim=-1).pow(2).mean()


def expert_load(experts: torch.Tensor, num_experts: int) -> torch.Tensor:
    """How many routing assignments each expert received."""
    return torch.bincount(experts.reshape(-1), minlength=num_experts)
