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

A full-page screenshot of each served page is saved in ``_build/screenshots/``
(PNG, 1,265 px wide: the layout of a 1,280 px window) so whole pages can be
looked at. A static test also reads every built HTML file for scripts, style
sheets or images taken from another host.

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


def _view_expectation(model_id: str, state: dict) -> dict:
    """What the view of ``model_id`` must show once drawn from ``state``:
    control labels, slider readouts, drop-down choices, and the output
    widgets' saved images and first lines of text.
    """
    labels, readouts, selected, texts = [], [], [], []
    images = 0
    seen: set[str] = set()
    todo = [model_id]
    while todo:
        current = todo.pop()
        if current in seen or current not in state:
            continue
        seen.add(current)
        model = state[current]
        name, values = model.get("model_name", ""), model.get("state", {})
        todo.extend(_model_refs(values))
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
    saved = driver.execute_script(_SAVED_STATE)
    state = {}
    for text in saved["states"]:
        state.update(json.loads(text).get("state", {}))
    return [_view_expectation(m, state) for m in saved["views"]]


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
    module docstring; save a full-page screenshot to ``shot`` if given.
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
        for choice in want["selected"]:
            if choice not in got["selected"]:
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
