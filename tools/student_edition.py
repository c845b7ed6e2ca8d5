"""The student edition of the site: the book without the exercises' solutions, answers and checks.

The public site folds solutions and checks, which suits readers who learn alone. For a graded
class, host this edition instead: every exercise page is the notebook a student is handed
(``course_lib.instructor.exercises.student_version``: solutions replaced by a stub, the
``answers`` and ``check`` cells gone, no outputs). Chapters are unchanged and are not executed
again (they carry their outputs).

    .venv/bin/python tools/student_edition.py                  # sources in _build/student/src, site in _build/student/src/_build/html
    .venv/bin/python tools/student_edition.py --no-build       # the sources only
    make student-book                                          # the same as the first line
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]
COPIED = ("_config.yml", "_toc.yml", "book", "chapters", "exercises", "course_lib")
HIDDEN_TAGS = {"solution", "answers", "check"}


def prepare(out) -> Path:
    """Copy the book's sources to ``out`` with student exercises; returns the folder to build."""
    from course_lib.instructor.exercises import info, student_version
    out = Path(out)
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    ignore = shutil.ignore_patterns("__pycache__", ".ipynb_checkpoints", "_build")
    for name in COPIED:
        source = ROOT / name
        if source.is_dir():
            shutil.copytree(source, out / name, ignore=ignore)
        else:
            shutil.copy2(source, out / name)
    for path in sorted((out / "exercises").glob("*.ipynb")):
        info(path)                                      # an exercise, or a clear error
        nb = student_version(nbformat.read(str(path), as_version=4))
        nbformat.write(nb, str(path))
    config = out / "_config.yml"
    text = config.read_text()
    if "execute_notebooks: cache" not in text:
        raise ValueError("_config.yml has no 'execute_notebooks: cache' line to turn off for the student edition")
    config.write_text(text.replace("execute_notebooks: cache", 'execute_notebooks: "off"', 1)
                      .replace('title: "', 'title: "(Student edition) ', 1))
    return out


def leaks(folder) -> list[str]:
    """Every solution, answers or check cell, or solution marker, left in the edition's exercises."""
    found = []
    for path in sorted(Path(folder).glob("exercises/*.ipynb")):
        for i, cell in enumerate(nbformat.read(str(path), as_version=4).cells):
            if HIDDEN_TAGS & set(cell.metadata.get("tags", [])) or "BEGIN SOLUTION" in cell.source \
                    or "course_lib.check" in cell.source:
                found.append(f"{path.name} cell {i}")
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=str(ROOT / "_build" / "student"), help="where the edition goes")
    parser.add_argument("--no-build", action="store_true", help="prepare the sources, do not run jupyter-book")
    args = parser.parse_args(argv)
    src = prepare(Path(args.out) / "src")
    bad = leaks(src)
    if bad:
        print("the student edition still holds solutions or checks: " + ", ".join(bad), file=sys.stderr)
        return 1
    print(f"student edition sources: {src}")
    if not args.no_build:
        book = Path(sys.executable).parent / "jupyter-book"
        subprocess.run([str(book), "build", str(src), "--keep-going"], check=True)
        print(f"student edition site: {src / '_build' / 'html' / 'index.html'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
