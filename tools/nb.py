"""Build a chapter notebook from a list of cells, for authors (not part of course_lib).

    from tools.nb import md, code, write
    write("chapters/00_x.ipynb", [md("# Title"), code("x = 1", tags=["remove-input"])])

    execute("chapters/00_x.ipynb")   # outputs are committed and checked by nbval
"""
from __future__ import annotations

import re
import sys
from pathlib import Path

import nbformat

ROOT = Path(__file__).resolve().parents[1]


def repo_url() -> str:
    """The repository address, set once in _config.yml."""
    text = (ROOT / "_config.yml").read_text()
    return re.search(r"^repository:\s*\n\s+url:\s*(\S+)", text, re.M).group(1)


def setup_cell():
    """The first code cell of every notebook: Colab installs course_lib, a local run has it.

    `%matplotlib inline` puts figures in the outputs even when MPLBACKEND=Agg is set
    (the Makefile sets it, and a kernel would otherwise draw every figure off-page).
    """
    return code(
        "# Setup: on Colab this installs course_lib from the book's repository; locally it is already there.\n"
        "%matplotlib inline\n"
        "import importlib.util\n"
        "if importlib.util.find_spec(\"course_lib\") is None:\n"
        f"    %pip install -q \"course_lib @ git+{repo_url()}\"",
        tags=["setup"])


def md(text: str):
    return nbformat.v4.new_markdown_cell(text.strip("\n"))


def code(text: str, tags=None):
    cell = nbformat.v4.new_code_cell(text.strip("\n"))
    if tags:
        cell.metadata["tags"] = list(tags)
    return cell


def write(path, cells):
    nb = nbformat.v4.new_notebook(cells=list(cells))
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nbformat.write(nb, str(path))
    return path


if __name__ == "__main__":
    print(repo_url(), file=sys.stderr)


def execute(path, timeout: int = 900):
    """Run a notebook in place with nbclient (as the book build and nbval do)."""
    from nbclient import NotebookClient
    nb = nbformat.read(str(path), as_version=4)
    NotebookClient(nb, timeout=timeout, kernel_name="python3",
                   resources={"metadata": {"path": str(Path(path).parent)}}).execute()
    nbformat.write(nb, str(path))
    return path


def exercise_metadata(nb_path, *, title: str, chapter: int, checks: list[str], time_limit: int = 120,
                      parameters: dict | None = None, constraints: list | None = None):
    """Mark a notebook as an exercise for course_lib.instructor.exercises (checks, time limit, allowed values)."""
    nb = nbformat.read(str(nb_path), as_version=4)
    nb.metadata["course"] = {
        "exercise": {"title": title, "chapter": chapter, "checks": checks, "time_limit": time_limit},
        "parameters": parameters or {},
        "constraints": constraints or [],
    }
    nbformat.write(nb, str(nb_path))
