"""Every page that _toc.yml lists, looked at in Chromium with no network but loopback.

Each page is loaded once (see conftest.visit); its screenshot lands in site-test/.
"""
from urllib.parse import unquote, urlsplit

import pytest

from book_site import SITE, anchors, toc_pages
from browser import LOCAL_HOSTS

PAGES = toc_pages()


def lines(items):
    return "\n  " + "\n  ".join(map(str, items))


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_page_is_built(page):
    assert (SITE / page.html).is_file(), f"{page.html} missing: rebuild with `make book`"


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_no_console_errors(visit, page):
    v = visit(page)
    assert not v.console_errors, f"{page}: console errors:{lines(v.console_errors)}"
    assert not v.failed, f"{page}: local requests failed:{lines(v.failed)}"


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_works_offline(visit, page):
    """The page asked for nothing outside this machine: it works with no network."""
    v = visit(page)
    assert not v.blocked, (f"{page}: requests to other hosts (aborted by the test; serve these "
                           f"files from book/_static instead):{lines(sorted(set(v.blocked)))}")
    assert not v.waits, f"{page}: did not finish in time:{lines(v.waits)}"


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_no_error_outputs(visit, page):
    v = visit(page)
    assert not v.dom["errorOutputs"], f"{page}: cell outputs with errors:{lines(v.dom['errorOutputs'])}"


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_figures_are_drawn(visit, page):
    """A matplotlib figure shows as an image, not as the text '<Figure size ... with N Axes>'."""
    figures = visit(page).dom["textFigures"]
    assert not figures, (f"{page}: figures printed as text, not drawn (is `%matplotlib inline` "
                         f"in the setup cell?):{lines(figures)}")


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_math_is_typeset(visit, page):
    math = visit(page).dom["math"]
    if not math["count"]:
        pytest.skip("no equations on this page")
    assert math["version"], f"{page}: MathJax did not load"
    assert not math["untypeset"], f"{page}: equations left as TeX:{lines(math['untypeset'])}"
    assert not math["errors"], f"{page}: TeX errors:{lines(math['errors'])}"


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_images_load(visit, page):
    images = visit(page).dom["images"]
    broken = [i["src"] for i in images if not i["ok"]]
    assert images, f"{page}: no images at all (the logo should be on every page)"
    assert not broken, f"{page}: images that did not load (naturalWidth 0):{lines(broken)}"


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_widgets_render(visit, page):
    """Every widget output shows its saved state, with a note that moving it needs a kernel."""
    views = visit(page).dom["widgets"]
    if not views:
        pytest.skip("no widgets on this page")
    for i, w in enumerate(views):
        assert w["rendered"] and w["width"] > 0 and w["height"] > 0, f"{page}: widget {i} is not rendered: {w}"
        assert w["controls"], f"{page}: widget {i} rendered no controls: {w}"
        assert w["note"], f"{page}: widget {i} has no note saying it needs a live kernel"


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_internal_links_resolve(visit, server, page):
    """Every link into the site names a file that exists and, after '#', an id that it defines."""
    broken = []
    for href in sorted(set(visit(page).dom["links"])):
        url = urlsplit(href)
        if url.scheme not in ("http", "https") or url.hostname not in LOCAL_HOSTS:
            continue
        path = SITE / unquote(url.path).lstrip("/")
        if path.is_dir():
            path = path / "index.html"
        if not path.is_file():
            broken.append(f"{href}: no such file")
        elif url.fragment and path.suffix == ".html" and unquote(url.fragment) not in anchors(path):
            broken.append(f"{href}: no id {url.fragment!r} in {path.relative_to(SITE)}")
    assert not broken, f"{page}: broken internal links:{lines(broken)}"
