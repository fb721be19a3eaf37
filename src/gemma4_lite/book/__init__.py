"""What only the book's chapters need: naive versions, experiments, exercise
checks and figures. It imports the core package; the core never imports it.

Modules, by chapter:

* ``accounting`` (Gemma 4 at a glance, then nearly every chapter): parameters
  and KV-cache bytes from a config alone;
* ``overview`` (Gemma 4 at a glance): config summaries, the naive KV figure,
  the batch at which the cache overtakes the weights;
* ``masks``, ``sliding_window`` (Sliding-window layers): whole-sequence masks,
  the naive ring buffer, chunked-prefill experiments, decode traces;
* ``receptive_field``, ``global_attention`` (Global attention layers): reach,
  defined once, and the RoPE frequency schemes;
* ``lineage`` (The evolution from Gemma 3): Gemma 2/3/4 side by side;
* ``moe_training`` (Router design): balancing losses and a tiny training run;
* ``dispatch``, ``costs`` (Expert architecture): the teaching dispatchers,
  the grouped GEMM, and per-layer parameter/FLOP budgets;
* ``routing`` (When MoE meets hybrid attention): routing recorded per layer;
* ``cost_model`` (Performance trade-offs): FLOPs, bytes, rooflines, fits;
* ``data``, ``train`` (Training): the corpus, the tokenizer, the training
  loss and loop (``python -m gemma4_lite.book.train``);
* ``export`` (Training, then every chapter that saves a model): writing
  Hugging Face-format checkpoints, the inverse of the core's loading;
* ``scaling`` (Scaling decisions and the edge models);
* ``debugger`` (The full model): layer-by-layer comparison with transformers;
* ``drafter_training`` (Multi-token prediction): a drafter distilled from
  the book's dense model (``python -m gemma4_lite.book.drafter_training``);
* ``comparators``, ``experiments`` (Key takeaways): DeepSeek-V4, Qwen3-Next
  and Gemma counted on the meta device, and the small-scale experiments
  (``python -m gemma4_lite.book.experiments``);
* ``tiny``: tiny models with every weight random;
* ``notebook``, ``exercises``, ``answers``: ``show_source``, the exercise
  checks and their answers (one module per chapter);
* ``plots``: every figure, with the book's one palette.
"""

from .tiny import tiny_model

__all__ = ["tiny_model"]
