"""Source listings show docstring markup as a reader expects it."""

from gemma4_lite.book.notebook import _plain_markup, show_source


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
