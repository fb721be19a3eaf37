"""Browser check of the built website, with the network off.

Drives Debian's headless Chromium over the landing page and every page of
``_toc.yml``, twice: served on 127.0.0.1 and opened from disk (file:// URLs,
as a reader who opens ``_build/html/index.html`` does). Chromium resolves no
host name (``--host-resolver-rules``), so a page that needed a CDN would fail
here as it fails for a reader offline or behind a firewall. For each page it
checks that

* the page asked for nothing but the site's own files (every request the
  browser made, from its performance log), every file it asked for loaded,
  every font its style sheets name is a file of the site, and the console
  has no error;
* every image rendered and notebook pages carry their Colab launch link;
* the maths is typeset: every maths element holds MathJax output, MathJax
  reported no error, and no raw ``\\(``, ``\\[`` or ``$$`` is left in the text;
* every widget renders from the state the notebook saved (which the page
  carries): each widget view is drawn and shows its controls' labels, the
  value each slider and drop-down was saved with, and the output widgets'
  saved figures and text; a notebook that shows widgets has them on its page.

On the served pages (1,280 px window) it also checks that

* nothing in the text column pokes out of it, and no box in it cuts or
  scrolls its content sideways (a printed line, a table, a display
  equation, a widget label);
* no code cell shows more than one text output box;
* every widget answers: each control is moved, as a reader would, to each of
  its values (up to MAX_VALUES of them) and the widget must show the output
  precomputed for that value (gemma4_lite.book.widgets.precomputed saves
  each in a Stack jslinked to the control), and not the same output for
  every value; or the control is disabled and the widget shows the
  "Interactive in Jupyter or Colab" callout with a Colab link
  (widgets.inert). A control that moves and changes nothing fails.

A full-page screenshot of each served page is saved in ``_build/screenshots/``
(PNG, 1,265 px wide: the layout of a 1,280 px window), before any control is
moved, so whole pages can be looked at. A static test also reads every built
HTML file for scripts, style sheets or images taken from another host.

Without a built site the test is skipped; ``scripts/test.sh`` builds the site
first and sets ``BOOK_SITE_REQUIRED=1``, which turns every skip into a failure.
"""

from __future__ import annotations

import base64
import functools
import html.parser
import http.server
import json
import os
import re
import shutil
import struct
import sys
import tempfile
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REQUIRED = os.environ.get("BOOK_SITE_REQUIRED", "") == "1"
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_STATE = "application/vnd.jupyter.widget-state+json"
# How long a page may take to typeset its maths or draw its widgets.
RENDER_TIMEOUT = 45

# Deselected by scripts/test.sh's first step; run on its own with -m site.
pytestmark = pytest.mark.site

sys.path.insert(0, str(Path(__file__).resolve().parent))
from colab_cell import repository_url  # noqa: E402
from test_book import _toc_files  # noqa: E402


def _skip_or_fail(reason: str):
    if REQUIRED:
        pytest.fail(
            f"{reason} (BOOK_SITE_REQUIRED=1, "
            "so this is a failure, not a skip)"
        )
    pytest.skip(reason)


def _toc_pages() -> list[tuple[str, bool]]:
    """(html path relative to the site root, is_notebook) for the root and
    every toc entry.
    """
    entries = _toc_files()
    pages = []
    for entry in entries:
        stem = re.sub(r"\.(ipynb|md)$", "", entry)
        pages.append((f"{stem}.html", (ROOT / f"{stem}.ipynb").is_file()))
    return pages


PAGES = _toc_pages()
IDS = [p for p, _ in PAGES]


# --- what a notebook saved: its widget views and their state ---------------


def _model_refs(value) -> list[str]:
    """Model ids referenced (``IPY_MODEL_<id>``) anywhere inside ``value``."""
    if isinstance(value, str):
        return [value[10:]] if value.startswith("IPY_MODEL_") else []
    if isinstance(value, list):
        return [ref for item in value for ref in _model_refs(item)]
    if isinstance(value, dict):
        return [ref for item in value.values() for ref in _model_refs(item)]
    return []


def _shown_models(
    model_id: str, state: dict, chosen: dict[str, int] | None = None
) -> list[str]:
    """The models a view of ``model_id`` draws, in page order: every child
    of a container, but of a ``Stack`` only the page it shows, which is the
    index of the control linked to it (``chosen`` maps control ids to an
    index; a control not in it keeps its saved one).
    """
    chosen = chosen or {}
    driver = _stack_drivers(state)
    shown, todo = [], [model_id]
    while todo:
        current = todo.pop(0)
        if current in shown or current not in state:
            continue
        shown.append(current)
        model = state[current]
        values = model.get("state", {})
        children = _model_refs(values.get("children", []))
        if model.get("model_name") == "StackModel":
            control = driver.get(current)
            index = values.get("selected_index")
            if control is not None:
                index = chosen.get(
                    control, state[control]["state"].get("index")
                )
            children = (
                [children[index]]
                if isinstance(index, int) and 0 <= index < len(children)
                else []
            )
        todo[:0] = children
    return shown


