"""What the book promises as a whole: numbered chapters, launch and download
buttons, one repository address, a bibliography, and search that works offline."""
import re

import pytest

from book_site import ROOT, SITE, chapter_number, config, repo_url, toc_entries, toc_pages
from browser import Visit, open_page

PAGES = toc_pages()
NOTEBOOKS = [p for p in PAGES if p.is_notebook]
NUMBERED = {doc for doc, numbered in toc_entries() if numbered}


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_numbering(visit, page):
    """Chapters in numbered parts carry their number once, in the title and the sidebar;
    a chapter file chapters/NN_*.ipynb is chapter NN."""
    dom = visit(page).dom
    number, title = dom["sectionNumber"], dom["title"] or ""
    if page.docname in NUMBERED:
        assert number, f"{page}: in a numbered part of _toc.yml but its title has no number"
        rest = title[len(number):].strip()
        assert not re.match(r"(Chapter\s+)?\d+(\.\d+)*[.:)]?\s", rest), \
            f"{page}: numbered twice: {title!r} (leave the number out of the notebook's title)"
        expected = chapter_number(page.docname)
        if expected:
            assert number.rstrip(". ") == str(expected), \
                (f"{page}: the sidebar numbers it {number!r} but its file says chapter {expected} "
                 f"(are chapters before it missing from _toc.yml, or out of order?)")
        entry = [text for href, text in dom["sidebar"] if href in ("#", "")]
        assert entry and entry[0].startswith(number.strip()), f"{page}: sidebar entry {entry} lacks {number!r}"
    else:
        assert not number, f"{page}: numbered {number!r} but its part of _toc.yml is not"


@pytest.mark.parametrize("page", NOTEBOOKS, ids=str)
def test_colab_and_download_buttons(browser, server, page):
    """The rocket menu opens on Colab at this notebook in the repository; the download menu gives the .ipynb."""
    cfg = config()
    repo = repo_url().removeprefix("https://github.com/")
    book_path = (cfg["repository"].get("path_to_book") or "").strip("/")
    source = "/".join(filter(None, [book_path, page.source.relative_to(ROOT).as_posix()]))
    colab = f"{cfg['launch_buttons']['colab_url'].rstrip('/')}/github/{repo}/blob/{cfg['repository']['branch']}/{source}"

    v = Visit(page, server.base + page.html)
    tab = open_page(browser, v.url, v)
    try:
        tab.click(".dropdown-launch-buttons button")
        link = tab.locator(".dropdown-launch-buttons a", has_text="Colab")
        link.wait_for(state="visible", timeout=5_000)
        assert link.get_attribute("href") == colab
        tab.keyboard.press("Escape")
        tab.click(".dropdown-download-buttons button")
        download = tab.locator(".dropdown-download-buttons a.btn-download-source-button")
        download.wait_for(state="visible", timeout=5_000)
        href = download.get_attribute("href")
        assert href.endswith(".ipynb"), href
        response = tab.request.get(tab.url.rsplit("/", 1)[0] + "/" + href)
        assert response.ok and response.json()["cells"], f"{href} is not the notebook"
    finally:
        tab.close()


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_repository_link(visit, page):
    """The header links to the one repository address of _config.yml."""
    links = [href.rstrip("/") for href in visit(page).dom["links"]]
    assert repo_url() in links, f"{page}: no link to {repo_url()}"


def test_bibliography_lists_every_reference(visit):
    page = next(p for p in PAGES if p.docname.endswith("references"))
    keys = re.findall(r"^@\w+\{([^,]+),", (ROOT / "book" / "references.bib").read_text(), re.M)
    html = (SITE / page.html).read_text()
    assert html.count('role="doc-biblioentry"') == len(keys), "the bibliography page misses entries"
    assert visit(page).dom["title"].startswith("References")


@pytest.mark.parametrize("page", PAGES, ids=str)
def test_citations_resolve(page):
    """No {cite} role is left as text; every citation links into the bibliography (anchors: test_pages)."""
    html = (SITE / page.html).read_text()
    assert "{cite}" not in html and "cite:p" not in html, f"{page}: an unresolved citation"


def test_search_works_offline(browser, server):
    """The built-in search page finds a word of the book with no network."""
    v = Visit(PAGES[0], server.base + "search.html?q=CIFAR")
    tab = open_page(browser, v.url, v)
    try:
        # Sphinx lists hits one by one, then writes "Search finished, found N page(s)" into its status
        # line, p.search-summary. Wait on that line alone: the hits' text snippets sit in the same
        # #search-results box and can hold the word "finished" themselves (book/instructors.html's does).
        tab.wait_for_function("() => /search finished/i.test((document.querySelector("
                              "'#search-results > p.search-summary') || {}).textContent || '')",
                              timeout=30_000)
        hits = tab.eval_on_selector_all("#search-results li a", "as => as.map(a => a.getAttribute('href'))")
        status = tab.text_content("#search-results > p.search-summary")
    finally:
        tab.close()
    found = re.search(r"found (\d+) page", status)
    assert found and int(found.group(1)) == len(hits), (status, hits)
    assert any("00_setup_and_data" in h for h in hits), hits
    assert not v.blocked and not v.console_errors and not v.failed, (v.blocked, v.console_errors, v.failed)


@pytest.mark.parametrize("page", NOTEBOOKS, ids=str)
def test_setup_cell_draws_figures_inline(page):
    """With MPLBACKEND=Agg (the Makefile sets it) a kernel draws figures off-page and the
    page shows none, silently; `%matplotlib inline` in the setup cell (the first code cell
    of src/chapters/NN_*.md) prevents it."""
    import json
    code = ["".join(c["source"]) for c in json.loads(page.source.read_text())["cells"]
            if c["cell_type"] == "code"]
    if not any(re.search(r"matplotlib|plt\.|show_images|draw_|plot", c) for c in code):
        pytest.skip("draws no figures")
    assert "%matplotlib inline" in code[0], f"{page}: setup cell lacks %matplotlib inline"
