"""Headless Chromium for the tests that look at pages (the chat page, eval reports): the
``browser`` fixture (skips, saying how to get one, without playwright or a Chromium) and where
screenshots are kept."""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

# Read at import: the conftest clears every ARAG_* variable while a test runs.
ARTIFACTS = Path(os.environ.get("ARAG_TEST_ARTIFACTS") or Path(__file__).resolve().parents[1] / "runs" / "artifacts")
CHROMIUM_NAMES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
INSTALL_HINT = (
    "the browser tests need the playwright package and a Chromium: `make browser` or `apt-get install chromium` "
    "(or any Chromium/Chrome on PATH) and `pip install playwright`"
)


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import Error, sync_playwright
    except ImportError:
        pytest.skip(f"playwright is not installed: {INSTALL_HINT}")
    executable = next((found for name in CHROMIUM_NAMES if (found := shutil.which(name))), None)
    with sync_playwright() as p:
        try:  # without a system Chromium, one that `playwright install chromium` put in place
            launched = p.chromium.launch(executable_path=executable, args=["--no-sandbox", "--disable-gpu"])
        except Error as exc:
            pytest.skip(f"no Chromium could be started ({str(exc).splitlines()[0]}): {INSTALL_HINT}")
        yield launched
        launched.close()


def screenshot_path(name: str) -> Path:
    """Where a test keeps its screenshot ``name`` (the folder is created)."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS / name
