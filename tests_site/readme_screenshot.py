"""Take the README's picture of the book: docs/screenshot.png, from the built site.

    .venv/bin/python tests_site/readme_screenshot.py     # after `make book`

Chapter 0 in headless Chromium, offline, scrolled so that an equation, a figure
and the sidebar with its numbered chapters are in view.
"""
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from playwright.sync_api import sync_playwright  # noqa: E402

from book_site import ROOT, toc_pages  # noqa: E402
from browser import SiteServer, Visit, launch, open_page  # noqa: E402

OUT = ROOT / "docs" / "screenshot.png"
PAGE = "chapters/00_setup_and_data"
SCROLL_TO = "text=Each image is 32 by 32 pixels"


def main():
    page = next(p for p in toc_pages() if p.docname == PAGE)
    with SiteServer() as server, sync_playwright() as pw, tempfile.TemporaryDirectory() as profile:
        browser = launch(pw, Path(profile))
        visit = Visit(page, server.base + page.html)
        tab = open_page(browser, visit.url, visit)
        tab.wait_for_function("() => window.MathJax && MathJax.startup && MathJax.startup.promise")
        tab.evaluate("() => MathJax.startup.promise")
        tab.locator(SCROLL_TO).first.evaluate("e => e.scrollIntoView({block: 'start'})")
        tab.evaluate("() => window.scrollBy(0, -70)")
        tab.wait_for_timeout(500)
        OUT.parent.mkdir(exist_ok=True)
        tab.screenshot(path=str(OUT))
        browser.close()
    problems = visit.console_errors + visit.blocked + visit.failed
    if problems:
        raise SystemExit(f"the page had problems: {problems}")
    print(f"wrote {OUT.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
