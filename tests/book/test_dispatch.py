"""The dispatch schemes of moe.py and of the book give the same result as an
independent dense reference, on every shape that matters. Chapter: "Expert
architecture"."""

import pytest
import torch
import torch.nn.functional as F

from gemma4_lite.book.dispatch import (
    DISPATCHERS,
    dispatch_grouped,
    grouped_mm_applies,
)
from gemma4_lite.moe import dispatch_sorted

EXACT_ORDER = (
    "expert_loop",
    "sorted",
    "grouped",
)  # same products in the same order: bit-identical


def dense_reference(x, gate_up, down, experts, weights):
    """Independent of moe.py: run *every* expert on every token (float64), then
    mix with a dense [N, E] weight matrix that is zero outside each token's
    top-k."""
    x, gate_up, down = x.double(), gate_up.double(), down.double()
    mix = torch.zeros(x.shape[0], gate_up.shape[0], dtype=torch.float64)
    mix.scatter_(1, experts, weights.double())
    h = torch.einsum("nh,eih->nei", x, gate_up)
    intermediate = down.shape[2]
    act = (
        F.gelu(h[..., :intermediate], approximate="tanh")
        * h[..., intermediate:]
    )
    y = torch.einsum("nei,ehi->neh", act, down)
    return (mix[..., None] * y).sum(dim=1)


def make_case(n, num_experts, k, hidden, intermediate, seed, *, experts=None):
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn(n, hidden, generator=gen)
    gate_up = (
        torch.randn(num_experts, 2 * intermediate, hidden, generator=gen)
        / hidden**0.5
    )
    down = (
        torch.randn(num_experts, hidden, intermediate, generator=gen)
        / intermediate**0.5
    )
    if experts is None:
        scores = torch.rand(n, num_experts, generator=gen)
        _, experts = torch.topk(scores, k, dim=-1)
    weights = torch.rand(experts.shape, generator=gen) + 0.1
    return x, gate_up, down, experts, weights


