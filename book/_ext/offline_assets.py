"""Serve MathJax, RequireJS and the Jupyter widget manager from the site.

By default a Jupyter Book page loads MathJax (for the maths), RequireJS and the
widget manager ``@jupyter-widgets/html-manager`` (which draws the widgets from
the state saved in a notebook) from public CDNs. A reader offline or behind a
firewall then sees raw ``\\(\\omega_j\\)`` and no widgets. This extension
copies the three from ``node_modules/`` (installed from the npm registry at
the exact versions of package.json and package-lock.json by scripts/setup.sh)
into ``_build/html/_static/vendor/`` and points the pages at those copies:

* ``mathjax_path`` (Sphinx's MathJax extension) becomes
  ``vendor/mathjax/tex-mml-chtml.js``; MathJax finds its fonts and the TeX
  extensions it loads on demand next to that file;
* ``nb_ipywidgets_js`` (myst-nb: the scripts added to every page that carries
  widget state) becomes ``vendor/requirejs/require.js``, ``widgets-setup.js``
  (book/_ext/widgets_setup.js, see its comments) and
  ``vendor/html-manager/embed-amd.js``, without the CDN attribute and without
  ``crossorigin``, which would stop a browser from running the files when the
  site is opened from disk (file:// URLs).

Relative paths in both settings are resolved by Sphinx against ``_static/``.
The values are set here, in one place, rather than in _config.yml, so that the
paths and the copied files cannot drift apart. The build stops with an error
naming scripts/setup.sh when ``node_modules/`` lacks a file.
"""

from __future__ import annotations

import shutil
from pathlib import Path

from sphinx.errors import ExtensionError

ROOT = Path(__file__).resolve().parents[2]
NODE_MODULES = ROOT / "node_modules"
VENDOR = "vendor"

# (file or folder in node_modules, destination under _static/vendor)
_MATHJAX = [
    # The combined component the pages load, plus what it loads on demand:
    # TeX extensions (input/), the CHTML fonts (output/chtml), the menu (ui/),
    # the accessibility tools and their speech rules (a11y/, sre/).
    (f"mathjax/es5/{name}", f"mathjax/{name}")
    for name in (
        "tex-mml-chtml.js",
        "input",
        "output/chtml",
        "output/chtml.js",
        "ui",
        "a11y",
        "sre",
        "adaptors",
    )
] + [("mathjax/LICENSE", "mathjax/LICENSE")]
_WIDGETS = "@jupyter-widgets/html-manager"
COPIES = (
    *_MATHJAX,
    ("mathjax/package.json", "mathjax/package.json"),
    ("requirejs/require.js", "requirejs/require.js"),
    ("requirejs/package.json", "requirejs/package.json"),
    # embed-amd.js finds its icon fonts next to itself, in dist/.
    (f"{_WIDGETS}/dist", "html-manager"),
    (f"{_WIDGETS}/package.json", "html-manager/package.json"),
)

MATHJAX_PATH = f"{VENDOR}/mathjax/tex-mml-chtml.js"
# In this order: RequireJS, this folder's widgets_setup.js (where RequireJS
# finds the widget manager, and a MathJax 2 call the widgets make, answered
# with MathJax 3), then the widget manager.
SETUP_JS = Path(__file__).with_name("widgets_setup.js")
WIDGET_SCRIPTS = {
    f"{VENDOR}/requirejs/require.js": {},
    "widgets-setup.js": {},
    f"{VENDOR}/html-manager/embed-amd.js": {},
}
# Files of the packages never needed by a page: source maps, and the
# html-manager builds for pages without RequireJS (embed-amd.js is the one
# used with it).
SKIPPED_SUFFIXES = (".map", ".d.ts")
SKIPPED_NAMES = ("embed.js", "libembed-amd.js")


def _sources() -> list[tuple[Path, str]]:
    """(source in node_modules, destination relative to _static/vendor)."""
    missing = [
        source for source, _ in COPIES if not (NODE_MODULES / source).exists()
    ]
    if missing:
        raise ExtensionError(
            "offline_assets: these files of the site's JavaScript packages "
            f"are missing from node_modules/: {', '.join(missing)}. Run "
            "`bash scripts/setup.sh`, which installs them from "
            "package-lock.json."
        )
    return [(NODE_MODULES / source, target) for source, target in COPIES]


def _configure(app, config) -> None:
    _sources()  # fail before reading any page when a file is missing
    config.mathjax_path = MATHJAX_PATH
    config.nb_ipywidgets_js = dict(WIDGET_SCRIPTS)


def _ignore(directory, names):
    return [
        n for n in names if n.endswith(SKIPPED_SUFFIXES) or n in SKIPPED_NAMES
    ]


def _copy(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    static = Path(app.builder.outdir) / "_static"
    shutil.copy2(SETUP_JS, static / "widgets-setup.js")
    vendor = static / VENDOR
    for source, relative in _sources():
        destination = vendor / relative
        if source.is_dir():
            shutil.copytree(
                source, destination, ignore=_ignore, dirs_exist_ok=True
            )
        else:
            destination.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, destination)


def setup(app):
    # After myst-nb and Sphinx's MathJax extension have registered their
    # settings and _config.yml has been read, before any page is read.
    app.connect("config-inited", _configure, priority=900)
    app.connect("build-finished", _copy)
    return {
        "version": "1.0",
        "parallel_read_safe": True,
        "parallel_write_safe": True,
    }
