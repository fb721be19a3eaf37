"""What only the book's chapters need: naive versions, experiments, exercise
checks and figures. It imports the core package; the core never imports it.

Modules, by chapter:

* ``overview`` (Gemma 4 at a glance): config summaries, the naive KV figure;
* ``masks``, ``sliding_window`` (Sliding-window layers): whole-sequence masks,
  the naive ring buffer, chunked-prefill experiments, decode traces;
* ``receptive_field`` (Global attention layers): how far information reaches;
* ``lineage`` (The evolution from Gemma 3): Gemma 2/3/3n/4 side by side;
* ``moe_training`` (Router design): balancing losses and a tiny training run;
* ``dispatch``, ``costs`` (Expert architecture): the teaching dispatchers and
  per-layer parameter/FLOP budgets;
* ``routing`` (When MoE meets hybrid attention): routing recorded per layer;
* ``tiny``: tiny models with every weight random;
* ``notebook``: ``show_source`` and the exercise checks;
* ``plots``: every figure, with the book's one palette.
"""

from .tiny import tiny_model

__all__ = ["tiny_model"]
