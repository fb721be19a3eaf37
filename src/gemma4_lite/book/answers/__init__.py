"""Expected answers of the exercises, one module per chapter (``chNN``),
read by :func:`gemma4_lite.book.exercises.check`. Reading them gives the
exercises away."""
