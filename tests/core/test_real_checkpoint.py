"""Optional: parity on a real Gemma 4 checkpoint, when the reader has one.

Set GEMMA4_CHECKPOINT to a downloaded Hugging Face folder (for example
google/gemma-4-E2B-it) to run it. CI has no network and no weights, so there
it is skipped; every code path it uses is also exercised on checkpoints the
other tests create.
"""

import os
from pathlib import Path

import pytest
import torch

from gemma4_lite import Gemma4ForCausalLM, generate

CHECKPOINT = os.environ.get("GEMMA4_CHECKPOINT")
pytestmark = pytest.mark.skipif(
    not CHECKPOINT, reason="set GEMMA4_CHECKPOINT to a local Gemma 4 folder"
)


def test_real_checkpoint_matches_transformers():
    from transformers import AutoModelForCausalLM

    path = Path(CHECKPOINT)
    ours = Gemma4ForCausalLM.from_pretrained(path, dtype=torch.float32)
    reference = AutoModelForCausalLM.from_pretrained(
        path, dtype=torch.float32, attn_implementation="eager"
    )
    if ours.config.enable_moe_block:
        reference.set_experts_implementation("eager")
    # <bos> followed by ordinary text ids; any ids below the vocabulary size
    # will do for a parity check
    ids = torch.tensor(
        [
            [
                2,
                651,
                6037,
                576,
                6081,
                603,
                9448,
                235265,
                714,
                6037,
                576,
                5282,
                603,
            ]
        ]
    )
    with torch.no_grad():
        expected = reference(input_ids=ids).logits
        got = ours(ids)
    diff = (expected - got).abs().max().item()
    print(f"max |logit difference| on {path.name}: {diff:.3e}")
    assert diff <= 1e-3
    with torch.no_grad():
        theirs = reference.generate(ids, max_new_tokens=16, do_sample=False)
    # transformers may stop early at an end-of-turn token; compare what both
    # produced
    ours_out = generate(ours, ids, 16, do_sample=False)
    assert torch.equal(ours_out[:, : theirs.shape[1]], theirs)