SHAPES = [  # (tokens, experts, top-k, hidden, expert width)
    (1, 8, 2, 16, 8),  # one decode token
    (7, 8, 2, 16, 8),
    (33, 16, 4, 64, 32),  # the tiny 26B-A4B twin
    (5, 128, 8, 32, 12),  # the real E and k: most experts unused
    (20, 6, 1, 8, 4),  # k = 1
    (9, 5, 5, 8, 4),  # k = E: every token uses every expert
    (
        6,
        4,
        2,
        6,
        5,
    ),  # strides not a multiple of 16 bytes: grouped falls back to sorted
]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("name", list(DISPATCHERS))
def test_every_dispatcher_matches_the_dense_reference(name, shape):
    x, gate_up, down, experts, weights = make_case(*shape, seed=sum(shape))
    with torch.no_grad():
        got = DISPATCHERS[name](x, gate_up, down, experts, weights)
    expected = dense_reference(x, gate_up, down, experts, weights)
    assert got.dtype == x.dtype and got.shape == x.shape
    torch.testing.assert_close(got.double(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
def test_batched_schemes_are_bit_identical(shape):
    x, gate_up, down, experts, weights = make_case(*shape, seed=7 * sum(shape))
    with torch.no_grad():
        results = [
            DISPATCHERS[name](x, gate_up, down, experts, weights)
            for name in EXACT_ORDER
        ]
    loop, sorted_, grouped = results
    # grouped runs the sorted dispatch's products (or falls back to it):
    # always the same bits.
    assert torch.equal(grouped, sorted_)
    if all(n % 4 == 0 for n in shape[3:]):
        assert torch.equal(sorted_, loop)
    else:
        # Rows whose stride is not a multiple of 16 bytes: some CPUs' matmul
        # kernels then sum a row differently for different row counts, so
        # the loop (one expert's rows at a time) may differ in the last bit.
        torch.testing.assert_close(sorted_, loop, rtol=0, atol=1e-6)


def test_unused_experts_and_one_popular_expert():
    # Tokens use only experts {1, 3} of 8 (top-k never repeats an expert within
    # a token); expert 3 gets all.
    experts = torch.tensor([[3, 1]] * 6 + [[1, 3]] * 4)
    x, gate_up, down, experts, weights = make_case(
        10, 8, 2, 16, 8, seed=3, experts=experts
    )
    expected = dense_reference(x, gate_up, down, experts, weights)
    with torch.no_grad():
        for fn in DISPATCHERS.values():
            torch.testing.assert_close(
                fn(x, gate_up, down, experts, weights).double(),
                expected,
                rtol=1e-5,
                atol=1e-5,
            )
    # the weights of unused experts cannot influence the output
    gate_up[[0, 2, 4, 5, 6, 7]] = float("nan")
    with torch.no_grad():
        assert torch.isfinite(
            dispatch_grouped(x, gate_up, down, experts, weights)
        ).all()


def test_hand_computed_single_token():
    # One token, hidden 2, width 1, two experts with hand-picked weights; k = 2
    # with weights 0.25 / 0.75.
    x = torch.tensor([[1.0, 2.0]])
    gate_up = torch.tensor(
        [
            [[1.0, 0.0], [0.0, 1.0]],  # expert 0: gate = x0 = 1, up = x1 = 2
            [[0.0, 1.0], [1.0, 1.0]],
        ]
    )  # expert 1: gate = x1 = 2, up = x0 + x1 = 3
    down = torch.tensor([[[1.0], [-1.0]], [[2.0], [0.0]]])
    experts = torch.tensor([[1, 0]])
    weights = torch.tensor([[0.75, 0.25]])
    g = lambda v: F.gelu(torch.tensor(v), approximate="tanh").item()  # noqa: E731
    e0 = g(1.0) * 2.0
    e1 = g(2.0) * 3.0
    expected = torch.tensor([[0.25 * e0 + 0.75 * 2 * e1, -0.25 * e0]])
    with torch.no_grad():
        for fn in DISPATCHERS.values():
            torch.testing.assert_close(
                fn(x, gate_up, down, experts, weights), expected
            )


def test_grouped_uses_the_kernel_at_inference_on_both_real_shapes():
    for hidden, width in ((64, 32), (2816, 704)):  # the tiny twin and 26B-A4B
        x = torch.zeros(2, hidden)
        gate_up, down = (
            torch.zeros(1, 2 * width, hidden),
            torch.zeros(1, hidden, width),
        )
        with torch.no_grad():
            assert grouped_mm_applies(x, gate_up, down, torch.ones(2, 1))


def test_grouped_falls_back_to_sorted_with_gradients_and_both_backpropagate():
    x, gate_up, down, experts, weights = make_case(12, 8, 2, 16, 8, seed=11)
    tensors = [t.clone().requires_grad_() for t in (x, gate_up, down, weights)]
    assert not grouped_mm_applies(
        tensors[0], tensors[1], tensors[2], tensors[3]
    )
    out = dispatch_grouped(
        tensors[0], tensors[1], tensors[2], experts, tensors[3]
    )
    out.square().sum().backward()
    reference = [
        t.clone().requires_grad_() for t in (x, gate_up, down, weights)
    ]
    dispatch_sorted(
        reference[0], reference[1], reference[2], experts, reference[3]
    ).square().sum().backward()
    for got, expected in zip(tensors, reference):
        assert torch.equal(got.grad, expected.grad)


def test_bfloat16_takes_the_exact_sorted_path():
    """In bf16 the grouped kernel would round differently from the reference,
    so it is not used there.
    """
    x, gate_up, down, experts, weights = make_case(16, 8, 2, 16, 8, seed=5)
    x, gate_up, down = x.bfloat16(), gate_up.bfloat16(), down.bfloat16()
    assert not grouped_mm_applies(x, gate_up, down, weights)
    assert grouped_mm_applies(
        x.float(), gate_up.float(), down.float(), weights
    ) == hasattr(torch, "_grouped_mm")
    with torch.no_grad():
        a = dispatch_grouped(x, gate_up, down, experts, weights)
        b = dispatch_sorted(x, gate_up, down, experts, weights)
    assert a.dtype == torch.bfloat16 and torch.equal(a, b)


def test_transformers_experts_match_the_package():
    from gemma4_lite.book.dispatch import transformers_dispatchers

    x, gate_up, down, experts, weights = make_case(9, 16, 4, 16, 8, seed=3)
    hf = transformers_dispatchers(16, 16, 8)
    assert set(hf) == {"hf_eager", "hf_grouped_mm"}
    with torch.no_grad():
        want = dispatch_sorted(x, gate_up, down, experts, weights)
        for fn in hf.values():
            got = fn(x, gate_up, down, experts, weights)
            torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_exercise_05_4_validator():
    from gemma4_lite.book.answers.ch05 import validate_dispatch
    from gemma4_lite.moe import dispatch_gathered

    assert validate_dispatch(dispatch_gathered) is True
    for fn in DISPATCHERS.values():  # right values, but Python loops
        assert "loops" in validate_dispatch(fn)
    assert "token" in validate_dispatch(
        lambda x, g, d, e, w: 1.01 * dispatch_gathered(x, g, d, e, w)
    )
    assert "not a tensor" in validate_dispatch(lambda *args: None)
