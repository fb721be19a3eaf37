"""Source listings show docstring markup as a reader expects it."""

import ast
import textwrap

from gemma4_lite.book.notebook import _fit_width, _plain_markup, show_source


def _documented(x: int) -> int:
    """Uses :func:`gemma4_lite.generate`, :meth:`~gemma4_lite.KVCache.update`,
    :class:`Gemma4Config` and :py:attr:`.head_dim`; ``x`` is a count.
    """
    return x


def test_roles_and_double_backticks_become_plain_names():
    text = _plain_markup(_documented.__doc__)
    assert "`gemma4_lite.generate`" in text
    assert "`update`" in text  # ~ keeps only the last component
    assert "`Gemma4Config`" in text and "`head_dim`" in text
    assert "`x` is a count" in text
    assert ":func:" not in text and ":meth:" not in text
    assert "``" not in text


def test_show_source_applies_it_and_keeps_the_code():
    shown = show_source(_documented)
    text = getattr(shown, "data", shown)
    assert "`Gemma4Config`" in text and ":class:" not in text
    assert "def _documented(x: int) -> int:" in text
    assert text.rstrip().endswith("return x")
    part = show_source(_documented, lines=(1, 1))
    assert getattr(part, "data", part) == "def _documented(x: int) -> int:"


class _Holder:
    def method(self):
        return 1


def test_a_method_is_shown_dedented():
    shown = show_source(_Holder.method)
    text = getattr(shown, "data", shown)
    assert text.startswith("def method(self):")


def test_long_lines_are_fitted_and_stay_the_same_code():
    long_tail = "    x = f(y)  # " + "word " * 20 + "\n"
    long_line = "    # " + "note " * 20 + "\n"
    long_code = "    total = " + " + ".join(f"value_{i}" for i in range(12))
    in_string = "    s = '" + "# not a comment " * 6 + "'"
    short = "def g():\n    return 1  # fine\n"
    assert _fit_width(short) == short
    source = "def g(y):\n" + long_tail + long_line + long_code + "\n"
    fitted = _fit_width(source)
    assert max(map(len, fitted.splitlines())) <= 79
    assert "    x = f(y)" in fitted.splitlines()  # code kept, as written
    assert fitted.endswith("\n")

    # the fitted code compiles to the same program
    def program(text):
        return ast.dump(ast.parse(textwrap.dedent(text)))

    assert program(fitted) == program(source)
    # a '#' inside a string is not a comment, and a string is not split
    fitted = _fit_width(in_string)
    assert in_string.strip()[4:] in fitted
    assert program(fitted) == program(in_string)
