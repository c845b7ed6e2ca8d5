"""Sphinx extension for the book's site (loaded through `sphinx.local_extensions` in _config.yml).

1. A note under every notebook cell that displays an ipywidget. The page renders
   the widget from the state saved when the notebook ran: a reader sees its
   initial state but cannot move it, which needs a live kernel.
2. A bibliography style, `book`: entries labelled as the text cites them
   ([He et al., 2016], not alpha's [HZRS16]), sorted by author and year, with
   titles as written in references.bib (pybtex's default lowercases "ResNeSt").
3. Each inline script once per page. Sphinx 7.4 registers an inline script added
   after the builder starts (sphinx-thebe's `const THEBE_JS_URL = ...`) twice,
   once as filename None and once as '', and the second `const` throws in the
   browser on every page.
"""
from collections import Counter

from docutils import nodes
from pybtex.plugin import register_plugin
from pybtex.richtext import Text
from pybtex.style.formatting.unsrt import Style as UnsrtStyle
from pybtex.style.labels import BaseLabelStyle
from pybtex.style.template import field, sentence

WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"
WIDGET_NOTE = ("Static view: this widget shows the state it had when the notebook ran. "
               "To use it, run the notebook with a live Python kernel: on Colab (the rocket "
               "button at the top of the page) or locally with Jupyter.")


def _cell_of(node):
    while node is not None and "cell" not in node.get("classes", []):
        node = node.parent
    return node


def add_widget_notes(app, doctree, docname):
    done = set()
    for raw in list(doctree.findall(nodes.raw)):
        if WIDGET_VIEW not in raw.astext():
            continue
        cell = _cell_of(raw)
        if cell is None or id(cell) in done or cell.parent is None:
            continue
        done.add(id(cell))
        note = nodes.note("", nodes.paragraph(text=WIDGET_NOTE), classes=["widget-note"])
        cell.parent.insert(cell.parent.index(cell) + 1, note)


def _surname(person) -> str:
    return Text.from_latex(" ".join(person.prelast_names + person.last_names)).render_as("text")


def author_year(entry) -> str:
    people = entry.persons.get("author") or entry.persons.get("editor") or []
    names = [_surname(p) for p in people]
    if len(names) > 2:
        who = f"{names[0]} et al."
    else:
        who = " and ".join(names) or entry.fields.get("organization", entry.key)
    return f"{who}, {entry.fields.get('year', 'n.d.')}"


class AuthorYearLabels(BaseLabelStyle):
    def format_labels(self, sorted_entries):
        entries = list(sorted_entries)
        labels = [author_year(e) for e in entries]
        count, seen = Counter(labels), Counter()
        for label in labels:   # two "Zhang et al., 2022" become 2022a and 2022b
            if count[label] > 1:
                seen[label] += 1
                label += "abcdefghijklmnopqrstuvwxyz"[seen[label] - 1]
            yield label


class BookStyle(UnsrtStyle):
    default_label_style = "author_year"
    default_sorting_style = "author_year_title"

    def format_title(self, e, which_field, as_sentence=True):
        title = field(which_field)
        return sentence[title] if as_sentence else title


register_plugin("pybtex.style.labels", "author_year", AuthorYearLabels)
register_plugin("pybtex.style.formatting", "book", BookStyle)


def dedupe_scripts(app, pagename, templatename, context, doctree):
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen, kept = set(), []
    for js in scripts:
        key = (js.filename or "", js.priority, tuple(sorted(js.attributes.items())))
        if key not in seen:
            seen.add(key)
            kept.append(js)
    scripts[:] = kept


def setup(app):
    app.connect("doctree-resolved", add_widget_notes)
    app.connect("html-page-context", dedupe_scripts, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