def _stack_drivers(state: dict) -> dict[str, str]:
    """Stack model id -> the id of the control whose ``index`` is jslinked
    to its ``selected_index`` (as gemma4_lite.book.widgets.precomputed
    saves them).
    """
    drivers = {}
    for model in state.values():
        if model.get("model_name") != "LinkModel":
            continue
        values = model.get("state", {})
        source, target = values.get("source") or [], values.get("target") or []
        if (
            len(source) == 2
            and len(target) == 2
            and source[1] == "index"
            and target[1] == "selected_index"
        ):
            drivers[_model_refs(target[0])[0]] = _model_refs(source[0])[0]
    return drivers


def _output_signature(model_ids: list[str], state: dict) -> dict:
    """What the Output widgets among ``model_ids`` show: their images (the
    base64 PNG data) and their text, whitespace collapsed.
    """
    images, texts = [], []
    for model_id in model_ids:
        model = state[model_id]
        if model.get("model_name") != "OutputModel":
            continue
        for output in model.get("state", {}).get("outputs", []):
            data = output.get("data", {})
            if "image/png" in data:
                images.append(data["image/png"].replace("\n", ""))
            if "text/html" in data:
                texts.append(_html_text(data["text/html"]))
            elif output.get("output_type") == "stream":
                text = output.get("text", "")
                texts.append("".join(text) if isinstance(text, list) else text)
            elif "text/plain" in data and "image/png" not in data:
                texts.append(data["text/plain"])
    return {
        "images": images,
        "texts": [" ".join(t.split()) for t in texts if t.strip()],
    }


