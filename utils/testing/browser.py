"""A headless Chromium for the live-view tests: Debian's own package (``make browser`` installs it),
driven by Playwright through ``executable_path`` (no browser download)."""
from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")


def chromium_path() -> str | None:
    """The system Chromium (``CHROMIUM=/path`` overrides), or None."""
    if os.environ.get("CHROMIUM"):
        return os.environ["CHROMIUM"]
    return next((path for path in map(shutil.which, CANDIDATES) if path), None)


@contextlib.contextmanager
def headless_chromium(path: str) -> Iterator:
    """A Playwright ``Browser`` on the Chromium at ``path`` (root needs --no-sandbox)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True,
                                             args=["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"])
        try:
            yield browser
        finally:
            browser.close()
