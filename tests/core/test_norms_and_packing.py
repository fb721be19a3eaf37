"""The fast paths are exact: the fused RMSNorm kernel and the packed q/k/v and gate/up matmuls give the same
bits as the formulas and the separate projections, and packing never detaches weights from their names."""

import pytest
import torch
from conftest import FAMILIES, random_model

from gemma4_lite.norms import RMSNorm, rms_normalize, rms_normalize_reference


@pytest.mark.parametrize(
    "shape", [(1, 1, 64), (2, 40, 64), (3, 7, 4, 16), (1, 300, 512)]
)
@pytest.mark.parametrize("scale", [1e-3, 1.0, 40.0])
def test_fused_rms_norm_is_bitwise_the_formula(shape, scale):
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(shape, generator=gen) * scale
    assert torch.equal(
        rms_normalize(x, 1e-6), rms_normalize_reference(x, 1e-6)
    )
    norm = RMSNorm(shape[-1])
    with torch.no_grad():
        norm.weight.uniform_(0.5, 1.5, generator=gen)
    expected = (rms_normalize_reference(x, 1e-6) * norm.weight.float()).to(
        x.dtype
    )
    assert torch.equal(norm(x), expected)
    # bf16 activations: computed in fp32, cast back
    xb = x.bfloat16()
    assert torch.equal(
        norm(xb),
        (rms_normalize_reference(xb, 1e-6) * norm.weight.float()).bfloat16(),
    )


@pytest.mark.parametrize("name", FAMILIES)
def test_inference_path_equals_training_path(name):
    """Under no_grad the model packs projections; with gradients it uses the separate modules."""
    model = random_model(name, seed=41)
    ids = torch.randint(
        3,
        model.config.vocab_size,
        (2, 30),
        generator=torch.Generator().manual_seed(1),
    )
    with torch.no_grad():
        packed = model(ids)
    unpacked = model(ids)
    assert unpacked.requires_grad
    assert torch.equal(packed, unpacked.detach())
    unpacked.sum().backward()
    layer = model.model.layers[0]
    assert (
        layer.self_attn.q_proj.weight.grad is not None
        and layer.mlp.up_proj.weight.grad is not None
    )


def test_packing_keeps_names_parameters_and_edits():
    model = random_model("dense-tiny", seed=42)
    attn = model.model.layers[0].self_attn
    q_param = attn.q_proj.weight
    names_before = list(model.state_dict())
    ids = torch.randint(3, 512, (1, 12))
    with torch.no_grad():
        before = model(ids)
        assert (
            attn.q_proj.weight is q_param
        )  # same Parameter object: optimisers keep their reference
        assert list(model.state_dict()) == names_before
        # an in-place edit of a named weight is seen by the packed matmul
        attn.k_proj.weight.add_(0.2 * torch.randn_like(attn.k_proj.weight))
        edited = model(ids)
        assert (edited - before).abs().max().item() > 1e-3
    reference = model(ids).detach()  # training path, separate modules
    assert torch.equal(edited, reference)


def test_packing_follows_dtype_changes():
    model = random_model("31b-tiny", seed=43)
    ids = torch.randint(3, 512, (1, 12))
    with torch.no_grad():
        model(ids)  # packs in fp32
        model.to(torch.float64)
        packed = model(ids)
    assert packed.dtype == torch.float64
    assert torch.equal(packed, model(ids).detach())