class _Text(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.parts: list[str] = []

    def handle_data(self, data):
        self.parts.append(data)

    def handle_starttag(self, tag, attrs):
        self.parts.append(" ")


def _html_text(markup: str) -> str:
    parser = _Text()
    parser.feed(markup if isinstance(markup, str) else "".join(markup))
    return " ".join("".join(parser.parts).split())


def _view_expectation(model_id: str, state: dict) -> dict:
    """What the view of ``model_id`` must show once drawn from ``state``:
    control labels, slider readouts, drop-down choices, and the output
    widgets' saved images and first lines of text (of the page each Stack
    shows).
    """
    labels, readouts, selected, texts = [], [], [], []
    images = 0
    for current in _shown_models(model_id, state):
        model = state[current]
        name, values = model.get("model_name", ""), model.get("state", {})
        if values.get("description"):
            labels.append(values["description"])
        options = values.get("_options_labels") or []
        index = values.get("index")
        chosen = (
            options[index]
            if isinstance(index, int) and 0 <= index < len(options)
            else None
        )
        if name == "DropdownModel" and chosen is not None:
            selected.append(chosen)
        elif name == "SelectionSliderModel" and chosen is not None:
            if values.get("readout", True):
                readouts.append(chosen)
        elif name == "IntSliderModel" and values.get("readout", True):
            if values.get("readout_format", "d") == "d":
                readouts.append(str(values.get("value")))
        elif name == "OutputModel":
            for output in values.get("outputs", []):
                data = output.get("data", {})
                if "image/png" in data:
                    images += 1
                text = output.get("text") or data.get("text/plain") or ""
                if output.get("output_type") == "stream":
                    text = "".join(text) if isinstance(text, list) else text
                    first = next(
                        (ln.strip() for ln in text.splitlines() if ln.strip()),
                        "",
                    )
                    if first:
                        texts.append(first)
    return {
        "model_id": model_id,
        "in_state": model_id in state,
        "labels": labels,
        "readouts": readouts,
        "selected": selected,
        "images": images,
        "texts": texts,
    }


@functools.cache
def _notebook_has_widgets(page: str) -> bool:
    """Whether the notebook behind ``page`` shows a widget in its outputs."""
    notebook = ROOT / page.replace(".html", ".ipynb")
    if not notebook.is_file():
        return False
    nb = json.loads(notebook.read_text(encoding="utf-8"))
    return any(
        WIDGET_VIEW in output.get("data", {})
        for cell in nb.get("cells", [])
        for output in cell.get("outputs", [])
    )


def _saved_views(driver) -> list[dict]:
    """Expectations for every widget view of the loaded page, in page order,
    from the widget state the page carries (the state the notebook saved).
    """
    views, state = _saved_state(driver)
    return [_view_expectation(m, state) for m in views]


def _saved_state(driver) -> tuple[list[str], dict]:
    """The page's widget view ids, in page order, and the widget state it
    carries.
    """
    saved = driver.execute_script(_SAVED_STATE)
    state = {}
    for text in saved["states"]:
        state.update(json.loads(text).get("state", {}))
    return saved["views"], state


# --- the browser ---------------------------------------------------------


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - signature fixed by the base class
        pass


@pytest.fixture(scope="module")
def site_url():
    if not (SITE / "index.html").is_file():
        _skip_or_fail(
            f"no built site at {SITE}/index.html; "
            "run `bash scripts/build_book.sh` first"
        )
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(
        target=server.serve_forever, name="book-site", daemon=True
    )
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


@pytest.fixture(scope="module")
def site_dir():
    if not (SITE / "index.html").is_file():
        _skip_or_fail(
            f"no built site at {SITE}/index.html; "
            "run `bash scripts/build_book.sh` first"
        )
    return SITE.as_uri()


@pytest.fixture(scope="module")
def browser():
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        _skip_or_fail(
            "Debian's chromium and chromium-driver are not installed; "
            "run `bash scripts/setup.sh`"
        )
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _skip_or_fail("selenium is not installed; run `bash scripts/setup.sh`")

    os.environ.setdefault(
        "SE_OFFLINE", "true"
    )  # never let Selenium Manager look for downloads
    profile = tempfile.mkdtemp(prefix="book-site-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        # The network is off: no host name resolves, so nothing but the
        # site served on 127.0.0.1 (or read from disk) can load.
        "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1",
        f"--user-data-dir={profile}",
        "--window-size=1280,2000",
    ):
        options.add_argument(flag)
    options.set_capability(
        "goog:loggingPrefs", {"browser": "ALL", "performance": "ALL"}
    )
    driver = webdriver.Chrome(
        service=Service(str(CHROMEDRIVER)), options=options
    )
    driver.set_page_load_timeout(60)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


_IMAGES_SETTLED = """
const imgs = Array.from(document.images);
imgs.forEach(img => { if (img.loading === 'lazy') img.loading = 'eager'; });
return imgs.every(img => img.complete);
"""

_IMAGE_REPORT = """
return Array.from(document.images).map(img => ({
    src: (img.currentSrc || img.src).slice(0, 120), complete: img.complete,
    width: img.naturalWidth}));
"""

_LINKS = (
    "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href);"
)

# Resolves once MathJax has typeset the page (true), or at once when the
# page loads no MathJax (null); a string is a MathJax failure.
_MATHJAX_DONE = """
const done = arguments[arguments.length - 1];
if (!document.querySelector('script[src*="mathjax"]')) { done(null); return; }
const start = Date.now(), limit = arguments[0] * 1000;
(function wait() {
  const mj = window.MathJax;
  if (mj && mj.startup && mj.startup.promise && mj.typesetPromise) {
    mj.startup.promise.then(() => done(true), e => done(String(e)));
  } else if (Date.now() - start > limit) {
    done('MathJax did not load');
  } else {
    setTimeout(wait, 100);
  }
})();
"""

_MATH_REPORT = r"""
const maths = Array.from(document.querySelectorAll('.math'));
const skip = 'pre, code, script, style, textarea, mjx-container, .highlight';
const walker = document.createTreeWalker(document.body, NodeFilter.SHOW_TEXT, {
  acceptNode(node) {
    const parent = node.parentElement;
    return parent && !parent.closest(skip)
      ? NodeFilter.FILTER_ACCEPT : NodeFilter.FILTER_REJECT;
  }});
const rawPattern = /\\\(|\\\[|\$\$|\$[^$\s][^$]*\\[A-Za-z]+[^$]*\$/;
const raw = [];
while (walker.nextNode()) {
  const text = walker.currentNode.textContent;
  if (rawPattern.test(text)) raw.push(text.trim().slice(0, 100));
}
return {
  maths: maths.length,
  untypeset: maths.filter(m => !m.querySelector('mjx-container'))
    .map(m => m.textContent.trim().slice(0, 80)),
  errors: Array.from(document.querySelectorAll('mjx-merror'))
    .map(e => e.getAttribute('data-mjx-error') || e.textContent).slice(0, 5),
  raw: raw.slice(0, 5),
};
"""

_SAVED_STATE = """
const views = Array.from(document.querySelectorAll(
  'script[type="application/vnd.jupyter.widget-view+json"]'));
const states = Array.from(document.querySelectorAll(
  'script[type="application/vnd.jupyter.widget-state+json"]'));
return {
  views: views.map(s => { try { return JSON.parse(s.textContent).model_id; }
                          catch (e) { return null; } }),
  states: states.map(s => s.textContent),
};
"""

# Every font file the page's style sheets name in @font-face rules, as an
# absolute URL (fonts load only when a glyph needs them, so a wrong address
# would not always show in the requests).
_FONT_URLS = r"""
const urls = new Set();
function walk(rules, base) {
  for (const rule of rules) {
    if (rule.type === CSSRule.FONT_FACE_RULE) {
      const src = rule.style.getPropertyValue('src');
      for (const m of src.matchAll(/url\(\s*["']?([^"')]+)["']?\s*\)/g)) {
        urls.add(new URL(m[1], base).href);
      }
    } else if (rule.type === CSSRule.IMPORT_RULE && rule.styleSheet) {
      try { walk(rule.styleSheet.cssRules, rule.styleSheet.href || base); }
      catch (e) {}
    } else if (rule.cssRules) {
      walk(rule.cssRules, base);
    }
  }
}
for (const sheet of document.styleSheets) {
  try { walk(sheet.cssRules, sheet.href || document.baseURI); } catch (e) {}
}
return Array.from(urls);
"""

# One record per widget view of the page, in page order: what the widget
# manager drew before the view's <script> tag.
_WIDGET_REPORT = """
const type = 'script[type="application/vnd.jupyter.widget-view+json"]';
return Array.from(document.querySelectorAll(type)).map(script => {
  let id = null;
  try { id = JSON.parse(script.textContent).model_id; } catch (e) {}
  const area = script.previousElementSibling;
  if (!area || !area.classList.contains('widget-subarea')) {
    return {model_id: id, drawn: false};
  }
  const box = area.getBoundingClientRect();
  const widget = area.querySelector('.jupyter-widgets');
  return {
    model_id: id,
    drawn: widget !== null && box.width > 0 && box.height > 0,
    text: area.innerText,
    readouts: Array.from(area.querySelectorAll('.widget-readout'))
      .map(e => e.textContent.trim()),
    selected: Array.from(area.querySelectorAll('select'))
      .map(s => s.selectedIndex >= 0 ? s.options[s.selectedIndex].text : null),
    images: Array.from(area.querySelectorAll('img'))
      .filter(img => img.complete && img.naturalWidth > 0).length,
    errors: area.querySelectorAll('.jupyter-widgets-error-widget').length
      + (area.innerText.includes('Error displaying widget') ? 1 : 0),
  };
});
"""


# Everything in the article (the text column) that pokes out of it, and
# every box in it whose content is cut or scrolls sideways (an output line,
# a table, an equation, a widget label wider than its box). An element
# inside a box that clips or scrolls is judged through that box. MathJax
# output and SVG are judged as a whole.
_LAYOUT_REPORT = r"""
const article = document.querySelector('article.bd-article')
  || document.querySelector('main');
const col = article.getBoundingClientRect();
const cells = Array.from(article.querySelectorAll('div.cell'));
function describe(e) {
  const cls = (typeof e.className === 'string' ? e.className : '')
    .trim().split(/\s+/).filter(c => c).slice(0, 2).join('.');
  const cell = e.closest('div.cell');
  const where = cell
    ? ` in code cell #${cells.indexOf(cell) + 1} on the page ("`
      + (cell.querySelector(
        '.cell_input') || cell).innerText.trim().split('\n')[0]
        .slice(0, 40) + '")'
    : '';
  const text = (e.innerText || e.textContent || '').trim()
    .replace(/\s+/g, ' ').slice(0, 50);
  return `<${e.tagName.toLowerCase()}${cls ? '.' + cls : ''}>${where}: `
    + `"${text}"`;
}
const wide = [], cut = [];
function walk(e, clipped) {
  const style = getComputedStyle(e);
  if (style.display === 'none' || style.visibility === 'hidden') return;
  const r = e.getBoundingClientRect();
  if (r.width > 0 && r.height > 0 && !clipped
      && (r.right > col.right + 1 || r.left < col.left - 1)) {
    wide.push(`${Math.round(r.width)} px wide, ${
      Math.round(r.right - col.right)} px past the column: ${describe(e)}`);
  }
  const boxed = style.overflowX !== 'visible';
  if (boxed && !e.matches('span.math') && e.clientWidth > 0
      && e.scrollWidth > e.clientWidth + 1) {
    cut.push(`${e.scrollWidth} px of content in a ${e.clientWidth} px `
      + `box: ${describe(e)}`);
  }
  const tag = e.tagName.toLowerCase();
  if (tag === 'mjx-container' || tag === 'svg' || e.matches('span.math')) {
    return;  // inline maths overhangs its box by a glyph's slant
  }
  for (const child of e.children) walk(child, clipped || boxed);
}
for (const child of article.children) walk(child, false);
// A figure drawn at 2x must say its display size (the inline backend's
// "retina" format and widgets.precomputed do), or it is shown stretched.
const unsized = Array.from(article.querySelectorAll('.cell_output img'))
  .filter(img => img.naturalWidth > col.width && !img.getAttribute('width')
    && !img.style.width)
  .map(img => `${img.naturalWidth} px: ${describe(img)}`);
return {column: Math.round(col.width), wide: wide.slice(0, 8),
        cut: cut.slice(0, 8), more: wide.length + cut.length > 16,
        unsized: unsized.slice(0, 4)};
"""

# Code cells whose output shows more than one text box (consecutive prints
# should be one box; nb_merge_streams merges what the notebook split).
_OUTPUT_BOXES = r"""
const box = '.output.stream, .output.stderr, .output.text_plain, '
  + '.output.traceback, .output.error';
return Array.from(document.querySelectorAll('div.cell')).map((cell, i) => {
  const n = Array.from(cell.querySelectorAll('.cell_output'))
    .reduce((k, out) => k + Array.from(out.children)
      .filter(c => c.matches(box)).length, 0);
  const input = cell.querySelector('.cell_input');
  return n > 1 ? `code cell #${i + 1} on the page ("${(input
    ? input.innerText : '')
    .trim().split('\n')[0].slice(0, 40)}"): ${n} output boxes` : null;
}).filter(x => x);
"""

# The widget area (the element the widget manager drew into) of each view.
_WIDGET_AREAS = """
const type = 'script[type="application/vnd.jupyter.widget-view+json"]';
return Array.from(document.querySelectorAll(type))
  .map(s => s.previousElementSibling);
"""

# What a widget area shows now: its images' data and its text.
_WIDGET_SHOWN = """
const area = arguments[0];
return {
  images: Array.from(area.querySelectorAll('img'))
    .filter(img => img.offsetParent !== null)
    .map(img => img.src.startsWith('data:image/png;base64,')
      ? img.src.slice(22).replace(/\\s/g, '') : img.src),
  text: area.innerText.replace(/\\s+/g, ' ').trim(),
};
"""


def _load(driver, url: str, origin: str) -> None:
    """Open ``url`` as a first-time visitor would, and wait until its images
    have settled.
    """
    if driver.current_url.startswith(origin):
        # Forget what earlier pages stored (theme mode, sidebar position):
        # first-visit errors must show.
        driver.execute_script(
            "window.localStorage.clear(); window.sessionStorage.clear();"
        )
    driver.get(url)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        if driver.execute_script(
            "return document.readyState"
        ) == "complete" and driver.execute_script(_IMAGES_SETTLED):
            break
        time.sleep(0.2)


def _widgets_ready(report: list[dict], expected: list[dict]) -> bool:
    """Every view drawn, with at least the images its state saved."""
    if len(report) < len(expected):
        return False
    return all(
        got.get("drawn") and got.get("images", 0) >= want["images"]
        for got, want in zip(report, expected, strict=False)
    )


def _wait_for_maths_and_widgets(driver, expected) -> tuple[object, list]:
    """MathJax's outcome (see _MATHJAX_DONE) and the final widget report."""
    driver.set_script_timeout(RENDER_TIMEOUT + 5)
    mathjax = driver.execute_async_script(_MATHJAX_DONE, RENDER_TIMEOUT)
    deadline = time.monotonic() + RENDER_TIMEOUT
    report = driver.execute_script(_WIDGET_REPORT)
    while not _widgets_ready(report, expected):
        if time.monotonic() > deadline:
            break
        time.sleep(0.25)
        report = driver.execute_script(_WIDGET_REPORT)
    driver.execute_script(_IMAGES_SETTLED)  # figures drawn by the widgets
    time.sleep(0.5)  # let late scripts report to the console
    return mathjax, report


def _requests(driver) -> tuple[list[str], list[str]]:
    """URLs the browser asked for since the log was last read, and those of
    them that failed (HTTP status 400 or more, or no answer at all).
    """
    urls, failed, by_id = [], [], {}
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        method, params = message.get("method"), message.get("params", {})
        if method == "Network.requestWillBeSent":
            url = params["request"]["url"]
            urls.append(url)
            by_id[params.get("requestId")] = url
        elif method == "Network.responseReceived":
            response = params.get("response", {})
            if response.get("status", 0) >= 400:
                failed.append(f"{response.get('url')} ({response['status']})")
        elif method == "Network.loadingFailed" and not params.get("canceled"):
            # only the page's own requests: the browser's background ones
            # fail without a network too
            url = by_id.get(params.get("requestId"))
            if url is not None:
                failed.append(f"{url} ({params.get('errorText')})")
    return urls, failed


def _missing_fonts(urls: list[str], base: str) -> list[str]:
    """Font URLs that are on another host or name no file of the site."""
    missing = []
    for url in urls:
        if url.startswith("data:"):
            continue
        path = urllib.parse.unquote(re.split(r"[?#]", url)[0])
        if not path.startswith(base + "/"):
            missing.append(url)
        elif not (SITE / path[len(base) + 1 :]).is_file():
            missing.append(url)
    return sorted(set(missing))


def _png_size(path: Path) -> tuple[int, int]:
    with path.open("rb") as handle:
        header = handle.read(24)
    return struct.unpack(">II", header[16:24])


def _full_page_screenshot(driver, path: Path) -> None:
    """The whole page, not only the window: the viewport is made as tall as
    the page (at the window's layout width) for the capture. Chromium's
    captureBeyondViewport shifted some pages sideways instead.
    """
    layout = driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
    width = int(layout["cssLayoutViewport"]["clientWidth"])
    height = int(layout["cssContentSize"]["height"])
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride",
        {
            "width": width,
            "height": height,
            "deviceScaleFactor": 1,
            "mobile": False,
        },
    )
    try:
        time.sleep(0.5)  # let the page lay itself out again
        shot = driver.execute_cdp_cmd(
            "Page.captureScreenshot", {"format": "png"}
        )
    finally:
        driver.execute_cdp_cmd("Emulation.clearDeviceMetricsOverride", {})
    path.write_bytes(base64.b64decode(shot["data"]))
    got = _png_size(path)
    assert got[1] >= height - 1, (
        f"{path.name}: screenshot is {got[1]} px tall, the page {height} px"
    )


