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
TOOLING_COMMENT = re.compile(r"#\s*(nbval-|fmt:|noqa)")
EXERCISE_TITLE = re.compile(r"^\*\*Exercise (\d+)\.(\d+) — [^*]+\.\*\*")
# Printed output lines at the site's code size (book/_static/code-column.css)
MAX_PRINTED = 88


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


# --- (d) every ignored output says why, in metadata ---------------------


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_nb_id)
def test_ignored_outputs_are_explained(path):
    """A cell tagged nbval-ignore-output or nbval-skip says why in its
    metadata ("nbval_reason"), not in a comment the reader would see.
    """
    problems = []
    for index, cell in enumerate(_code_cells(_read(path))):
        tags = set(cell.get("metadata", {}).get("tags", []))
        if not tags.intersection(IGNORE_TAGS):
            continue
        reason = cell.get("metadata", {}).get("nbval_reason")
        if not (isinstance(reason, str) and reason.strip()):
            problems.append(
                f"code cell {index} is tagged "
                f"{sorted(tags & set(IGNORE_TAGS))} but its metadata has "
                'no "nbval_reason" (e.g. "timings vary by machine")'
            )
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_nb_id)
def test_widget_cells_are_not_compared(path):
    """A widget's model ids differ from one kernel to the next: its cell is
    tagged nbval-ignore-output (with its nbval_reason, checked above).
    """
    untagged = [
        index
        for index, cell in enumerate(_code_cells(_read(path)))
        if any(
            "application/vnd.jupyter.widget-view+json" in o.get("data", {})
            for o in cell.get("outputs", [])
        )
        and "nbval-ignore-output"
        not in cell.get("metadata", {}).get("tags", [])
    ]
    assert not untagged, (
        f"{path.name}: code cells {untagged} show widgets but are not tagged "
        'nbval-ignore-output (reason: "widget model ids differ per kernel")'
    )


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_nb_id)
def test_code_shown_to_readers_has_no_tooling_comments(path):
    """nbval, ruff and formatters are told through cell tags, metadata and
    pyproject.toml; the code a reader sees carries none of their comments.
    """
    hits = []
    for index, cell in enumerate(_code_cells(_read(path))):
        for lineno, line in enumerate(cell.source.splitlines(), start=1):
            if TOOLING_COMMENT.search(line):
                hits.append(
                    f"code cell {index}, line {lineno}: {line.strip()}"
                )
    assert not hits, (
        f"{path.name}: tooling comments in code shown to readers (use cell "
        "tags and metadata instead):\n" + "\n".join(hits)
    )


# --- house style ----------------------------------------------------------


def _chapter(path: Path) -> int:
    return int(path.stem[:2])


def _markdown_cells(nb):
    return [
        (index, cell)
        for index, cell in enumerate(nb.cells)
        if cell.cell_type == "markdown"
    ]


def _without_code(text: str) -> str:
    """Markdown with fenced code blocks and inline code removed."""
    text = re.sub(r"^(```|~~~).*?^\1", "", text, flags=re.M | re.S)
    return re.sub(r"`[^`\n]*`", "", text)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_nb_id)
def test_title_carries_the_chapter_number(path):
    """The first cell is the title ``# N. ...`` (no leading zero); section
    headings carry no numbers.
    """
    nb = _read(path)
    first = nb.cells[0]
    title = first.source.strip().splitlines()[0] if first.source else ""
    assert first.cell_type == "markdown" and re.match(
        rf"^# {_chapter(path)}\. \S", title
    ), (
        f"{path.name}: the first cell must start with the title "
        f"'# {_chapter(path)}. ...', not {title[:60]!r}"
    )
    numbered = [
        f"markdown cell {index}: {line.strip()}"
        for index, cell in _markdown_cells(nb)
        for line in _without_code(cell.source).splitlines()
        if re.match(r"^#{2,6}\s+\d+(\.\d+)*[.)]?\s", line)
    ]
    assert not numbered, (
        f"{path.name}: section headings carry no numbers:\n"
        + "\n".join(numbered)
    )


