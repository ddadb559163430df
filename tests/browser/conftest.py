"""Fixtures of the browser tests (see ``harness.py``)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from .harness import CHROMIUM, CHROMIUM_ARGS, REPO, SETUP_HINT, ChatServer, PageErrors


@pytest.fixture(scope="module")
def chat_server() -> Iterator[ChatServer]:
    if not (REPO / "web" / "chat" / "dist" / "index.html").is_file():
        pytest.fail(f"the chat page is not built; {SETUP_HINT}", pytrace=False)
    server = ChatServer().start()
    yield server
    code = server.stop()
    assert code == 0, f"the chat server exited with {code}:\n{server.output}"
    assert "Traceback" not in server.output, server.output


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        pytest.fail(f"the Python playwright package is missing; {SETUP_HINT}", pytrace=False)
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing; {SETUP_HINT}", pytrace=False)
    with sync_playwright() as playwright:
        # launch() runs Chromium on a fresh temporary profile (user-data-dir), removed at close.
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


@pytest.fixture
def context(browser: Any) -> Iterator[Any]:
    """A fresh browser context (its own profile: storage, cache) for one test."""
    ctx = browser.new_context(viewport={"width": 900, "height": 800})
    ctx.set_default_timeout(15_000)
    yield ctx
    ctx.close()


@pytest.fixture
def page_errors() -> Iterator[PageErrors]:
    errors = PageErrors()
    yield errors
    assert errors.errors == [], "the page threw:\n" + "\n".join(errors.errors)


@pytest.fixture
def page(context: Any, page_errors: PageErrors) -> Any:
    return page_errors.watch(context.new_page())
