"""Fixtures of the browser tests: the served site, one Chromium, one visit per page."""
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from book_site import SITE  # noqa: E402
from browser import SiteServer, inspect, launch  # noqa: E402


def pytest_sessionstart(session):
    if not (SITE / "index.html").is_file():
        pytest.exit(f"no built site at {SITE}: run `make book` (or `make test-site`, which builds it)", 2)


@pytest.fixture(scope="session")
def server():
    with SiteServer() as s:
        yield s


@pytest.fixture(scope="session")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright
    with sync_playwright() as p:
        context = launch(p, tmp_path_factory.mktemp("chromium-profile"))
        yield context
        context.close()


@pytest.fixture(scope="session")
def visit(browser, server):
    """visit(page) -> Visit: each page is loaded once however many tests look at it."""
    seen = {}

    def get(page):
        if page.docname not in seen:
            seen[page.docname] = inspect(browser, server.base, page)
        return seen[page.docname]
    return get
