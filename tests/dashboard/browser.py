"""Headless Debian Chromium driven by Playwright, for the dashboard's browser tests (tests/dashboard and
tests/integrations): the module-scoped ``browser`` fixture (skipped without Chromium or playwright,
except under ``CI=true``), opening a page with its console errors recorded, and waiting until the page
says it is ready."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("TBAL_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
VIEWPORT = {"width": 1440, "height": 900}


def _missing_browser() -> str | None:
    if not (Path(CHROMIUM).is_file() or shutil.which(CHROMIUM)):
        return f"no Chromium at {CHROMIUM} (apt-get install -y chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is not installed (pip install playwright)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    problem = _missing_browser()
    if problem:
        if os.environ.get("CI") == "true":
            pytest.fail(problem)
        pytest.skip(problem)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


class PageErrors:
    """Console errors and uncaught exceptions of a page (a CSP violation or a script error shows here)."""

    def __init__(self, page: Any) -> None:
        self.messages: list[str] = []
        page.on("console", lambda m: self.messages.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: self.messages.append(f"uncaught: {e}"))


def open_page(browser: Any, url: str) -> tuple[Any, Any, PageErrors]:
    context = browser.new_context(viewport=VIEWPORT)
    page = context.new_page()
    errors = PageErrors(page)
    page.goto(url)
    return context, page, errors


def wait_ready(page: Any, timeout_ms: int = 30_000) -> None:
    page.wait_for_selector("body[data-state=ready], body[data-state=error]", timeout=timeout_ms)
    state = page.evaluate("document.body.dataset.state")
    assert state == "ready", page.inner_text("#view")