def _check_page(driver, base: str, page: str, is_notebook: bool, shot=None):
    """Load ``base/page`` with the network off and run every check of the
    module docstring; save a full-page screenshot to ``shot`` if given, and
    then also check the layout and move every widget's controls.
    """
    if not (SITE / page).is_file():
        pytest.fail(f"{page} is listed in _toc.yml but was not built")
    driver.get_log("browser")  # discard entries left over from earlier pages
    driver.get_log("performance")
    _load(driver, f"{base}/{page}", base)
    expected = _saved_views(driver)
    mathjax, widgets = _wait_for_maths_and_widgets(driver, expected)

    if shot is not None:
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        _full_page_screenshot(driver, shot)

    problems = []

    title = driver.title
    if not title or "404" in title:
        problems.append(f"unexpected title {title!r}")

    requested, failed = _requests(driver)
    foreign = sorted(
        {
            url.split("?")[0][:150]
            for url in requested
            # the browser's own chrome:// files and data: URLs are not
            # requests for a network
            if re.match(r"^(https?|wss?|ftp|file):", url)
            and not url.startswith(base)
        }
    )
    if foreign:
        problems.append(f"requests for other hosts' files: {foreign}")
    if failed:
        problems.append(f"files that did not load: {sorted(set(failed))}")

    fonts = _missing_fonts(driver.execute_script(_FONT_URLS), base)
    if fonts:
        problems.append(f"fonts named by the style sheets but absent: {fonts}")

    images = driver.execute_script(_IMAGE_REPORT)
    broken = [
        img["src"]
        for img in images
        if not (img["complete"] and img["width"] > 0)
    ]
    if broken:
        problems.append(f"images that did not render: {broken}")

    if is_notebook:
        repo_path = repository_url().removeprefix("https://github.com/")
        links = driver.execute_script(_LINKS)
        colab = [
            h
            for h in links
            if "colab.research.google.com" in h and repo_path in h
        ]
        if not colab:
            problems.append(f"no Colab launch link to {repo_path}")
        elif not any(
            h.endswith(page.replace(".html", ".ipynb")) for h in colab
        ):
            problems.append(f"the Colab link does not open this page: {colab}")

    maths = driver.execute_script(_MATH_REPORT)
    if maths["maths"] and mathjax is not True:
        problems.append(
            f"{maths['maths']} maths elements but MathJax did not typeset "
            f"them: {mathjax}"
        )
    if maths["untypeset"]:
        problems.append(f"maths left untypeset: {maths['untypeset'][:5]}")
    if maths["errors"]:
        problems.append(f"MathJax errors: {maths['errors']}")
    if maths["raw"]:
        problems.append(f"raw TeX in the text: {maths['raw']}")

    if _notebook_has_widgets(page) and not expected:
        problems.append("the notebook shows widgets, the page none")
    problems += _widget_problems(expected, widgets)

    if shot is not None:
        layout = driver.execute_script(_LAYOUT_REPORT)
        for item in layout["wide"]:
            problems.append(
                f"wider than the {layout['column']} px text column: {item}"
            )
        for item in layout["cut"]:
            problems.append(f"content cut or scrolling sideways: {item}")
        if layout["more"]:
            problems.append("(more elements too wide; first 16 listed)")
        for item in layout["unsized"]:
            problems.append(
                "a figure wider than the column with no display width (drawn "
                f"at 2x, shown stretched): {item}"
            )
        problems += driver.execute_script(_OUTPUT_BOXES)
        problems += _widget_answer_problems(driver, page)

    errors = [
        entry.get("message", "")
        for entry in driver.get_log("browser")
        if entry.get("level") == "SEVERE"
    ]
    if errors:
        problems.append("console errors:\n  " + "\n  ".join(errors))

    assert not problems, f"{base}/{page}:\n- " + "\n- ".join(problems)


