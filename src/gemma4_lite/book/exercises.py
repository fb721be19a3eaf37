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
    """The expected value and precision of exercise ``"NN.k"`` (chapter NN,
    exercise k), computed by ``gemma4_lite.book.answers.chNN``."""
    chapter = exercise.split(".")[0]
    module = importlib.import_module(f"gemma4_lite.book.answers.ch{chapter}")
    try:
        compute, precision = module.ANSWERS[exercise]
    except KeyError:
        raise KeyError(f"no exercise {exercise!r} in chapter {chapter}")
    return compute(), precision


def check(
    exercise: str,
    answer: Any,
    *,
    validate: Callable[[Any], bool] | None = None,
) -> str:
    """Say in one line whether ``answer`` solves ``exercise``; ``None`` means
    not attempted yet, so a notebook still runs from top to bottom.
    ``validate`` checks answers that are functions (e.g. a reader's
    implementation run against the package)."""
    if answer is None:
        message = f"Exercise {exercise}: not attempted yet (replace None)."
    elif validate is not None:
        ok = validate(answer)
        message = f"Exercise {exercise}: " + (
            "correct." if ok else "not yet. Compare with the package."
        )
    else:
        value, precision = expected(exercise)
        ok = precision.accepts(answer, value)
        message = f"Exercise {exercise}: " + (
            "correct."
            if ok
            else f"not quite ({precision.describe()}). Try again."
        )
    print(message)
    return message
