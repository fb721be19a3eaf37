"""The canonical first code cell of every notebook, and the checks it must
pass.

Notebook authors: run ``python tests/colab_cell.py`` from the repository root
and paste the printed cell as the first code cell of a new notebook (the same
text is in CONTRIBUTING.md). You may add imports after it;
``tests/test_book.py`` checks the rules below, not the exact wording.

Rules for the set-up cell:

* it names the repository with exactly the URL of ``repository.url`` in
  ``_config.yml``;
* every ``pip`` call sits under ``if "google.colab" in sys.modules:``, so the
  cell does nothing locally;
* the package is installed with ``--no-deps`` and no ``pip`` call ever mentions
  torch, so Colab's own PyTorch build is never replaced;
* the other lines of ``requirements.txt`` are installed with their pins (all
  but torch, the package itself and JupyterLab, which Colab replaces), so a
  Colab reader gets the versions a local reader gets;
* no shell escapes (``!pip``) or ``%pip`` magics, which would run everywhere,
  not only on Colab.
"""

from __future__ import annotations

import ast
import re
import textwrap
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
CONFIG_PATH = ROOT / "_config.yml"

REQUIREMENTS_PATH = ROOT / "requirements.txt"
# Lines of requirements.txt the Colab cell leaves out: torch (Colab's own
# build stays), the package (installed from the repository) and JupyterLab
# (Colab has its own front end).
COLAB_SKIPS = ("torch", "-e", "jupyterlab")

_TEMPLATE = """\
# Set-up. On Colab this installs the book's package from the repository
# and the pinned packages of its requirements.txt; it never touches
# Colab's torch. Locally (after the README's set-up) it does nothing.
import subprocess
import sys

if "google.colab" in sys.modules:
    REPO_URL = "{repo_url}"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q", "--no-deps",
         f"git+{{REPO_URL}}"],
        check=True,
    )
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "-q",
{pins}],
        check=True,
    )"""


def requirement_lines(path: Path = REQUIREMENTS_PATH) -> list[str]:
    """The requirement lines of ``requirements.txt``, comments dropped."""
    lines = (
        line.split("#")[0].strip() for line in path.read_text().split("\n")
    )
    return [line for line in lines if line]


def requirement_name(line: str) -> str:
    """The distribution a requirement line names, normalised as pip does
    (``Jinja2>=3`` -> ``jinja2``); ``-e`` for an editable install."""
    name = re.match(r"-e|[A-Za-z0-9._-]+", line).group(0)
    return re.sub(r"[-_.]+", "-", name).lower()


def colab_pins(path: Path = REQUIREMENTS_PATH) -> list[str]:
    """What the Colab cell installs: requirements.txt without its skips."""
    lines = requirement_lines(path)
    return [x for x in lines if requirement_name(x) not in COLAB_SKIPS]


def repository_url(config_path: Path = CONFIG_PATH) -> str:
    """The single repository URL of the book, read from ``_config.yml``."""
    config = yaml.safe_load(config_path.read_text(encoding="utf-8"))
    return str(config["repository"]["url"]).rstrip("/")


def setup_cell_source(repo_url: str | None = None) -> str:
    """The canonical set-up cell, with the repository URL filled in."""
    url = repo_url or repository_url()
    pins = ", ".join(f'"{pin}"' for pin in colab_pins())
    indent = " " * 9
    pins = textwrap.fill(
        pins, width=79, initial_indent=indent, subsequent_indent=indent,
        break_on_hyphens=False, break_long_words=False,
    )  # fmt: skip
    return _TEMPLATE.format(repo_url=url, pins=pins)


def _is_colab_guard(test: ast.expr) -> bool:
    """True for the expression ``"google.colab" in sys.modules``."""
    return (
        isinstance(test, ast.Compare)
        and isinstance(test.left, ast.Constant)
        and test.left.value == "google.colab"
        and len(test.ops) == 1
        and isinstance(test.ops[0], ast.In)
        and len(test.comparators) == 1
        and ast.unparse(test.comparators[0]) == "sys.modules"
    )


def _strings_in(node: ast.AST) -> list[str]:
    """Every string constant inside ``node`` (f-string pieces included)."""
    return [
        n.value
        for n in ast.walk(node)
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    ]


def check_setup_cell(source: str, repo_url: str) -> list[str]:
    """Return a list of problems with a set-up cell; an empty list means the
    cell is acceptable.
    """
    problems: list[str] = []
    for line in source.splitlines():
        stripped = line.lstrip()
        if stripped.startswith(("!", "%")):
            problems.append(
                "shell escapes and magics are not allowed in the set-up cell: "
                f"{stripped!r}"
            )
    if problems:
        return problems
    try:
        tree = ast.parse(source)
    except SyntaxError as err:
        return [f"the set-up cell is not valid Python: {err}"]

    urls = set(re.findall(r"https?://[^\s\"'}]+", source))
    if repo_url not in urls:
        problems.append(
            "the set-up cell must contain the repository URL "
            f"{repo_url!r} exactly"
        )
    stray = sorted(
        u for u in urls if "github.com" in u and u.rstrip("/") != repo_url
    )
    if stray:
        problems.append(f"the set-up cell names another repository: {stray}")

    # Map every node to the chain of `if` tests that guard it.
    guarded: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If) and _is_colab_guard(node.test):
            for stmt in node.body:
                guarded.update(id(n) for n in ast.walk(stmt))

    pip_calls = [
        node
        for node in ast.walk(tree)
        if isinstance(node, ast.Call)
        and any(s == "pip" or s.startswith("pip ") for s in _strings_in(node))
    ]
    if not pip_calls:
        problems.append(
            "the set-up cell never calls pip to install the package on Colab"
        )
    installs_repo = False
    for call in pip_calls:
        text = ast.unparse(call)
        if id(call) not in guarded:
            problems.append(
                f'pip runs outside `if "google.colab" in sys.modules:`: {text}'
            )
        args = _strings_in(call)
        if any(re.search(r"\btorch", a) for a in args):
            problems.append(
                "a pip call mentions torch "
                f"(Colab's build must not be touched): {text}"
            )
        if "REPO_URL" in text or repo_url in text:
            installs_repo = True
            if "--no-deps" not in args:
                problems.append(
                    f"the package must be installed with --no-deps: {text}"
                )
    if pip_calls and not installs_repo:
        problems.append(
            "no pip call installs the package from the repository URL"
        )
    return problems


if __name__ == "__main__":
    print(setup_cell_source())
