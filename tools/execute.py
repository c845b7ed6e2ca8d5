"""Bring a chapter's (or exercise's) MyST text source into its notebook, then execute it in place.

A chapter is written in ``src/chapters/NN_name.md`` (MyST Markdown, a jupytext text
notebook) and published as ``chapters/NN_name.ipynb`` with its outputs (the book, nbval,
Colab and the download button use the .ipynb). ``jupytext.toml`` pairs the two;
``tests/test_text_sources.py`` fails when their cells disagree.

    .venv/bin/python tools/execute.py chapters/04             # sync src/chapters/04_*.md, execute
    .venv/bin/python tools/execute.py exercises/02            # the same for an exercise
    .venv/bin/python tools/execute.py --no-execute chapters/02   # prose-only edit: keep the outputs
    make chapter NB=04 / make exercise NB=02                  # the first two, from the Makefile

The text file is the source: its cells and front matter (``course``, ``mystnb``) replace
the notebook's; the notebook keeps its other metadata (``language_info``, widget state),
and, with ``--no-execute``, the outputs of every code cell whose source is unchanged.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import jupytext
import nbformat
from jupytext.combine import combine_inputs_with_outputs

ROOT = Path(__file__).resolve().parents[1]
FOLDERS = ("chapters", "exercises")
TEXT_FORMAT = "md:myst"


# As the Makefile: the kernels' AVX2 code paths on every x86 CPU, so that outputs repeat across machines
for _name, _value in (("ATEN_CPU_CAPABILITY", "avx2"), ("ONEDNN_MAX_CPU_ISA", "AVX2"), ("MKL_CBWR", "AVX2")):
    os.environ.setdefault(_name, _value)


def pair(target: str) -> tuple[Path, Path]:
    """(text source, notebook) for ``chapters/04``, ``04`` (a chapter), or either file's path."""
    path = Path(target)
    parts = path.with_suffix("").parts
    if parts[:1] == ("src",):
        parts = parts[1:]
    folder, stem = (parts[-2], parts[-1]) if len(parts) >= 2 else ("chapters", parts[-1])
    if folder not in FOLDERS:
        raise SystemExit(f"{target}: name a chapter or an exercise, e.g. chapters/04 or exercises/02")
    matches = sorted((ROOT / "src" / folder).glob(f"{stem}*.md"))
    if len(matches) != 1:
        found = ", ".join(p.name for p in matches) or "nothing"
        raise SystemExit(f"{target}: expected one src/{folder}/{stem}*.md, found {found}")
    md = matches[0]
    return md, ROOT / folder / (md.stem + ".ipynb")


def _inputs(nb) -> list:
    nb = jupytext.reads(jupytext.writes(nb, fmt=TEXT_FORMAT), fmt=TEXT_FORMAT)
    return [(c.cell_type, c.source, dict(c.metadata)) for c in nb.cells]


def sync(md: Path, ipynb: Path, force: bool = False) -> nbformat.NotebookNode:
    """Write the text's cells into the notebook, keeping the notebook's outputs where a cell is unchanged.

    Refuses when the notebook was saved after the text and their cells differ (an edit made
    in Jupyter or Colab, which this would undo), unless ``force``."""
    text = jupytext.read(md, fmt=TEXT_FORMAT)
    old = nbformat.read(ipynb, as_version=4) if ipynb.exists() else None
    if (old is not None and not force and ipynb.stat().st_mtime > md.stat().st_mtime
            and _inputs(old) != _inputs(text)):
        raise SystemExit(f"{ipynb.relative_to(ROOT)} was edited after {md.relative_to(ROOT)}: bring that "
                         f"edit into the text with `.venv/bin/jupytext --sync {ipynb.relative_to(ROOT)}`, "
                         "or pass --force to overwrite it")
    nb = combine_inputs_with_outputs(text, old, fmt=TEXT_FORMAT) if old is not None else text
    nbformat.write(nb, ipynb)
    canonical = jupytext.writes(nb, fmt=TEXT_FORMAT)
    if md.read_text() != canonical:   # the layout `jupytext --sync` would write; same cells
        md.write_text(canonical)
    return nb


def execute(ipynb: Path, timeout: int = 900) -> None:
    """Run the notebook in its own folder with nbclient, as the book build and nbval do."""
    from nbclient import NotebookClient
    nb = nbformat.read(ipynb, as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(ipynb.parent)}}).execute()
    nbformat.write(nb, ipynb)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("targets", nargs="+", help="chapters/NN, exercises/NN, NN (a chapter), or a file")
    parser.add_argument("--no-execute", action="store_true",
                        help="only sync (after an edit to markdown cells or front matter)")
    parser.add_argument("--force", action="store_true",
                        help="overwrite a notebook even if it was edited after its text source")
    parser.add_argument("--timeout", type=int, default=900, help="seconds per cell")
    args = parser.parse_args(argv)
    status = 0
    for target in args.targets:
        md, ipynb = pair(target)
        nb = sync(md, ipynb, args.force)
        name = ipynb.relative_to(ROOT)
        if args.no_execute:
            stale = [i for i, c in enumerate(nb.cells) if c.cell_type == "code" and c.source.strip()
                     and c.get("execution_count") is None]
            print(f"{md.relative_to(ROOT)} -> {name} (not executed)")
            if stale:
                print(f"  code cells {stale} changed and have no outputs: run without --no-execute",
                      file=sys.stderr)
                status = 1
            continue
        print(f"{md.relative_to(ROOT)} -> {name}: executing")
        execute(ipynb, args.timeout)
        print(f"  {name} executed; check it with: make test-notebooks NB={ipynb.stem[:2]}"
              if name.parts[0] == "chapters" else f"  {name} executed")
    return status


if __name__ == "__main__":
    sys.exit(main())
