"""gemma4_lite: the five Gemma 4 text decoders from scratch.

E2B, E4B, 12B, 26B-A4B and 31B, in readable PyTorch, for the book "Dissecting
Gemma 4: Architecture from the Ground Up".
"""

from .accounting import count_parameters, kv_cache_bytes, kv_cache_layer_bytes
from .config import FULL, PRESETS, RELEASED, SLIDING, Gemma4Config
from .generation import generate
from .kv_cache import Gemma4Cache, GlobalKVCache, RingKVCache
from .loading import CheckpointError
from .model import Gemma4ForCausalLM, Gemma4TextModel
from .tokenizer import Tokenizer

__all__ = [
    "Gemma4Config",
    "Gemma4ForCausalLM",
    "Gemma4TextModel",
    "Gemma4Cache",
    "RingKVCache",
    "GlobalKVCache",
    "CheckpointError",
    "generate",
    "count_parameters",
    "kv_cache_bytes",
    "kv_cache_layer_bytes",
    "PRESETS",
    "RELEASED",
    "SLIDING",
    "FULL",
    "Tokenizer",
]
__version__ = "0.2.0"
