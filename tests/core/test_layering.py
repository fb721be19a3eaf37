"""The arrow between the two halves of the package points one way: the core
(every module of ``gemma4_lite`` outside ``gemma4_lite.book``) runs a model
without importing anything the chapters need, such as the accounting of
parameters and cache bytes (CONTRIBUTING.md, "Where things live")."""

import ast
import subprocess
import sys
from pathlib import Path

import gemma4_lite

ROOT = Path(gemma4_lite.__file__).parent


def book_imports(source: str) -> list[str]:
    """Import statements of ``source`` that reach ``gemma4_lite.book``,
    including those inside functions, written absolute or relative."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 1 and not module:  # from . import book
                names = [alias.name for alias in node.names]
            else:
                names = [module]
            if node.level == 1:
                names = [f"gemma4_lite.{name}" for name in names]
        else:
            continue
        found += [
            ast.unparse(node)
            for name in names
            if name == "gemma4_lite.book"
            or name.startswith("gemma4_lite.book.")
        ]
    return found


def test_the_scan_finds_every_way_to_import_the_book():
    assert book_imports("from .book import accounting")
    assert book_imports("from .book.accounting import count_parameters")
    assert book_imports("from . import book")
    assert book_imports("def f():\n    import gemma4_lite.book.plots\n")
    assert book_imports("from gemma4_lite.book import tiny")
    assert book_imports("from .config import Gemma4Config\nimport torch") == []
    assert book_imports("from .bookkeeping import x") == []


def test_no_core_module_imports_the_book():
    modules = sorted(ROOT.glob("*.py"))
    assert ROOT / "model.py" in modules
    offending = {path.name: book_imports(path.read_text()) for path in modules}
    assert {k: v for k, v in offending.items() if v} == {}


def test_importing_the_core_loads_nothing_of_the_book():
    core = sorted(path.stem for path in ROOT.glob("*.py"))
    script = (
        "import sys\n"
        + "".join(
            f"import gemma4_lite.{name}\n"
            for name in core
            if name != "__init__"
        )
        + "print(sorted(m for m in sys.modules"
        " if m.startswith('gemma4_lite.book')))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        check=True,
    )
    assert out.stdout.strip() == "[]"
