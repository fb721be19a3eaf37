import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

from gemma4_lite import Gemma4Config, Gemma4ForCausalLM  # noqa: E402

# Tiny twins of each family as transformers can build them: E-style (PLE + KV
# sharing + double-wide MLP + 4:1), 12B-style (one K=V head on the global
# layers), 31B-style (K=V global layers with fewer KV heads), 26B-style (MoE
# beside the dense MLP), plain dense.
FAMILIES = [
    "e2b-tiny",
    "e4b-tiny",
    "12b-tiny",
    "31b-tiny",
    "26b-a4b-tiny",
    "dense-tiny",
]


# Tiny models are dominated by per-op overhead, where a second thread only adds
# synchronisation (and on a busy 2-core machine, contention). The speed
# benchmark sets its own thread count.
torch.set_num_threads(1)


@pytest.fixture(scope="session", autouse=True)
def _quiet_transformers():
    try:
        import transformers

        transformers.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
    except ImportError:
        pass


def random_model(name: str, seed: int = 0, **overrides) -> Gemma4ForCausalLM:
    """A gemma4_lite model with every weight random, gains and scalars
    included.
    """
    from hf_reference import randomise

    torch.manual_seed(seed)
    model = Gemma4ForCausalLM(Gemma4Config.from_preset(name, **overrides))
    randomise(model, seed)
    return model.eval()
