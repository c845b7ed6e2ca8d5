"""Every chapter and exercise notebook agrees, cell by cell, with its MyST text source in src/.

Authors edit ``src/chapters/NN_*.md`` / ``src/exercises/NN_*.md``; the executed notebooks in
``chapters/`` and ``exercises/`` are what the book, nbval, Colab and the download button use.
``jupytext.toml`` pairs the two. After an edit, ``make chapter NB=NN`` (or ``make exercise
NB=NN``) syncs and executes; ``tools/execute.py --no-execute`` or ``jupytext --sync`` syncs only.
These tests read both files and change neither.
"""
from pathlib import Path

import jupytext
import nbformat
import pytest
from jupytext.config import load_jupytext_config
from jupytext.paired_paths import paired_paths

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("chapters", "exercises")
FORMAT = "md:myst"
PAIRS = [(ROOT / "src" / folder / (nb.stem + ".md"), nb)
         for folder in FOLDERS for nb in sorted((ROOT / folder).glob("*.ipynb"))]
HOW = "edit the .md, then `make {kind} NB={nn}` (sync + execute) or `.venv/bin/jupytext --sync {md}`"


def _how(md: Path) -> str:
    kind = "chapter" if md.parent.name == "chapters" else "exercise"
    return HOW.format(kind=kind, nn=md.stem[:2], md=md.relative_to(ROOT))


def _cells(nb):
    return [(c.cell_type, c.source, dict(c.metadata)) for c in nb.cells]


def test_every_notebook_has_a_text_source_and_back():
    for folder in FOLDERS:
        notebooks = {p.stem for p in (ROOT / folder).glob("*.ipynb")}
        texts = {p.stem for p in (ROOT / "src" / folder).glob("*.md")}
        assert notebooks, folder
        assert notebooks == texts, (f"{folder}/*.ipynb and src/{folder}/*.md differ: only notebooks "
                                    f"{sorted(notebooks - texts)}, only text {sorted(texts - notebooks)}")


@pytest.mark.parametrize("md,ipynb", PAIRS, ids=[p[1].name for p in PAIRS])
def test_jupytext_pairs_them(md, ipynb):
    """jupytext.toml pairs the notebook with this text file, so `jupytext --sync` and editors find it."""
    config = load_jupytext_config(str(ipynb.parent))
    assert config is not None, "jupytext.toml not found"
    paths = [Path(p) for p, _ in paired_paths(str(ipynb), "ipynb", config.default_formats(str(ipynb)))]
    assert md in paths, f"jupytext.toml does not pair {ipynb.name} with {md.relative_to(ROOT)}: {paths}"


@pytest.mark.parametrize("md,ipynb", PAIRS, ids=[p[1].name for p in PAIRS])
def test_text_source_and_notebook_agree(md, ipynb):
    """Same cells (type, source, tags and other metadata) and the same front matter.

    The notebook goes through jupytext's writer and reader, so both sides are compared
    after the same metadata filter (execution timings and the like are left out)."""
    text = jupytext.read(md, fmt=FORMAT)
    notebook = jupytext.reads(jupytext.writes(nbformat.read(ipynb, as_version=4), fmt=FORMAT), fmt=FORMAT)
    assert text.metadata.get("jupytext", {}).get("text_representation", {}).get("format_name") == "myst", \
        f"{md.relative_to(ROOT)} is not a jupytext MyST notebook"
    for key in ("kernelspec", "course", "mystnb"):
        assert text.metadata.get(key) == notebook.metadata.get(key), \
            f"front matter `{key}` of {md.relative_to(ROOT)} differs from {ipynb.name}'s metadata: {_how(md)}"
    a, b = _cells(text), _cells(notebook)
    for i, (x, y) in enumerate(zip(a, b)):
        assert x == y, (f"cell {i} of {md.relative_to(ROOT)} differs from {ipynb.relative_to(ROOT)}:\n"
                        f"  text:     {x!r:.300}\n  notebook: {y!r:.300}\n{_how(md)}")
    assert len(a) == len(b), f"{md.name} has {len(a)} cells, {ipynb.name} {len(b)}: {_how(md)}"
