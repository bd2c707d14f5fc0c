"""The reader's check: serve _build/html, open every chapter in headless Chromium, and fail on what a reader
would notice: a missing image, an error output cell, a broken internal link. Saves a screenshot per page.
"""

from __future__ import annotations

import functools
import http.server
import os
import shutil
import threading
from pathlib import Path
from urllib.parse import urljoin, urlparse

import pytest

ROOT = Path(__file__).resolve().parents[2]
HTML = ROOT / "_build" / "html"
SHOTS = ROOT / "_build" / "screenshots"
CHROMIUM = os.environ.get("CHROMIUM_PATH") or shutil.which("chromium") or "/usr/bin/chromium"
ALLOWED_CONSOLE = ("THEBE_JS_URL",)  # jupyter-book 1.x declares it twice on every page (harmless)
# What a table cell shows when a value is missing and nobody said why (gearlib prints "n/a (...)" instead).
MISSING_TEXT = {"None", "NaN", "nan", "<NA>"}
# CI sets GEARLIB_BOOK_CHECK=required: a missing book, Playwright or Chromium is then a failure, not a skip.
REQUIRED = os.environ.get("GEARLIB_BOOK_CHECK", "") == "required"


def _missing(reason: str) -> None:
    if REQUIRED:
        pytest.fail(f"{reason} (GEARLIB_BOOK_CHECK=required)")
    pytest.skip(reason)


def _pages() -> list:
    skip = ("genindex", "search", "_static", "_sources", "_images")
    return sorted(
        p.relative_to(HTML).as_posix()
        for p in HTML.rglob("*.html")
        if not any(part.startswith(skip) for part in p.relative_to(HTML).parts)
        and p.name != "index.html"
        or p.relative_to(HTML).as_posix() == "book/index.html"
    )


@pytest.fixture(scope="module")
def server():
    if not HTML.is_dir():
        _missing("no built book in _build/html: run `make book` (or `gearlib book --profile smoke`) first")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(HTML))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    httpd.shutdown()


@pytest.fixture(scope="module")
def browser():
    try:
        from playwright import sync_api as playwright
    except ImportError:
        _missing("pip install playwright (no browser download)")
    if not Path(CHROMIUM).exists():
        _missing(f"Chromium not found at {CHROMIUM} (apt-get install chromium, or set CHROMIUM_PATH)")
    with playwright.sync_playwright() as p:
        args = [
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
        ]
        b = p.chromium.launch(executable_path=CHROMIUM, args=args)
        yield b
        b.close()


def _check_page(browser, server: str, page_path: str) -> list:
    """Open one page like a reader would; return what is wrong with it."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    problems: list = []

    def on_response(response) -> None:
        if response.status >= 400 and response.url.startswith(server):
            problems.append(f"{page_path}: HTTP {response.status} {response.url}")

    def on_error(error) -> None:
        if not any(allowed in str(error) for allowed in ALLOWED_CONSOLE):
            problems.append(f"{page_path}: page error {error}")

    page.on("response", on_response)
    page.on("pageerror", on_error)
    page.goto(urljoin(server, page_path), wait_until="networkidle")
    broken = page.eval_on_selector_all(
        "img", "els => els.filter(e => !e.complete || e.naturalWidth === 0).map(e => e.src)"
    )
    problems += [f"{page_path}: broken image {src}" for src in broken]
    selector = ".output.traceback, .output.stderr, #papermill-error-cell, .cell_output .traceback"
    if page.eval_on_selector_all(selector, "els => els.length"):
        problems.append(f"{page_path}: error output cell(s)")
    for link in sorted(
        {h.split("#")[0] for h in page.eval_on_selector_all("a[href]", "els => els.map(e => e.href)")}
    ):
        if link.startswith(server):
            target = HTML / urlparse(link).path.lstrip("/")
            if not (target / "index.html" if target.is_dir() else target).exists():
                problems.append(f"{page_path}: broken internal link {link}")
    if page_path.startswith("book/chapters/"):
        if page.eval_on_selector_all(".cell_output", "els => els.length") == 0:
            problems.append(f"{page_path}: an executed chapter without any output cell")
        if page.eval_on_selector_all(".cell_output img", "els => els.length") == 0:
            problems.append(
                f"{page_path}: no figure in the chapter (was MPLBACKEND=Agg given to the kernel?)"
            )
        cells = page.eval_on_selector_all(".cell_output table td", "els => els.map(e => e.innerText.trim())")
        problems += [f"{page_path}: a table cell reads {c!r}" for c in sorted(set(cells) & MISSING_TEXT)]
        meaningless = [c for c in cells if c.startswith(("at chance:", "collapsed:"))]
        problems += [f"{page_path}: a results table shows a run that means nothing: {c}" for c in meaningless]
        if "Traceback (most recent call last)" in page.inner_text("body"):
            problems.append(f"{page_path}: a traceback is shown to the reader")
    page.screenshot(path=str(SHOTS / (page_path.replace("/", "_") + ".png")), full_page=True)
    page.close()
    return problems


def test_every_page_reads_cleanly(server, browser):
    pages = _pages()
    chapters = [p for p in pages if p.startswith("book/chapters/")]
    assert len(chapters) >= 5, f"expected the executed chapters in the site, found {chapters}"
    SHOTS.mkdir(parents=True, exist_ok=True)
    problems = [problem for page_path in pages for problem in _check_page(browser, server, page_path)]
    assert not problems, "\n".join(problems)
