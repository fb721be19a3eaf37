"""Checks on the book's structure and on the committed notebooks.

These tests read files only; they do not execute notebooks (nbval does that in
scripts/test.sh).
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat
import pytest
import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
from colab_cell import check_setup_cell, repository_url, setup_cell_source  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
NOTEBOOK_DIR = ROOT / "notebooks"
BOOK_DIR = ROOT / "book"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
IGNORE_TAGS = ("nbval-ignore-output", "nbval-skip")
FORBIDDEN = re.compile(r"\bTODO\b|\bTBD\b|coming soon", re.IGNORECASE)


def _nb_id(path: Path) -> str:
    return path.stem


def _read(path: Path) -> nbformat.NotebookNode:
    return nbformat.read(path, as_version=4)


def _toc_files() -> list[str]:
    """Every `file:` entry of _toc.yml (root included), in order."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text(encoding="utf-8"))
    files = [toc["root"]]

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for item in node:
                walk(item)

    walk({k: v for k, v in toc.items() if k != "root"})
    return files


def _resolve(entry: str) -> Path | None:
    """The file a toc entry points to (entries carry no extension)."""
    base = ROOT / entry
    for suffix in ("", ".ipynb", ".md"):
        candidate = base.with_name(base.name + suffix)
        if candidate.is_file():
            return candidate
    return None


def _code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


# --- configuration -----------------------------------------------------------


def test_config_names_one_repository_and_colab():
    config = yaml.safe_load((ROOT / "_config.yml").read_text(encoding="utf-8"))
    assert (
        config["repository"]["url"]
        == "https://github.com/paper-x-code/dissecting-gemma4"
    )
    assert config["repository"]["branch"] == "main"
    assert (
        config["launch_buttons"]["colab_url"]
        == "https://colab.research.google.com"
    )
    assert config["execute"]["execute_notebooks"] == "off"
    assert config["only_build_toc_files"] is True
    assert config["bibtex_bibfiles"] == ["book/references.bib"]


def test_docs_name_only_the_configured_repository():
    """The repository URL lives in _config.yml; README and CONTRIBUTING must
    not drift from it.
    """
    url = repository_url()
    for name in ("README.md", "CONTRIBUTING.md"):
        text = (ROOT / name).read_text(encoding="utf-8")
        for found in re.findall(r"github(?:\.com)?/([\w.-]+/[\w.-]+)", text):
            assert f"https://github.com/{found}" == url, (
                f"{name} names {found}, not {url}"
            )


def test_canonical_setup_cell_passes_its_own_check():
    assert check_setup_cell(setup_cell_source(), repository_url()) == []


def test_contributing_shows_the_canonical_setup_cell():
    text = (ROOT / "CONTRIBUTING.md").read_text(encoding="utf-8")
    assert setup_cell_source() in text, (
        "CONTRIBUTING.md must show the cell printed by tests/colab_cell.py"
    )


# --- (b) table of contents ---------------------------------------------------


def test_every_toc_entry_exists():
    missing = [entry for entry in _toc_files() if _resolve(entry) is None]
    assert not missing, f"_toc.yml lists files that do not exist: {missing}"


def test_every_notebook_is_in_the_toc():
    listed = {Path(entry).with_suffix("").as_posix() for entry in _toc_files()}
    orphans = [
        nb.relative_to(ROOT).with_suffix("").as_posix() for nb in NOTEBOOKS
    ]
    orphans = [name for name in orphans if name not in listed]
    assert not orphans, f"notebooks missing from _toc.yml: {orphans}"


def test_toc_notebooks_live_in_notebooks_folder():
    for entry in _toc_files():
        path = _resolve(entry)
        if path is not None and path.suffix == ".ipynb":
            assert path.parent == NOTEBOOK_DIR, (
                f"{entry}: notebooks belong in notebooks/"
            )
            assert re.match(r"^\d\d_[a-z0-9_]+$", path.stem), (
                f"{entry}: use a two-digit order prefix"
            )


# --- (a) Colab set-up cell ---------------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_nb_id)
def test_first_code_cell_is_the_colab_setup(path):
    cells = [c for c in _code_cells(_read(path)) if c.source.strip()]
    assert cells, f"{path.name} has no code cell"
    problems = check_setup_cell(cells[0].source, repository_url())
    assert not problems, (
        f"{path.name}: first code cell is not a valid set-up cell:\n"
        + "\n".join(problems)
    )


# --- (c) committed with outputs ----------------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_nb_id)
def test_notebook_is_committed_executed(path):
    nb = _read(path)
    counts = []
    for index, cell in enumerate(_code_cells(nb)):
        if not cell.source.strip():
            continue
        assert cell.execution_count is not None, (
            f"{path.name}: code cell {index} was never executed"
        )
        counts.append(cell.execution_count)
        for output in cell.get("outputs", []):
            assert output.output_type != "error", (
                f"{path.name}: code cell {index} is committed with an "
                f"error: {output.get('ename')}"
            )
    assert counts == sorted(counts) and len(set(counts)) == len(counts), (
        f"{path.name}: cells were not run top to bottom "
        f"in one session (execution counts {counts})"
    )


# --- (d) every ignored output says why ---------------------------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_nb_id)
def test_ignored_outputs_are_explained(path):
    for index, cell in enumerate(_code_cells(_read(path))):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if not tags.intersection(IGNORE_TAGS):
            continue
        comments = [
            line
            for line in cell.source.splitlines()
            if line.lstrip().startswith("#")
        ]
        assert any(
            re.search(r"because|varies", line, re.IGNORECASE)
            for line in comments
        ), (
            f"{path.name}: code cell {index} is tagged "
            f"{sorted(tags & set(IGNORE_TAGS))} but has no "
            "'# ... because ...' or '# ... varies ...' comment saying why"
        )


# --- (e) no placeholders -----------------------------------------------------


def _prose_sources():
    for page in sorted(BOOK_DIR.glob("*.md")):
        yield (
            page.relative_to(ROOT).as_posix(),
            page.read_text(encoding="utf-8"),
        )
    for path in NOTEBOOKS:
        for index, cell in enumerate(_read(path).cells):
            if cell.cell_type == "markdown":
                yield (
                    f"{path.relative_to(ROOT).as_posix()} "
                    f"(markdown cell {index})",
                    cell.source,
                )


def test_no_placeholders_in_prose():
    hits = []
    for name, text in _prose_sources():
        for lineno, line in enumerate(text.splitlines(), start=1):
            if FORBIDDEN.search(line):
                hits.append(f"{name}:{lineno}: {line.strip()}")
    assert not hits, "placeholder text found:\n" + "\n".join(hits)


def test_bibliography_is_cited():
    text = "\n".join(source for _, source in _prose_sources())
    keys = set(
        re.findall(
            r"^@\w+\{([^,]+),",
            (BOOK_DIR / "references.bib").read_text(encoding="utf-8"),
            re.M,
        )
    )
    cited = set()
    for group in re.findall(r"\{cite(?::\w+)?\}`([^`]+)`", text):
        cited.update(key.strip() for key in group.split(","))
    unknown = cited - keys
    assert not unknown, (
        f"citations with no entry in book/references.bib: {sorted(unknown)}"
    )
    assert cited, "no page cites anything"
