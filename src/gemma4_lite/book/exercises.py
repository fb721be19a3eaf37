"""Exercise checks for the chapters: the answer stays out of sight.

A chapter's check cell shows only the reader's attempt and one call,
``check("01.2", answer)``. The expected value is computed by the package, in
``gemma4_lite.book.answers.chNN`` (one module per chapter), together with the
precision the question asks for, so that the check accepts exactly that
precision: "to three significant digits" accepts 47.0 for 46.97 and rejects
47.5; "exactly" accepts only the exact value.

An answer module defines ``ANSWERS = {"01.2": (compute, precision), ...}``,
where ``compute`` is a function of no arguments returning the expected
value and ``precision`` one of the classes below.
"""

from __future__ import annotations

import importlib
import math
from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Exact:
    """The exact value: integers, strings, lists of them."""

    def accepts(self, answer: Any, expected: Any) -> bool:
        if isinstance(expected, (list, tuple)):
            return isinstance(answer, (list, tuple)) and list(answer) == list(
                expected
            )
        if isinstance(expected, bool) or isinstance(answer, bool):
            return answer is expected
        return answer == expected

    def describe(self) -> str:
        return "exactly"


@dataclass(frozen=True)
class SignificantDigits:
    """Equal once both are rounded to ``digits`` significant digits."""

    digits: int

    def accepts(self, answer: Any, expected: Any) -> bool:
        if not isinstance(answer, (int, float)) or isinstance(answer, bool):
            return False
        return _round_sig(answer, self.digits) == _round_sig(
            expected, self.digits
        )

    def describe(self) -> str:
        return f"to {self.digits} significant digits"


@dataclass(frozen=True)
class Decimals:
    """Equal once both are rounded to ``places`` decimal places."""

    places: int

    def accepts(self, answer: Any, expected: Any) -> bool:
        if not isinstance(answer, (int, float)) or isinstance(answer, bool):
            return False
        return round(float(answer), self.places) == round(
            float(expected), self.places
        )

    def describe(self) -> str:
        return f"to {self.places} decimal places"


def _round_sig(x: float, digits: int) -> float:
    x = float(x)
    if x == 0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


Precision = Exact | SignificantDigits | Decimals


def expected(exercise: str) -> tuple[Any, Precision]:
    """The expected value and precision of exercise ``"N.k"`` (chapter N,
    exercise k; ``"07.1"`` and ``"7.1"`` name the same one), computed by
    ``gemma4_lite.book.answers.chNN``."""
    chapter = f"{int(exercise.split('.')[0]):02d}"
    module = importlib.import_module(f"gemma4_lite.book.answers.ch{chapter}")
    key = f"{chapter}.{exercise.split('.', 1)[1]}"
    table = module.ANSWERS
    compute, precision = None, None
    for name in (exercise, key, key.lstrip("0")):
        if name in table:
            compute, precision = table[name]
            break
    if compute is None:
        raise KeyError(f"no exercise {exercise!r} in chapter {chapter}")
    return compute(), precision


def check(
    exercise: str,
    answer: Any,
    *,
    validate: Callable[[Any], bool | str] | None = None,
) -> str:
    """Say in one line whether ``answer`` solves ``exercise``; ``None`` means
    not attempted yet, so a notebook still runs from top to bottom.

    ``validate`` checks answers that are functions (e.g. a reader's
    implementation run against the package). It returns ``True`` when the
    answer is right, or a string saying where it differs (which model,
    layer, step or tensor, and by how much), or ``False``; it may raise
    ``NotImplementedError`` for a stub the reader has not filled in yet.
    """
    chapter, _, k = exercise.partition(".")
    name = f"{int(chapter)}.{k}" if chapter.isdigit() else exercise
    if answer is None:
        message = f"Exercise {name}: not attempted (replace None)."
    elif validate is not None:
        try:
            verdict = validate(answer)
        except NotImplementedError:
            verdict = None
        if verdict is None:
            message = f"Exercise {name}: not attempted (fill in the stub)."
        elif verdict is True:
            message = f"Exercise {name}: correct."
        elif isinstance(verdict, str) and verdict:
            message = f"Exercise {name}: not yet: {verdict}"
        else:
            message = f"Exercise {name}: not yet. Compare with the package."
    else:
        value, precision = expected(exercise)
        ok = precision.accepts(answer, value)
        message = f"Exercise {name}: " + (
            "correct."
            if ok
            else f"not quite ({precision.describe()}). Try again."
        )
    print(message)
    return message


def call_reader(where: str, fn: Callable[..., Any], *args: Any, like: Any):
    """Run a reader's function for a check: ``(result, None)`` if it returns
    a tensor shaped like ``like``, else ``(None, message)`` saying where and
    how it went wrong. ``NotImplementedError`` (an unfilled stub) passes
    through, so that :func:`check` reports "not attempted"."""
    import torch

    try:
        got = fn(*args)
    except NotImplementedError:
        raise
    except Exception as error:
        return None, f"{where}: raised {type(error).__name__}: {error}"
    if not isinstance(got, torch.Tensor):
        return None, f"{where}: returned {type(got).__name__}, not a tensor"
    if got.shape != like.shape:
        return None, (
            f"{where}: shape {tuple(got.shape)}, expected {tuple(like.shape)}"
        )
    return got, None
