"""The exercise checker accepts exactly the precision a question asks for,
and every registered exercise of every chapter can be computed."""

import importlib
import pkgutil

import pytest

import gemma4_lite.book.answers as answers
from gemma4_lite.book.exercises import (
    Decimals,
    Exact,
    SignificantDigits,
    check,
    expected,
)


def test_significant_digits_accepts_exactly_that_precision():
    three = SignificantDigits(3)
    assert three.accepts(47.0, 46.97)
    assert three.accepts(47, 46.97)
    assert not three.accepts(47.5, 46.97)
    assert not three.accepts(46.9, 46.97)
    assert three.accepts(82.4, 82.43) and not three.accepts(80, 82.43)
    assert three.accepts(0.00123, 0.0012349)
    assert not three.accepts("47", 46.97) and not three.accepts(True, 1.0)


def test_decimals_and_exact():
    assert Decimals(2).accepts(0.33, 1 / 3)
    assert not Decimals(2).accepts(0.3, 1 / 3)
    assert Exact().accepts(7665, 7665) and not Exact().accepts(7665.4, 7665)
    assert Exact().accepts([1, 2], (1, 2))
    assert not Exact().accepts(1, True)


def test_check_messages(capsys):
    assert "not attempted" in check("00.1", None)
    assert "correct" in check("00.1", 1, validate=lambda a: a == 1)
    assert "not yet" in check("00.1", 2, validate=lambda a: a == 1)


def _exercises():
    for info in pkgutil.iter_modules(answers.__path__):
        module = importlib.import_module(f"{answers.__name__}.{info.name}")
        yield from module.ANSWERS


@pytest.mark.parametrize("exercise", sorted(_exercises()))
def test_every_registered_exercise_has_an_answer(exercise):
    value, precision = expected(exercise)
    assert precision.accepts(value, value)
    assert "correct." in check(exercise, value)
