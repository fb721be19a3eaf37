"""The fast paths are exact: PyTorch's RMSNorm kernel gives the bits of the
reference's written-out formula, and the stacked q/k/v and gate/up matrices
give the bits of the checkpoint's separate projections."""

import pytest
import torch
import torch.nn.functional as F
from conftest import FAMILIES, random_model

from gemma4_lite.book.train import causal_lm_loss
from gemma4_lite.loading import checkpoint_layout
from gemma4_lite.norms import RMSNorm


def _written_out(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The reference's RMSNorm, in fp32: x * (mean(x^2) + eps)^-1/2 * w."""
    xf = x.float()
    normed = xf * torch.pow(xf.pow(2).mean(-1, keepdim=True) + 1e-6, -0.5)
    return (normed * weight.float()).to(x.dtype)


@pytest.mark.parametrize(
    "shape", [(1, 1, 64), (2, 40, 64), (3, 7, 4, 16), (1, 300, 512)]
)
@pytest.mark.parametrize("scale", [1e-3, 1.0, 40.0])
def test_rms_norm_is_bitwise_the_formula(shape, scale):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen) * scale
    norm = RMSNorm(shape[-1])
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5, generator=gen)
    assert torch.equal(norm(x), _written_out(x, norm.weight))
    xb = x.bfloat16()  # bf16 activations: computed in fp32, cast back
    assert torch.equal(norm(xb), _written_out(xb, norm.weight))
    gainless = RMSNorm(shape[-1], with_scale=False)
    assert torch.equal(gainless(x), _written_out(x, torch.ones(shape[-1])))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("name", FAMILIES)
def test_stacked_projections_are_bitwise_the_separate_ones(name, dtype):
    model = random_model(name, seed=41).to(dtype)
    x = torch.randn(2, 9, model.config.hidden_size).to(dtype)
    state = model.state_dict()
    stacked = 0
    for ours, parts in checkpoint_layout(model).items():
        if len(parts) == 1:
            continue
        weight = state[ours]
        pieces = weight.split([shape[0] for _, shape in parts])
        together = F.linear(x, weight).split([p.shape[0] for p in pieces], -1)
        for piece, out in zip(pieces, together):
            assert torch.equal(F.linear(x, piece), out)
        stacked += 1
    config = model.config  # every MLP, and attention where it owns k/v
    assert (
        stacked == 2 * config.num_hidden_layers - config.num_kv_shared_layers
    )


@pytest.mark.parametrize("name", FAMILIES)
def test_gradients_reach_every_parameter(name):
    model = random_model(name, seed=42)
    ids = torch.randint(3, model.config.vocab_size, (2, 20))
    causal_lm_loss(model(ids), ids).backward()
    for param_name, param in model.named_parameters():
        assert param.grad is not None, param_name
        if "embed_tokens_per_layer" not in param_name:
            assert param.grad.abs().sum() > 0, param_name


def test_converting_dtype_before_or_after_running_gives_the_same_logits():
    ids = torch.randint(3, 512, (1, 40))
    early = random_model("e2b-tiny", seed=43).to(torch.bfloat16)
    late = random_model("e2b-tiny", seed=43)
    with torch.no_grad():
        late(ids)  # builds the RoPE tables in fp32 first
        late = late.to(torch.bfloat16)
        assert torch.equal(early(ids), late(ids))