def _widget_problems(expected: list[dict], drawn: list[dict]):
    problems = []
    for want, got in zip(expected, drawn, strict=False):
        name = str(want["model_id"])[:8]
        if not want["in_state"]:
            problems.append(
                f"widget {name}: the page has no saved state for it (save "
                "the notebook with its widget state)"
            )
            continue
        if got.get("model_id") != want["model_id"]:
            problems.append(f"widget {name}: page shows {got.get('model_id')}")
            continue
        if not got.get("drawn"):
            problems.append(f"widget {name}: not drawn")
            continue
        if got["errors"]:
            problems.append(f"widget {name}: the widget manager shows errors")
        text = got["text"]
        for label in want["labels"]:
            if label not in text:
                problems.append(f"widget {name}: no label {label!r}")
        for readout in want["readouts"]:
            if readout not in got["readouts"]:
                problems.append(
                    f"widget {name}: no slider reads {readout!r} "
                    f"(readouts {got['readouts']})"
                )
        # The widget manager draws a drop-down's labels with non-breaking
        # spaces ("whole\xa0run").
        shown = [s.replace("\xa0", " ") for s in got["selected"]]
        for choice in want["selected"]:
            if choice not in shown:
                problems.append(
                    f"widget {name}: no drop-down shows {choice!r} "
                    f"(shown {got['selected']})"
                )
        if got["images"] < want["images"]:
            problems.append(
                f"widget {name}: {got['images']} of {want['images']} saved "
                "figures drawn"
            )
        for line in want["texts"]:
            if line not in text:
                problems.append(f"widget {name}: saved text {line!r} missing")
    return problems


