"""Serve the built site on 127.0.0.1 and look at its pages in Debian's Chromium.

Every request to a host other than this machine is aborted and recorded, so a
page passes only if it works offline. One `Visit` per page holds what a reader
would meet there: console errors, failed requests, and what the page's DOM says
once MathJax and the widget manager are done.
"""
from __future__ import annotations

import http.server
import os
import threading
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from book_site import ARTEFACTS, SITE, Page

CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")
# No GPU, no network but loopback: without the background-networking flags
# Chromium keeps trying Google's hosts.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]
LOCAL_HOSTS = {"127.0.0.1", "localhost"}
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
VIEWPORT = {"width": 1280, "height": 900}


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, directory=str(SITE), **kwargs)

    def log_message(self, *args):
        pass


class SiteServer:
    """_build/html over HTTP on 127.0.0.1, on a free port, in a thread."""

    def __init__(self):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _QuietHandler)
        self.base = f"http://127.0.0.1:{self.httpd.server_address[1]}/"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class Visit:
    page: Page
    url: str
    console_errors: list[str] = field(default_factory=list)
    blocked: list[str] = field(default_factory=list)   # requests to other hosts, aborted
    failed: list[str] = field(default_factory=list)    # local requests that failed or answered >= 400
    waits: list[str] = field(default_factory=list)     # what did not finish in time
    dom: dict = field(default_factory=dict)            # what DOM_FACTS found
    screenshot: Path | None = None


# Run in the page once it has settled; returns plain data for the tests.
DOM_FACTS = """
() => {
  const text = el => (el.innerText || el.textContent || '').trim();
  const cellOf = el => el.closest('.cell');

  const errorOutputs = [];
  for (const out of document.querySelectorAll('.cell_output .output, .cell_output')) {
    const t = text(out);
    const bad = out.matches('.traceback, .error')
      || /Traceback \\(most recent call last\\)/.test(t)
      || (out.matches('.stderr') && /(Error|Exception)\\b/.test(t));
    if (bad) errorOutputs.push(t.slice(0, 300));
  }

  // A figure that reached the page only as its text repr: the kernel drew it off-page
  // (e.g. MPLBACKEND=Agg without `%%matplotlib inline`).
  const textFigures = [...document.querySelectorAll('.cell_output .output')]
    .map(text).filter(t => /<Figure size [\d.]+x[\d.]+ with \d+ Axes>/.test(t)).map(t => t.slice(0, 120));

  const maths = [...document.querySelectorAll('span.math, div.math')];
  const math = {
    count: maths.length,
    version: (window.MathJax && window.MathJax.version) || null,
    untypeset: maths.filter(m => !m.querySelector('mjx-container')).map(m => text(m).slice(0, 80)),
    errors: [...document.querySelectorAll('mjx-merror')].map(e => e.getAttribute('data-mjx-error') || text(e)),
  };
  // TeX that MathJax could not read: an merror, or an unknown macro shown in red (noundefined).
  try {
    for (const m of MathJax.startup.document.math) {
      if (/<merror|mathcolor="red"/.test(MathJax.startup.toMML(m.root))) math.errors.push(m.math.slice(0, 80));
    }
  } catch (e) { /* no MathJax on this page */ }

  const images = [...document.images].map(i => ({
    src: i.currentSrc || i.src, ok: i.complete && i.naturalWidth > 0, width: i.naturalWidth}));

  const widgets = [...document.querySelectorAll('script[type="%(view)s"]')].map(v => {
    const area = v.previousElementSibling;
    const rendered = !!area && area.classList.contains('widget-subarea') && area.children.length > 0;
    const box = rendered ? area.getBoundingClientRect() : {width: 0, height: 0};
    const cell = cellOf(v);
    let next = cell ? cell.nextElementSibling : null;
    return {rendered, width: box.width, height: box.height,
            note: !!next && next.matches('.widget-note') && /live Python kernel/.test(text(next)),
            controls: rendered ? area.querySelectorAll('.widget-dropdown, .widget-slider, .widget-image, .widget-label, input, select').length : 0};
  });

  const links = [...document.querySelectorAll('a[href]')].map(a => a.href);
  const h1 = document.querySelector('article section h1') || document.querySelector('main h1');
  const number = h1 && h1.querySelector('.section-number');
  return {errorOutputs, textFigures, math, images, widgets, links,
          title: h1 ? text(h1).replace(/#$/, '').trim() : null,
          sectionNumber: number ? text(number) : null,
          sidebar: [...document.querySelectorAll('.bd-sidenav a.reference')].map(a => [a.getAttribute('href'), text(a)])};
}
""" % {"view": WIDGET_VIEW}


