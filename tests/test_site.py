"""Browser check of the built website.

Serves ``_build/html`` on 127.0.0.1 and drives Debian's headless Chromium over
the landing page and every page of ``_toc.yml``. For each page it checks that
every image rendered, that notebook pages carry their Colab launch link, and
that the browser console has no error coming from the site itself. Failures to
reach other hosts (CDNs for require.js and the widget manager) are ignored: the
test runs without a network. A screenshot of each page is saved in
``_build/screenshots/``.

Without a built site the test is skipped; ``scripts/test.sh`` builds the site
first and sets ``BOOK_SITE_REQUIRED=1``, which turns every skip into a failure.
"""

from __future__ import annotations

import functools
import http.server
import os
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SITE = ROOT / "_build" / "html"
SCREENSHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
REQUIRED = os.environ.get("BOOK_SITE_REQUIRED", "") == "1"

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
        f"--user-data-dir={profile}",
        "--window-size=1280,2000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
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
    src: img.currentSrc || img.src, complete: img.complete,
    width: img.naturalWidth}));
"""

_LINKS = (
    "return Array.from(document.querySelectorAll('a[href]')).map(a => a.href);"
)


def _own_errors(entries: list[dict], origin: str) -> list[str]:
    """SEVERE console entries caused by the site itself, not by an unreachable
    external host.
    """
    errors = []
    for entry in entries:
        if entry.get("level") != "SEVERE":
            continue
        message = entry.get("message", "")
        urls = re.findall(r"https?://[^\s'\")]+", message)
        external = [u for u in urls if not u.startswith(origin)]
        if external and (
            "net::ERR_" in message or "Failed to load resource" in message
        ):
            # a fetch of another host failed: expected without a network
            continue
        if origin in message or not urls:
            errors.append(message)
    return errors


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
    time.sleep(0.5)  # let late scripts report to the console


def test_site_was_built_from_the_toc(site_url):
    missing = [page for page, _ in PAGES if not (SITE / page).is_file()]
    assert not missing, (
        f"pages of _toc.yml missing from the built site: {missing}"
    )


def test_index_redirects_to_the_landing_page(site_url, browser):
    _load(browser, f"{site_url}/index.html", site_url)
    assert browser.current_url.endswith(PAGES[0][0]), browser.current_url


@pytest.mark.parametrize("page,is_notebook", PAGES, ids=[p for p, _ in PAGES])
def test_page_renders(site_url, browser, page, is_notebook):
    if not (SITE / page).is_file():
        pytest.fail(f"{page} is listed in _toc.yml but was not built")
    browser.get_log("browser")  # discard entries left over from earlier pages
    _load(browser, f"{site_url}/{page}", site_url)

    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot = SCREENSHOTS / (
        page.removesuffix(".html").replace("/", "__") + ".png"
    )
    browser.save_screenshot(str(shot))

    title = browser.title
    assert title and "404" not in title, f"{page}: unexpected title {title!r}"

    images = browser.execute_script(_IMAGE_REPORT)
    broken = [
        img["src"]
        for img in images
        if not (img["complete"] and img["width"] > 0)
    ]
    assert not broken, f"{page}: images that did not render: {broken}"

    if is_notebook:
        repo_path = repository_url().removeprefix("https://github.com/")
        links = browser.execute_script(_LINKS)
        colab = [
            h
            for h in links
            if "colab.research.google.com" in h and repo_path in h
        ]
        assert colab, f"{page}: no Colab launch link to {repo_path}"
        assert any(
            h.endswith(page.replace(".html", ".ipynb")) for h in colab
        ), f"{page}: the Colab link does not open this notebook: {colab}"

    errors = _own_errors(browser.get_log("browser"), site_url)
    assert not errors, f"{page}: console errors from the site:\n" + "\n".join(
        errors
    )