# --- widgets that answer: moving each control shows its precomputed page ---

# Model name -> the CSS class of the element the widget manager draws.
_CONTROLS = {
    "DropdownModel": "widget-dropdown",
    "SelectModel": "widget-select",
    "SelectionSliderModel": "widget-slider",
    "SelectionRangeSliderModel": "widget-slider",
    "IntSliderModel": "widget-slider",
    "FloatSliderModel": "widget-slider",
    "FloatLogSliderModel": "widget-slider",
    "IntRangeSliderModel": "widget-slider",
    "FloatRangeSliderModel": "widget-slider",
    "ToggleButtonsModel": "widget-toggle-buttons",
    "RadioButtonsModel": "widget-radio",
    "CheckboxModel": "widget-checkbox",
    "ToggleButtonModel": "widget-toggle-button",
    "TextModel": "widget-text",
    "IntTextModel": "widget-text",
    "FloatTextModel": "widget-text",
    "BoundedIntTextModel": "widget-text",
    "BoundedFloatTextModel": "widget-text",
    "PlayModel": "widget-play",
}
# The callout of gemma4_lite.book.widgets.inert.
CALLOUT = "Interactive in Jupyter or Colab"
# At most this many values of one control are tried (spread over its range).
MAX_VALUES = 6
# How long the page may take to show the page of a new value.
SWITCH_TIMEOUT = 5


