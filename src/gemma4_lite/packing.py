"""One matrix for several projections that read the same input (q/k/v, gate/up), for inference.

A decode step on a small model is dominated by per-call overhead, so one matmul over stacked weights beats
three small ones. The stacked matrix is not a copy: each projection's weight becomes a view of its row
block, so checkpoint names, in-place edits and optimisers keep working, and the product has the same bits
as the separate ones (``tests/test_packing.py``). Chapter: "The full model" (performance notes).
"""

from __future__ import annotations

import torch
from torch import nn


def packed_weight(owner: nn.Module, linears: list[nn.Linear]) -> torch.Tensor:
    """The [sum of outputs, input] matrix whose row blocks *are* ``linears``' weights.

    Built on first use and rebuilt whenever a weight was replaced rather than edited (loading with
    ``assign``, ``.to(dtype)``, ``.to(device)``), detected by its storage address.
    """
    cached = owner.__dict__.get("_packed_weight")
    addresses = tuple(linear.weight.data_ptr() for linear in linears)
    if cached is not None and cached[0] == addresses:
        return cached[1]
    with torch.inference_mode(False), torch.no_grad():
        stacked = torch.cat(
            [linear.weight.detach() for linear in linears], dim=0
        )
        start = 0
        for linear in linears:
            rows = linear.weight.shape[0]
            # .data keeps the Parameter object (and any optimiser's reference to it) and only moves storage
            linear.weight.data = stacked[start : start + rows]
            start += rows
    owner.__dict__["_packed_weight"] = (
        tuple(linear.weight.data_ptr() for linear in linears),
        stacked,
    )
    return stacked


def use_packed(linear: nn.Linear) -> bool:
    """Packed weights are for inference; while gradients are recorded the separate modules are used so
    gradients reach each Parameter."""
    return not (torch.is_grad_enabled() and linear.weight.requires_grad)
