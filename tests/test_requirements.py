"""A reader's install runs every chapter: every distribution a notebook
imports, directly or through the package, is a line of requirements.txt,
and the Colab set-up cell of every notebook installs the same pins."""

from __future__ import annotations

import ast
import json
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
from colab_cell import colab_pins, requirement_lines, requirement_name

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))
PACKAGE = "gemma4_lite"  # requirements.txt installs it with `-e .`


def imported_modules(source: str) -> set[str]:
    """Top-level names of the modules ``source`` imports, anywhere in it
    (inside functions too); IPython magics and shell lines are dropped."""
    lines = source.splitlines()
    code = "\n".join(x for x in lines if not x.lstrip().startswith(("%", "!")))
    names = set()
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0:
            names.add(node.module.split(".")[0])
    return names


def code_cells(path: Path) -> list[str]:
    cells = json.loads(path.read_text(encoding="utf-8"))["cells"]
    return ["".join(c["source"]) for c in cells if c["cell_type"] == "code"]


def package_imports() -> set[str]:
    files = (ROOT / "src" / PACKAGE).rglob("*.py")
    return set().union(*(imported_modules(f.read_text()) for f in files))


def unlisted(modules: set[str]) -> list[str]:
    """The modules no line of requirements.txt provides, with the
    distributions that provide them here."""
    listed = {requirement_name(line) for line in requirement_lines()}
    assert "-e" in listed, "requirements.txt must install the package (-e .)"
    providers = packages_distributions()
    missing = []
    for module in sorted(modules - {PACKAGE}):
        if module in sys.stdlib_module_names:
            continue
        names = {requirement_name(d) for d in providers.get(module, [])}
        if not names & listed:
            missing.append(f"{module} ({', '.join(sorted(names)) or '?'})")
    return missing


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_every_notebook_import_is_in_requirements(path):
    modules = set().union(*map(imported_modules, code_cells(path)))
    missing = unlisted(modules)
    assert not missing, f"{path.name} imports, not in requirements.txt: " + (
        ", ".join(missing)
    )


def test_every_package_import_is_in_requirements():
    # the notebooks import the package, which imports these in turn
    missing = unlisted(package_imports())
    assert not missing, "not in requirements.txt: " + ", ".join(missing)


def test_the_check_sees_imports_in_functions_and_skips_magics():
    source = "%matplotlib inline\n!pip list\nimport a.b\n" + (
        "def f():\n    from c.d import e\n    from . import g\n"
    )
    assert imported_modules(source) == {"a", "c"}
    assert unlisted({"json", "transformers", PACKAGE}) == []
    assert unlisted({"pytest"}) == ["pytest (pytest)"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_the_colab_cell_installs_the_requirements(path):
    setup = ast.parse(code_cells(path)[0])
    strings = {
        node.value
        for node in ast.walk(setup)
        if isinstance(node, ast.Constant) and isinstance(node.value, str)
    }
    missing = [pin for pin in colab_pins() if pin not in strings]
    assert not missing, (
        f"the set-up cell of {path.name} does not install {missing}: "
        "replace it with the output of `python tests/colab_cell.py`"
    )