def _values_to_try(count: int) -> list[int]:
    if count <= MAX_VALUES:
        return list(range(count))
    step = (count - 1) / (MAX_VALUES - 1)
    return sorted({round(i * step) for i in range(MAX_VALUES)})


def _move(driver, element, model_name: str, index: int, current: int):
    """Move a control to option ``index`` as a reader would."""
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys
    from selenium.webdriver.support.ui import Select

    if model_name in ("DropdownModel", "SelectModel"):
        Select(element.find_element(By.TAG_NAME, "select")).select_by_index(
            index
        )
    elif model_name == "ToggleButtonsModel":
        element.find_elements(By.TAG_NAME, "button")[index].click()
    elif model_name == "RadioButtonsModel":
        element.find_elements(By.TAG_NAME, "input")[index].click()
    elif model_name == "SelectionSliderModel":
        handle = element.find_element(By.CSS_SELECTOR, ".noUi-handle")
        key = Keys.ARROW_RIGHT if index > current else Keys.ARROW_LEFT
        handle.send_keys(*([key] * abs(index - current)))
    else:
        raise AssertionError(f"cannot move a {model_name}")


def _widget_answer_problems(driver, page: str) -> list[str]:
    """Every control of every widget on the loaded page either answers
    (moving it to each of its values shows the page precomputed for that
    value) or is disabled beside the "Interactive in Jupyter or Colab"
    callout with a Colab link.
    """
    from selenium.webdriver.common.by import By

    views, state = _saved_state(driver)
    areas = driver.execute_script(_WIDGET_AREAS)
    drivers = set(_stack_drivers(state).values())
    problems = []
    for number, (view, area) in enumerate(zip(views, areas), start=1):
        name = f"widget {number}"
        if view not in state or area is None:
            continue  # reported by the rendering checks
        shown = _shown_models(view, state)
        controls = [
            m for m in shown if state[m].get("model_name") in _CONTROLS
        ]
        if not controls:
            continue
        selector = ", ".join(f".{c}" for c in sorted(set(_CONTROLS.values())))
        elements = [
            e
            for e in area.find_elements(By.CSS_SELECTOR, selector)
            # the buttons inside ToggleButtons are not controls of their own
            if not driver.execute_script(
                "return arguments[0].parentElement"
                ".closest('.widget-toggle-buttons') !== null",
                e,
            )
        ]
        if len(elements) != len(controls):
            problems.append(
                f"{name}: {len(elements)} controls drawn, "
                f"{len(controls)} in its saved state"
            )
            continue
        text = driver.execute_script(_WIDGET_SHOWN, area)["text"]
        colab = area.find_elements(
            By.CSS_SELECTOR, 'a[href*="colab.research.google.com"]'
        )
        for control, element in zip(controls, elements):
            values = state[control]["state"]
            label = values.get("description") or state[control]["model_name"]
            if values.get("disabled"):
                if CALLOUT not in text or not colab:
                    problems.append(
                        f"{name}: control {label!r} is disabled but the "
                        f"widget has no {CALLOUT!r} callout with a Colab "
                        "link (use gemma4_lite.book.widgets.inert)"
                    )
                continue
            if control not in drivers:
                problems.append(
                    f"{name}: control {label!r} moves on the site and "
                    "changes nothing (make the widget with "
                    "gemma4_lite.book.widgets.precomputed, or inert)"
                )
                continue
            problems += _drive_control(
                driver, area, name, view, state, control, element, label
            )
    return problems


