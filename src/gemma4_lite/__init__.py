"""gemma4_lite: the Gemma 4 text decoders (E2B, E4B, 12B, 26B-A4B, 31B) from
scratch, for the book "Dissecting Gemma 4: Architecture from the Ground Up".

The core runs the model; ``gemma4_lite.book`` holds what only the chapters
need and imports the core, never the other way round.
"""

from .assistant import AssistantConfig, Gemma4AssistantForCausalLM
from .config import FULL, PRESETS, RELEASED, SLIDING, Gemma4Config
from .generation import generate, generate_stream
from .kv_cache import Gemma4Cache, GlobalKVCache, RingKVCache
from .loading import CheckpointError
from .model import Gemma4ForCausalLM, Gemma4TextModel
from .tokenizer import Tokenizer

__all__ = [
    "Gemma4Config", "Gemma4ForCausalLM", "Gemma4TextModel", "Gemma4Cache",
    "RingKVCache", "GlobalKVCache", "CheckpointError",
    "Tokenizer", "generate", "generate_stream", "PRESETS", "RELEASED",
    "SLIDING", "FULL", "Gemma4AssistantForCausalLM", "AssistantConfig",
]  # fmt: skip
__version__ = "0.3.0"
