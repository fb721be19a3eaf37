"""Small helpers the chapters share: showing the package's own source, and
checking exercise answers.
"""

from __future__ import annotations

import inspect
import math
import re
import textwrap
from typing import Any, Callable, Sequence


def show_source(obj: Any, *, lines: tuple[int, int] | None = None) -> Any:
    """Display the source of a package function or class (the notebooks never
    copy package code).

    Returns an IPython ``Code`` object (syntax-highlighted in Jupyter and on
    the website), with docstring markup (Sphinx roles such as :func:,
    double backticks) shown as a plain `x`; ``lines`` selects a 1-based
    inclusive range of the object's lines; a method is shown dedented.
    Lines wider than the text column (other libraries' code, e.g.
    transformers') are fitted to it: long comments wrapped above their
    line, long code continued with a backslash.
    """
    source = _plain_markup(inspect.getsource(obj))
    if lines is not None:
        source = "\n".join(source.splitlines()[lines[0] - 1 : lines[1]])
    # a method's source keeps its class's indentation; the listing does not
    source = _fit_width(textwrap.dedent(source))
    try:
        from IPython.display import Code
    except ImportError:  # plain Python: just the text
        return source
    return Code(source, language="python")


def _fit_width(source: str, width: int = 79) -> str:
    """``source`` with every line fitted to ``width`` (other libraries' code,
    e.g. transformers', is written for 119 columns): a comment that makes a
    line too long is wrapped onto lines of its own above it, and code that
    is still too long is broken at a space outside any string with a
    backslash continuation, which Python reads as the same line."""
    out = []
    for line in source.splitlines():
        indent = line[: len(line) - len(line.lstrip())]
        code, comment = _split_comment(line)
        if len(line) > width and comment:
            out += textwrap.wrap(
                comment.lstrip("# ").rstrip(), width,
                initial_indent=indent + "# ", subsequent_indent=indent + "# ",
            )  # fmt: skip
            line = code.rstrip()
            if not line.strip():
                continue
        while len(line) > width:
            cut = _last_free_space(line, width - 2, len(indent))
            if cut is None:
                break
            out.append(line[:cut] + " \\")
            line = indent + "    " + line[cut:].lstrip()
        out.append(line)
    return "\n".join(out) + ("\n" if source.endswith("\n") else "")


def _string_mask(line: str) -> list[bool]:
    """Per character of ``line``: inside a string literal or a comment."""
    mask, quote, i = [], None, 0
    while i < len(line):
        ch = line[i]
        if quote is None and ch == "#":
            return mask + [True] * (len(line) - i)
        if quote is None and ch in "'\"":
            quote = ch
        elif quote is not None and ch == "\\":
            mask += [True, True]
            i += 2
            continue
        elif ch == quote:
            quote = None
            mask.append(True)
            i += 1
            continue
        mask.append(quote is not None)
        i += 1
    return mask


def _split_comment(line: str) -> tuple[str, str]:
    """``line`` split into its code and its comment (empty if none)."""
    mask = _string_mask(line)
    for i, ch in enumerate(line):
        if ch == "#" and mask[i] and (i == 0 or not mask[i - 1]):
            return line[:i], line[i:]
    return line, ""


def _last_free_space(line: str, limit: int, start: int) -> int | None:
    """Index of the last space before ``limit`` that is outside strings
    and past the indentation, or None."""
    mask = _string_mask(line)
    for i in range(min(limit, len(line) - 1), start, -1):
        if line[i] == " " and not mask[i] and line[i - 1] != " ":
            return i
    return None


# Sphinx roles in docstrings (:func:`x`, :meth:`~a.b.c`) and reST literals
# (``x``), which a reader of a listing expects as plain `x`.
_ROLE = re.compile(
    r":(?:py:)?(?:func|meth|class|attr|mod|data|obj|exc):`([^`]+)`"
)
_LITERAL = re.compile(r"``([^`]+)``")


def _role_target(match: re.Match) -> str:
    target = match.group(1).strip()
    if target.startswith("~"):  # Sphinx shows only the last component
        target = target[1:].rsplit(".", 1)[-1]
    return f"`{target.lstrip('.')}`"


def _plain_markup(source: str) -> str:
    """``source`` with docstring markup as a reader expects it: roles and
    double backticks become single-backtick names.
    """
    return _LITERAL.sub(r"`\1`", _ROLE.sub(_role_target, source))


def check_answer(
    answer: Any,
    expected: Any,
    *,
    tol: float = 1e-6,
    validate: Callable[[Any], bool] | None = None,
) -> str:
    """Compare an exercise answer with the expected value and say so in one
    line.

    ``None`` means "not attempted yet" (the notebook still runs end to end).
    Numbers are compared with a relative tolerance, sequences element by
    element, anything else with ``==`` or ``validate``.
    """
    if answer is None:
        message = (
            "Not attempted yet: replace None with your answer and run this "
            "cell again."
        )
    else:
        ok = (
            validate(answer)
            if validate is not None
            else _same(answer, expected, tol)
        )
        message = (
            "Correct."
            if ok
            else f"Not quite: {answer!r} is not what the model gives. "
            "Try again."
        )
    print(message)
    return message


def _same(a: Any, b: Any, tol: float) -> bool:
    if isinstance(b, (int, float)) and isinstance(a, (int, float)):
        return math.isclose(float(a), float(b), rel_tol=tol, abs_tol=tol)
    if isinstance(b, (list, tuple)) and isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y, tol) for x, y in zip(a, b))
    return a == b


def html_table(
    rows: Sequence[Sequence[Any]],
    header: Sequence[str],
    *,
    align: str | None = None,
    caption: str | None = None,
) -> Any:
    """A table as HTML, so that a phone can read what a printed text table
    would cut off (chapters print tables through this, not ``print``).

    ``align`` has one letter per column, ``l`` or ``r`` (default: numbers
    right, text left). Cells are shown with ``str``; format numbers first.
    Returns an IPython ``HTML`` object (its text outside IPython).
    """
    import html

    if align is None:
        first = rows[0] if rows else ()
        align = "".join(
            "r" if isinstance(cell, (int, float)) else "l" for cell in first
        ) or "l" * len(header)
    style = {"l": "text-align:left", "r": "text-align:right"}

    def cells(tag: str, values: Sequence[Any]) -> str:
        return "".join(
            f'<{tag} style="{style[align[i % len(align)]]}">'
            f"{html.escape(str(v))}</{tag}>"
            for i, v in enumerate(values)
        )

    parts = ['<table class="g4-table">']
    if caption:
        parts.append(f"<caption>{html.escape(caption)}</caption>")
    parts.append(f"<thead><tr>{cells('th', header)}</tr></thead><tbody>")
    parts.extend(f"<tr>{cells('td', row)}</tr>" for row in rows)
    parts.append("</tbody></table>")
    text = "".join(parts)
    try:
        from IPython.display import HTML
    except ImportError:
        return text
    return HTML(text)