def _drive_control(driver, area, name, view, state, control, element, label):
    """Move one control through its values (the others at their saved
    ones) and compare what is shown with the precomputed page each time.
    """
    values = state[control]["state"]
    model_name = state[control]["model_name"]
    options = values.get("_options_labels") or []
    saved = values.get("index", 0)
    problems, signatures = [], {}
    current = saved
    for index in _values_to_try(len(options)) + [saved]:
        want = _output_signature(
            _shown_models(view, state, {control: index}), state
        )
        signatures[index] = want
        try:
            _move(driver, element, model_name, index, current)
        except Exception as error:  # noqa: BLE001 - reported, not raised
            problems.append(
                f"{name}: could not move {label!r} to {options[index]!r}: "
                f"{type(error).__name__}: {str(error).splitlines()[0][:80]}"
            )
            break
        current = index
        deadline = time.monotonic() + SWITCH_TIMEOUT
        while True:
            got = driver.execute_script(_WIDGET_SHOWN, area)
            missing_images = [
                i for i in want["images"] if i not in got["images"]
            ]
            missing_texts = [t for t in want["texts"] if t not in got["text"]]
            extra = len(got["images"]) != len(want["images"])
            if not (missing_images or missing_texts or extra):
                break
            if time.monotonic() > deadline:
                problems.append(
                    f"{name}: with {label!r} = {options[index]!r}, the page "
                    "does not show what was precomputed for that value: "
                    f"{len(got['images'])} figures shown, "
                    f"{len(missing_images)} of the {len(want['images'])} "
                    "precomputed ones not among them; missing text "
                    f"{[t[:40] for t in missing_texts][:2]}"
                )
                break
            time.sleep(0.1)
    distinct = {json.dumps(sig, sort_keys=True) for sig in signatures.values()}
    if len(signatures) > 1 and len(distinct) == 1:
        problems.append(
            f"{name}: every value of {label!r} shows the same output (the "
            "render function ignores it, or the control is not needed)"
        )
    return problems


# --- the tests -----------------------------------------------------------


class _Assets(html.parser.HTMLParser):
    """Collects the URLs a page loads (not the links it offers)."""

    def __init__(self):
        super().__init__()
        self.urls: list[str] = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag in ("script", "img", "iframe", "source", "video", "audio"):
            self.urls.append(attrs.get("src") or "")
        elif tag == "link" and attrs.get("rel") not in ("canonical", None):
            self.urls.append(attrs.get("href") or "")


def test_site_was_built_from_the_toc(site_dir):
    missing = [page for page, _ in PAGES if not (SITE / page).is_file()]
    assert not missing, (
        f"pages of _toc.yml missing from the built site: {missing}"
    )


def test_pages_load_nothing_from_other_hosts(site_dir):
    """No built page takes a script, style sheet, font or image from another
    host: MathJax, RequireJS and the widget manager are in _static/vendor/.
    """
    foreign = {}
    for path in sorted(SITE.rglob("*.html")):
        parser = _Assets()
        parser.feed(path.read_text(encoding="utf-8"))
        outside = [
            url
            for url in parser.urls
            if re.match(r"^(https?:)?//", url) and "127.0.0.1" not in url
        ]
        if outside:
            foreign[str(path.relative_to(SITE))] = outside
    assert not foreign, f"pages loading other hosts' files: {foreign}"
    for asset in (
        "vendor/mathjax/tex-mml-chtml.js",
        "vendor/requirejs/require.js",
        "vendor/html-manager/embed-amd.js",
        "widgets-setup.js",
    ):
        assert (SITE / "_static" / asset).is_file(), f"_static/{asset}"


def test_index_redirects_to_the_landing_page(site_url, browser):
    _load(browser, f"{site_url}/index.html", site_url)
    assert browser.current_url.endswith(PAGES[0][0]), browser.current_url


@pytest.mark.parametrize("page,is_notebook", PAGES, ids=IDS)
def test_page_renders_offline(site_url, browser, page, is_notebook):
    """Served on 127.0.0.1 with no other host reachable; screenshot saved."""
    shot = SCREENSHOTS / (
        page.removesuffix(".html").replace("/", "__") + ".png"
    )
    _check_page(browser, site_url, page, is_notebook, shot=shot)


@pytest.mark.parametrize("page,is_notebook", PAGES, ids=IDS)
def test_page_renders_from_disk(site_dir, browser, page, is_notebook):
    """Opened as a file, as from `_build/html/index.html` in a browser."""
    _check_page(browser, site_dir, page, is_notebook)