def _route(blocked: list[str]):
    def handler(route):
        url = route.request.url
        if urlsplit(url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            blocked.append(url)
            route.abort("blockedbyclient")
    return handler


def open_page(context, url: str, visit: Visit):
    """A new tab on `url` that records into `visit`; the caller closes it."""
    page = context.new_page()
    page.route("**/*", _route(visit.blocked))
    # Requests this test aborted are reported as `blocked`, not again as console errors.
    page.on("console", lambda m: visit.console_errors.append(f"console.{m.type}: {m.text}")
            if m.type == "error" and "ERR_BLOCKED_BY_CLIENT" not in m.text else None)
    page.on("pageerror", lambda e: visit.console_errors.append(f"uncaught: {e}"))
    page.on("requestfailed", lambda r: visit.failed.append(f"{r.url} ({r.failure})")
            if urlsplit(r.url).hostname in LOCAL_HOSTS else None)
    page.on("response", lambda r: visit.failed.append(f"{r.url} (HTTP {r.status})")
            if r.status >= 400 else None)
    page.goto(url, wait_until="load")
    return page


def _wait(page, visit: Visit, what: str, js: str, timeout_ms: int):
    try:
        page.wait_for_function(js, timeout=timeout_ms)
    except Exception as e:  # playwright's TimeoutError, or the page navigated away
        visit.waits.append(f"{what}: {type(e).__name__}")


def inspect(context, base: str, page_: Page) -> Visit:
    """Load one page as a reader would, wait for maths and widgets, and record everything."""
    visit = Visit(page_, base + page_.html)
    page = open_page(context, visit.url, visit)
    try:
        # Load every image now, lazy or not, so naturalWidth tells whether it exists.
        page.evaluate("() => { for (const i of document.images) i.loading = 'eager'; }")
        if page.locator("span.math, div.math").count():
            _wait(page, visit, "MathJax typesetting",
                  "() => window.MathJax && MathJax.startup && MathJax.startup.promise"
                  " && (MathJax.startup.promise.then(() => { window.__typeset = true; }), window.__typeset)",
                  20_000)
        if page.locator(f'script[type="{WIDGET_VIEW}"]').count():
            _wait(page, visit, "widget rendering",
                  f"""() => [...document.querySelectorAll('script[type="{WIDGET_VIEW}"]')]
                      .every(v => v.previousElementSibling
                                  && v.previousElementSibling.classList.contains('widget-subarea')
                                  && v.previousElementSibling.children.length > 0)""",
                  20_000)
        _wait(page, visit, "images", "() => [...document.images].every(i => i.complete)", 10_000)
        try:  # a settle step, not a check: a busy machine can keep it from ever looking idle
            page.wait_for_load_state("networkidle", timeout=15_000)
        except Exception:
            pass
        visit.dom = page.evaluate(DOM_FACTS)
        ARTEFACTS.mkdir(exist_ok=True)
        visit.screenshot = ARTEFACTS / f"{page_.slug}.png"
        page.screenshot(path=str(visit.screenshot), full_page=True)
    finally:
        page.close()
    return visit


def launch(playwright, user_data_dir: Path):
    """Debian's Chromium with a fresh profile; Playwright downloads no browser."""
    if not Path(CHROMIUM).exists():
        raise RuntimeError(f"{CHROMIUM} not found: `make test-site` installs Debian's chromium "
                           "(or set CHROMIUM to a Chromium binary)")
    return playwright.chromium.launch_persistent_context(
        str(user_data_dir), executable_path=CHROMIUM, headless=True, args=CHROMIUM_FLAGS,
        viewport=VIEWPORT, service_workers="block")