def _chapter_reference_problems(name: str, text: str, page: Path):
    """Unlinked "chapter N" mentions, and chapter links whose text has a
    leading zero or whose target is not that chapter's notebook.
    """
    text = _without_code(text)
    problems = []
    link = re.compile(r"\[([^\]]*)\]\(([^)\s]*)\)")
    for match in link.finditer(text):
        label, target = match.groups()
        number = re.fullmatch(r"[Cc]hapter (\d+)", label.strip())
        if not number:
            continue
        if number.group(1).startswith("0") and number.group(1) != "0":
            problems.append(f"{name}: {label!r} has a leading zero")
        file = target.split("#")[0]
        resolved = (page.parent / file).resolve() if file else page
        if not (
            resolved.suffix == ".ipynb"
            and resolved.is_file()
            and resolved.parent == NOTEBOOK_DIR
            and int(resolved.stem[:2]) == int(number.group(1))
        ):
            problems.append(
                f"{name}: [{label}]({target}) does not link to chapter "
                f"{int(number.group(1))}'s notebook"
            )
    folder = "" if page.parent == NOTEBOOK_DIR else "../notebooks/"
    for match in re.finditer(r"\b[Cc]hapter\s+(\d+)", link.sub("", text)):
        number = int(match.group(1))
        target = next(
            (nb.name for nb in NOTEBOOKS if _chapter(nb) == number), "?"
        )
        problems.append(
            f"{name}: {match.group(0)!r} is not a link (write "
            f"[chapter {number}]({folder}{target}))"
        )
    return problems


def test_chapter_references_are_links():
    problems = []
    for page in sorted(BOOK_DIR.glob("*.md")):
        problems += _chapter_reference_problems(
            page.relative_to(ROOT).as_posix(),
            page.read_text(encoding="utf-8"),
            page,
        )
    for path in NOTEBOOKS:
        for index, cell in _markdown_cells(_read(path)):
            problems += _chapter_reference_problems(
                f"{path.name} (markdown cell {index})", cell.source, path
            )
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_nb_id)
def test_exercise_titles(path):
    """``**Exercise N.k — Short title.**`` with N the chapter and k = 1, 2,
    ... in order.
    """
    chapter = _chapter(path)
    problems, numbers = [], []
    for index, cell in _markdown_cells(_read(path)):
        for line in _without_code(cell.source).splitlines():
            if not re.match(r"^\s*(#+\s*|\*\*|__)?Exercise\b", line):
                continue
            match = EXERCISE_TITLE.match(line.strip())
            if not match:
                problems.append(
                    f"markdown cell {index}: {line.strip()[:70]!r} is not "
                    f"'**Exercise {chapter}.k — Short title.** ...'"
                )
            elif int(match.group(1)) != chapter:
                problems.append(
                    f"markdown cell {index}: Exercise {match.group(1)}."
                    f"{match.group(2)} in chapter {chapter}"
                )
            else:
                numbers.append(int(match.group(2)))
    if numbers != list(range(1, len(numbers) + 1)):
        problems.append(f"exercises numbered {numbers}, not 1, 2, ...")
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


def _printed_text(output) -> str:
    """The text an output shows as plain text on the page (streams, and
    results that have no richer representation).
    """
    if output.output_type == "stream":
        return output.text
    data = output.get("data", {})
    if output.output_type in ("execute_result", "display_data") and not (
        set(data) - {"text/plain"}
    ):
        return data.get("text/plain", "")
    return ""


@pytest.mark.parametrize("path", NOTEBOOKS, ids=_nb_id)
def test_printed_lines_fit_the_column(path):
    """No printed line is wider than the text column (88 characters at the
    site's code size); tables go through html_table instead.
    """
    wide = []
    for index, cell in enumerate(_code_cells(_read(path))):
        for output in cell.get("outputs", []):
            for line in _printed_text(output).splitlines():
                if len(line) > MAX_PRINTED:
                    wide.append(
                        f"code cell {index}: {len(line)} characters: "
                        f"{line[:60]}..."
                    )
    assert not wide, (
        f"{path.name}: printed lines over {MAX_PRINTED} characters:\n"
        + "\n".join(wide)
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
