"""What the browser tests know about the book: its pages (from _toc.yml), its
settings (from _config.yml), and what a built page holds for the links it has."""
from __future__ import annotations

import functools
import html.parser
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

# The book under test: this repository, or another checkout of it (BOOK_ROOT=...).
ROOT = Path(os.environ.get("BOOK_ROOT") or Path(__file__).resolve().parents[1]).resolve()
SITE = ROOT / "_build" / "html"
ARTEFACTS = ROOT / "site-test"   # screenshots; git-ignored
SOURCE_SUFFIXES = (".ipynb", ".md", ".rst")


@dataclass(frozen=True)
class Page:
    docname: str   # path without suffix, as _toc.yml names it: "chapters/00_setup_and_data"
    source: Path   # the file it is built from

    @property
    def html(self) -> str:
        return self.docname + ".html"

    @property
    def is_notebook(self) -> bool:
        return self.source.suffix == ".ipynb"

    @property
    def slug(self) -> str:
        return self.docname.replace("/", "__")

    def __str__(self) -> str:   # the test id pytest shows
        return self.docname


def config() -> dict:
    return yaml.safe_load((ROOT / "_config.yml").read_text())


def repo_url() -> str:
    return config()["repository"]["url"].rstrip("/")


def _source(docname: str) -> Path:
    for suffix in SOURCE_SUFFIXES:
        path = ROOT / (docname + suffix)
        if path.is_file():
            return path
    raise FileNotFoundError(f"_toc.yml lists {docname!r} but no {docname}.ipynb/.md/.rst exists")


def _entries(items, numbered: bool):
    """(docname, numbered) for every `file:` below `items`, in order, with `glob:` expanded."""
    for item in items or ():
        if "file" in item:
            yield _strip_suffix(item["file"]), numbered
        elif "glob" in item:
            for path in sorted(ROOT.glob(item["glob"] + ".*")):  # the glob names pages without their suffix
                if path.suffix in SOURCE_SUFFIXES:
                    yield path.relative_to(ROOT).with_suffix("").as_posix(), numbered
        yield from _entries(item.get("sections"), numbered)


def _strip_suffix(name: str) -> str:
    for suffix in SOURCE_SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def toc_entries() -> list[tuple[str, bool]]:
    """Every page that _toc.yml lists, root first, with whether its part is numbered."""
    toc = yaml.safe_load((ROOT / "_toc.yml").read_text())
    out = [(_strip_suffix(toc["root"]), False)]
    for part in toc.get("parts", []):
        out += list(_entries(part.get("chapters"), bool(part.get("numbered", False))))
    out += list(_entries(toc.get("chapters"), bool(toc.get("options", {}).get("numbered", False))))
    return out


def toc_pages() -> list[Page]:
    return [Page(doc, _source(doc)) for doc, _ in toc_entries()]


class _Ids(html.parser.HTMLParser):
    def __init__(self):
        super().__init__()
        self.ids: set[str] = set()

    def handle_starttag(self, tag, attrs):
        for key, value in attrs:
            if key in ("id", "name") and value:
                self.ids.add(value)


@functools.lru_cache(maxsize=None)
def anchors(path: Path) -> frozenset[str]:
    """The ids (and a-names) a built HTML file defines: what `page.html#id` may point at."""
    parser = _Ids()
    parser.feed(path.read_text(errors="replace"))
    return frozenset(parser.ids)


def chapter_number(docname: str) -> int | None:
    """chapters/03_x -> 3; None for pages that are not numbered chapter notebooks."""
    m = re.match(r"chapters/(\d+)_", docname)
    return int(m.group(1)) if m else None
