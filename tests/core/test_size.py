"""The core stays small enough to hold in one's head. Issue 20 sets the
budget at 1,900 code lines (blank, comment and docstring lines not counted)
over every module of the package outside ``gemma4_lite.book``, the tokenizer
and the MTP drafter included; CONTRIBUTING.md reports the count per module.
A change that needs more has to pay for it elsewhere in the core."""

import ast
import io
import tokenize
from pathlib import Path

import gemma4_lite

BUDGET = 1_900


def code_lines(source: str) -> int:
    """Lines holding code: not blank, not only a comment, not part of a
    docstring (a string literal that is a whole statement)."""
    skip = set()
    for node in ast.walk(ast.parse(source)):
        if (
            isinstance(node, ast.Expr)
            and isinstance(node.value, ast.Constant)
            and isinstance(node.value.value, str)
        ):
            skip.update(range(node.lineno, node.end_lineno + 1))
    lines = set()
    tokens = tokenize.generate_tokens(io.StringIO(source).readline)
    ignored = {
        tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
        tokenize.DEDENT, tokenize.ENDMARKER,
    }  # fmt: skip
    for tok in tokens:
        if tok.type not in ignored:
            lines.update(range(tok.start[0], tok.end[0] + 1))
    return len(lines - skip)


def core_modules() -> list[Path]:
    """Every module file of the package outside ``gemma4_lite.book``,
    including those imported only on demand (``hf_config``)."""
    root = Path(gemma4_lite.__file__).parent
    return sorted(root.glob("*.py"))


def test_the_counter_skips_blanks_comments_and_docstrings():
    source = (
        '"""Module\ndocstring."""\n\n'
        "# a comment\n"
        "def f(x):\n"
        '    """Doc."""\n'
        "    return (x +  # why\n"
        "            1)\n"
    )
    assert code_lines(source) == 3


def test_the_core_stays_within_its_line_budget():
    files = core_modules()
    root = Path(gemma4_lite.__file__).parent
    assert root / "model.py" in files and root / "tokenizer.py" in files
    counts = {f.name: code_lines(f.read_text()) for f in files}
    total = sum(counts.values())
    assert total <= BUDGET, f"core is {total} code lines: {counts}"


if __name__ == "__main__":  # print the count for CONTRIBUTING.md
    files = core_modules()
    counts = {f.name: code_lines(f.read_text()) for f in files}
    for name, n in sorted(counts.items()):
        print(f"{name:16} {n:5}")
    print(f"{'total':16} {sum(counts.values()):5}")
